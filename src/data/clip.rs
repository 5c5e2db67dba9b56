//! A clip: the frames of a target video cropped to a square and resized to the model size, with
//! their poses moved into the same model-size pixel coordinates.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::pose::openpose_json::list_pose_files;
use crate::pose::transform::{
    centre_square_crop, person_square_crop, smooth_median, to_model, CROP_FILL,
};
use crate::pose::{read_pose_file, CropBox, Pose, ReadOptions};
use crate::video::{open_frames, Frame, FrameRate, FrameSource};

/// Margin around the person's keypoint bounds for `CropMode::Person`, as a fraction of the
/// bounds' longer side on each end (keypoints mark joints, not the silhouette's edge).
pub const PERSON_MARGIN: f32 = 0.15;

/// Frame folders carry no frame rate; clips read from one get this.
pub const FOLDER_FPS: FrameRate = FrameRate { num: 30, den: 1 };

/// How the square region of the source frames is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CropMode {
    /// The largest centred square (the paper's crop).
    Centre,
    /// A given box in source pixels (need not be square: it is resized to size×size). It may
    /// extend past the frame (that part is filled with `CROP_FILL`) but must overlap it.
    Box(CropBox),
    /// A square around the union of the clip's keypoint bounds (one box for the whole clip); it
    /// extends past the frame, padded with `CROP_FILL`, when the person is taller or wider than
    /// the frame's short side (portrait videos).
    Person,
}

/// What `load_clip` / `load_frames` produce.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipOptions {
    /// Model size: frames become size×size.
    pub size: u32,
    pub crop: CropMode,
    /// Use at most this many frames (and poses) from the start.
    pub max_frames: Option<usize>,
    /// Temporal median window over the poses; 0 or 1 turns smoothing off, otherwise odd.
    pub smooth_window: usize,
    pub read: ReadOptions,
}

impl Default for ClipOptions {
    fn default() -> Self {
        ClipOptions {
            size: 256,
            crop: CropMode::Centre,
            max_frames: None,
            smooth_window: 0,
            read: ReadOptions::default(),
        }
    }
}

impl ClipOptions {
    fn validate(&self, op: &'static str) -> Result<()> {
        if self.size == 0 {
            return Err(Error::invalid(op, "model size must be at least 1"));
        }
        if self.max_frames == Some(0) {
            return Err(Error::invalid(op, "max_frames must be at least 1"));
        }
        if self.smooth_window > 1 && self.smooth_window.is_multiple_of(2) {
            return Err(Error::invalid(
                op,
                format!("smooth_window must be odd, got {}", self.smooth_window),
            ));
        }
        Ok(())
    }
}

/// A target video at the model size.
#[derive(Clone, Debug)]
pub struct Clip {
    /// size×size RGB frames.
    pub frames: Vec<Frame>,
    /// One pose per frame in model-size pixel coordinates.
    pub poses: Vec<Pose>,
    /// The region of the source frames that became the model frames.
    pub crop: CropBox,
    /// (width, height) of the source frames.
    pub source_size: (u32, u32),
    pub fps: FrameRate,
}

/// The crop box of `mode` for `source` = (width, height) frames; `poses` (source coordinates)
/// are needed for `CropMode::Person` only.
pub fn resolve_crop(
    mode: &CropMode,
    source: (u32, u32),
    poses: Option<&[Pose]>,
) -> Result<CropBox> {
    let (w, h) = source;
    match mode {
        CropMode::Centre => centre_square_crop(w, h),
        CropMode::Box(b) => {
            b.check_overlaps(w, h)?;
            Ok(*b)
        }
        CropMode::Person => {
            let poses = poses.ok_or_else(|| {
                Error::invalid("resolve_crop", "the person crop needs the clip's poses")
            })?;
            person_square_crop(poses, w, h, PERSON_MARGIN)
        }
    }
}

/// One source frame cropped to `crop` (the part past the frame filled with `CROP_FILL`) and
/// resized to size×size.
pub fn to_model_frame(frame: &Frame, crop: &CropBox, size: u32) -> Result<Frame> {
    frame.crop_padded(crop, CROP_FILL)?.resize(size, size)
}

/// Decodes up to `max` frames of `src`, each cropped and resized; decoding is sequential,
/// crop + resize run on batches in parallel so only a batch of full-size frames is held.
pub fn decode_model_frames(
    src: &mut FrameSource,
    crop: &CropBox,
    size: u32,
    max: Option<usize>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Frame>> {
    let limit = max.unwrap_or(usize::MAX);
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut out = Vec::new();
    let mut raw = Vec::with_capacity(batch);
    loop {
        raw.clear();
        while raw.len() < batch && out.len() + raw.len() < limit {
            match src.next() {
                Some(f) => raw.push(f?),
                None => break,
            }
        }
        if raw.is_empty() {
            return Ok(out);
        }
        let done: Vec<Frame> = raw
            .par_iter()
            .map(|f| to_model_frame(f, crop, size))
            .collect::<Result<_>>()?;
        out.extend(done);
        progress(out.len());
    }
}

fn fps_of(src: &FrameSource) -> FrameRate {
    src.info().frame_rate.unwrap_or(FOLDER_FPS)
}

fn no_frames(video: &Path) -> Error {
    Error::file(video, "the video holds no frames")
}

/// What `load_frames` returns: (frames, crop, source (width, height), frame rate).
pub type LoadedFrames = (Vec<Frame>, CropBox, (u32, u32), FrameRate);

/// The frames of `video` (a video file or a frame folder) at the model size, without poses:
/// (frames, crop, source size, fps). `CropMode::Person` needs poses and is refused here.
pub fn load_frames(video: &Path, opts: &ClipOptions) -> Result<LoadedFrames> {
    opts.validate("load_frames")?;
    if opts.crop == CropMode::Person {
        return Err(Error::invalid(
            "load_frames",
            "the person crop needs poses: use load_clip with a pose folder",
        ));
    }
    let mut src = open_frames(video)?;
    let source = (src.info().width, src.info().height);
    let crop = resolve_crop(&opts.crop, source, None)?;
    let frames = decode_model_frames(&mut src, &crop, opts.size, opts.max_frames, &mut |_| {})?;
    if frames.is_empty() {
        return Err(no_frames(video));
    }
    Ok((frames, crop, source, fps_of(&src)))
}

fn too_few_poses(video: &Path, frames: usize, poses: &Path, files: usize) -> Error {
    Error::file(
        poses,
        format!(
            "the pose folder has {files} pose files but the video {} has {frames} frames \
             (one pose file per frame is needed)",
            video.display()
        ),
    )
}

/// Reads the first `n` pose files (source-frame coordinates).
fn read_poses(files: &[std::path::PathBuf], n: usize, opts: &ReadOptions) -> Result<Vec<Pose>> {
    files[..n]
        .par_iter()
        .map(|p| read_pose_file(p, opts))
        .collect()
}

/// Loads a target clip: `video` (a file or a frame folder) and `poses` (an OpenPose JSON folder,
/// one file per frame in natural name order). A pose folder with fewer files than the frames used
/// is an error; extra pose files are ignored; `max_frames` truncates both.
pub fn load_clip(video: &Path, poses: &Path, opts: &ClipOptions) -> Result<Clip> {
    opts.validate("load_clip")?;
    let files = list_pose_files(poses)?;
    let mut src = open_frames(video)?;
    let source = (src.info().width, src.info().height);
    let limit = opts.max_frames.unwrap_or(usize::MAX);
    let known = src.info().frame_count.map(|n| n.min(limit));
    // Fail before decoding when the frame count is known up front (frame folders, most videos).
    if let Some(n) = known.filter(|&n| n > files.len()) {
        return Err(too_few_poses(video, n, poses, files.len()));
    }
    // The person box must come from the poses of the frames actually used: guess their number
    // from the header now, and correct it after decoding if the header was wrong.
    let guess = known.unwrap_or(usize::MAX).min(files.len());
    let (guess_poses, crop) = match opts.crop {
        CropMode::Person => {
            let p = read_poses(&files, guess, &opts.read)?;
            let crop = resolve_crop(&opts.crop, source, Some(&p))?;
            (Some(p), crop)
        }
        _ => (None, resolve_crop(&opts.crop, source, None)?),
    };
    // Never decode more frames than there are pose files, plus one to detect the shortfall.
    let decode_max = Some(limit.min(files.len().saturating_add(1)));
    let frames = decode_model_frames(&mut src, &crop, opts.size, decode_max, &mut |_| {})?;
    if frames.is_empty() {
        return Err(no_frames(video));
    }
    if frames.len() > files.len() {
        // Count the rest so the message gives the true frame count.
        let total = frames.len() + src.by_ref().take(limit - frames.len()).count();
        return Err(too_few_poses(video, total, poses, files.len()));
    }
    let n = frames.len();
    let fps = fps_of(&src);
    let source_poses = match guess_poses {
        Some(p) if p.len() == n => p,
        _ => read_poses(&files, n, &opts.read)?,
    };
    if opts.crop == CropMode::Person && n != guess {
        let fixed = resolve_crop(&opts.crop, source, Some(&source_poses))?;
        if fixed != crop {
            let mut again = open_frames(video)?;
            let frames = decode_model_frames(&mut again, &fixed, opts.size, Some(n), &mut |_| {})?;
            return finish_clip(frames, source_poses, fixed, source, fps, opts);
        }
    }
    finish_clip(frames, source_poses, crop, source, fps, opts)
}

/// Moves the poses into model coordinates, smooths them, and assembles the clip.
fn finish_clip(
    frames: Vec<Frame>,
    source_poses: Vec<Pose>,
    crop: CropBox,
    source_size: (u32, u32),
    fps: FrameRate,
    opts: &ClipOptions,
) -> Result<Clip> {
    let mut poses = source_poses
        .iter()
        .map(|p| to_model(p, &crop, opts.size, opts.size))
        .collect::<Result<Vec<_>>>()?;
    if opts.smooth_window > 1 {
        poses = smooth_median(&poses, opts.smooth_window)?;
    }
    Ok(Clip {
        frames,
        poses,
        crop,
        source_size,
        fps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::write_pose_file;
    use crate::synth::{generate, pose_file_name, SynthOptions};
    use crate::video::test_frames::TempDir;
    use crate::video::{FolderWriter, ImageFormat};

    /// A synthetic dancer written as a PNG folder and a pose folder: (dir, frames, poses).
    fn write_synth(
        tag: &str,
        w: u32,
        h: u32,
        frames: usize,
        poses: usize,
    ) -> (TempDir, Vec<Frame>, Vec<Pose>) {
        write_synth_scaled(tag, (w, h), frames, poses, SynthOptions::default().scale)
    }

    /// `write_synth` with the dancer's standing height as `scale` of the frame height.
    fn write_synth_scaled(
        tag: &str,
        (w, h): (u32, u32),
        frames: usize,
        poses: usize,
        scale: f32,
    ) -> (TempDir, Vec<Frame>, Vec<Pose>) {
        let dir = TempDir::new(tag);
        let opts = SynthOptions {
            width: w,
            height: h,
            frames: frames.max(poses),
            seed: 3,
            scale,
            ..SynthOptions::default()
        };
        let (f, p) = generate(&opts).unwrap();
        let mut wr =
            FolderWriter::create(dir.path().join("frames"), ImageFormat::Png, false).unwrap();
        f[..frames].iter().for_each(|fr| drop(wr.push(fr).unwrap()));
        std::fs::create_dir_all(dir.path().join("poses")).unwrap();
        for (i, pose) in p[..poses].iter().enumerate() {
            write_pose_file(&dir.path().join("poses").join(pose_file_name(i)), pose).unwrap();
        }
        (dir, f[..frames].to_vec(), p[..poses].to_vec())
    }

    fn opts(size: u32, crop: CropMode) -> ClipOptions {
        ClipOptions {
            size,
            crop,
            ..ClipOptions::default()
        }
    }

    #[test]
    fn centre_crop_matches_reference_frames_and_poses() {
        let (dir, frames, poses) = write_synth("clip_centre", 48, 32, 5, 5);
        let clip = load_clip(
            &dir.path().join("frames"),
            &dir.path().join("poses"),
            &opts(16, CropMode::Centre),
        )
        .unwrap();
        let crop = CropBox {
            x: 8,
            y: 0,
            w: 32,
            h: 32,
        };
        assert_eq!(clip.crop, crop);
        assert_eq!(clip.source_size, (48, 32));
        assert_eq!(clip.fps, FOLDER_FPS);
        assert_eq!(clip.frames.len(), 5);
        for i in 0..5 {
            assert_eq!(
                clip.frames[i],
                frames[i].crop(&crop).unwrap().resize(16, 16).unwrap()
            );
            assert_eq!(clip.poses[i], to_model(&poses[i], &crop, 16, 16).unwrap());
        }
        let (f, c, s, r) =
            load_frames(&dir.path().join("frames"), &opts(16, CropMode::Centre)).unwrap();
        assert_eq!((f, c, s, r), (clip.frames, crop, (48, 32), FOLDER_FPS));
    }

    #[test]
    fn box_and_person_crops() {
        let (dir, frames, poses) = write_synth("clip_person", 40, 36, 4, 4);
        let (v, p) = (dir.path().join("frames"), dir.path().join("poses"));
        let b = CropBox {
            x: 3,
            y: 5,
            w: 21,
            h: 17,
        };
        let clip = load_clip(&v, &p, &opts(8, CropMode::Box(b))).unwrap();
        assert_eq!(
            clip.frames[2],
            frames[2].crop(&b).unwrap().resize(8, 8).unwrap()
        );
        let clip = load_clip(&v, &p, &opts(20, CropMode::Person)).unwrap();
        assert_eq!(
            clip.crop,
            person_square_crop(&poses, 40, 36, PERSON_MARGIN).unwrap()
        );
        assert_eq!(
            clip.poses[3],
            to_model(&poses[3], &clip.crop, 20, 20).unwrap()
        );
        // A box past the right edge is padded; one entirely outside the frame is refused.
        let past = CropBox {
            x: 30,
            y: -4,
            w: 20,
            h: 10,
        };
        let clip = load_clip(&v, &p, &opts(8, CropMode::Box(past))).unwrap();
        assert_eq!(
            clip.frames[1],
            frames[1]
                .crop_padded(&past, CROP_FILL)
                .unwrap()
                .resize(8, 8)
                .unwrap()
        );
        assert_eq!(clip.poses[1], to_model(&poses[1], &past, 8, 8).unwrap());
        for (x, y) in [(40, 0), (-20, 0), (0, 36), (5, -10)] {
            let outside = CropBox { x, y, w: 20, h: 10 };
            let e = load_clip(&v, &p, &opts(8, CropMode::Box(outside))).unwrap_err();
            assert!(e.to_string().contains("entirely outside"), "{e}");
        }
        assert!(matches!(
            load_frames(&v, &opts(8, CropMode::Person)),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn portrait_person_crop_keeps_the_whole_person() {
        // The dancer fills most of a portrait frame's height: the square around them is wider
        // than the frame and, with the margin, taller too.
        let (w, h, size) = (40, 72, 32);
        let (dir, frames, poses) = write_synth_scaled("clip_portrait", (w, h), 4, 4, 0.95);
        let (v, p) = (dir.path().join("frames"), dir.path().join("poses"));
        let clip = load_clip(&v, &p, &opts(size, CropMode::Person)).unwrap();
        let crop = clip.crop;
        assert_eq!(
            crop,
            person_square_crop(&poses, w, h, PERSON_MARGIN).unwrap()
        );
        assert_eq!(crop.w, crop.h);
        assert!(crop.w > w && crop.x < 0, "{crop:?}");
        for i in 0..4 {
            assert_eq!(
                clip.frames[i],
                frames[i]
                    .crop_padded(&crop, CROP_FILL)
                    .unwrap()
                    .resize(size, size)
                    .unwrap()
            );
            assert_eq!(
                clip.poses[i],
                to_model(&poses[i], &crop, size, size).unwrap()
            );
            // Every keypoint (head to feet) is inside the model frame.
            for k in clip.poses[i].keypoints.iter().filter(|k| k.is_present()) {
                let inside = |c: f32| (0.0..=(size - 1) as f32).contains(&c);
                assert!(inside(k.x) && inside(k.y), "frame {i}: {k:?} for {crop:?}");
            }
            // The model frame's left column lies wholly in the padding.
            let scale = crop.w as f32 / size as f32;
            assert!(-crop.x as f32 > 2.0 * scale, "{crop:?}");
            for y in 0..size {
                assert_eq!(clip.frames[i].pixel(0, y), Some(CROP_FILL), "row {y}");
            }
        }
    }

    #[test]
    fn pose_counts_and_max_frames() {
        let (dir, _, poses) = write_synth("clip_counts", 32, 32, 6, 4);
        let (v, p) = (dir.path().join("frames"), dir.path().join("poses"));
        let err = load_clip(&v, &p, &opts(16, CropMode::Centre))
            .unwrap_err()
            .to_string();
        for part in [
            "4 pose files",
            "6 frames",
            &v.display().to_string(),
            &p.display().to_string(),
        ] {
            assert!(err.contains(part), "{part:?} missing in: {err}");
        }
        // max_frames truncates both, so 4 poses are enough for 3 frames.
        let o = ClipOptions {
            max_frames: Some(3),
            ..opts(16, CropMode::Centre)
        };
        let clip = load_clip(&v, &p, &o).unwrap();
        assert_eq!((clip.frames.len(), clip.poses.len()), (3, 3));
        assert_eq!(
            clip.poses[2],
            to_model(&poses[2], &clip.crop, 16, 16).unwrap()
        );
        // More pose files than frames: the first ones are used.
        let (dir, _, poses) = write_synth("clip_more", 32, 32, 3, 7);
        let (v, p) = (dir.path().join("frames"), dir.path().join("poses"));
        let clip = load_clip(&v, &p, &opts(32, CropMode::Person)).unwrap();
        assert_eq!(clip.poses.len(), 3);
        assert_eq!(
            clip.crop,
            person_square_crop(&poses[..3], 32, 32, PERSON_MARGIN).unwrap()
        );
    }

    #[test]
    fn smoothing_and_bad_options() {
        let (dir, _, poses) = write_synth("clip_smooth", 32, 32, 7, 7);
        let (v, p) = (dir.path().join("frames"), dir.path().join("poses"));
        let o = ClipOptions {
            smooth_window: 3,
            ..opts(32, CropMode::Centre)
        };
        let clip = load_clip(&v, &p, &o).unwrap();
        let crop = clip.crop;
        let model: Vec<Pose> = poses
            .iter()
            .map(|q| to_model(q, &crop, 32, 32).unwrap())
            .collect();
        assert_eq!(clip.poses, smooth_median(&model, 3).unwrap());
        for bad in [
            ClipOptions {
                smooth_window: 4,
                ..ClipOptions::default()
            },
            ClipOptions {
                size: 0,
                ..ClipOptions::default()
            },
            ClipOptions {
                max_frames: Some(0),
                ..ClipOptions::default()
            },
        ] {
            assert!(
                matches!(load_clip(&v, &p, &bad), Err(Error::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(load_clip(&v, &dir.path().join("nothing"), &ClipOptions::default()).is_err());
        assert!(load_clip(&dir.path().join("nothing"), &p, &ClipOptions::default()).is_err());
    }

    #[cfg(feature = "video")]
    #[test]
    fn loads_a_video_file_with_its_frame_rate() {
        use crate::video::{EncodeOptions, VideoEncoder};
        let (dir, frames, _) = write_synth("clip_video", 48, 32, 6, 6);
        let path = dir.path().join("clip.mp4");
        let rate = FrameRate::new(24, 1).unwrap();
        let mut enc = VideoEncoder::create(&path, 48, 32, rate, &EncodeOptions::default()).unwrap();
        frames.iter().for_each(|f| enc.push(f).unwrap());
        enc.finish().unwrap();
        let clip = load_clip(
            &path,
            &dir.path().join("poses"),
            &opts(16, CropMode::Centre),
        )
        .unwrap();
        assert_eq!(
            (clip.frames.len(), clip.fps, clip.source_size),
            (6, rate, (48, 32))
        );
    }
}

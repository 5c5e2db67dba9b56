//! A synthetic dancer: a textured stick figure driven by seeded, smooth motion, rendered to RGB
//! frames together with its exact OpenPose COCO-18 keypoints. Test data for the whole pipeline
//! (pose reading, normalisation between two figures of different size and place, training)
//! without a pose detector or a real video.
//!
//! `skeleton` poses the body from joint angles, `motion` makes the angles dance, `draw` paints
//! frames. The keypoints written are the very numbers the drawing used.

pub mod draw;
pub mod motion;
pub mod skeleton;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::pose::{write_pose_file, Pose};
use crate::video::{FolderWriter, Frame, FrameRate, ImageFormat};
pub use draw::Palette;
pub use motion::Motion;
pub use skeleton::{Figure, JointAngles, Proportions};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    pub fps: FrameRate,
    /// Picks the dance and the colours.
    pub seed: u64,
    /// Standing height of a default-proportioned figure, as a fraction of the frame height.
    pub scale: f32,
    /// Pixels to move the figure from the frame centre (x right, y down). The figure is kept
    /// inside the frame, so a large offset is honoured only as far as that allows.
    pub offset: (f32, f32),
    pub proportions: Proportions,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            width: 256,
            height: 256,
            frames: 120,
            fps: FrameRate { num: 30, den: 1 },
            seed: 0,
            scale: 0.75,
            offset: (0.0, 0.0),
            proportions: Proportions::default(),
        }
    }
}

impl SynthOptions {
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "synth::SynthOptions";
        if !(16..=8192).contains(&self.width) || !(16..=8192).contains(&self.height) {
            let d = format!(
                "frame size {}×{} is not in 16..=8192",
                self.width, self.height
            );
            return Err(Error::invalid(OP, d));
        }
        if self.frames == 0 {
            return Err(Error::invalid(OP, "frames must be at least 1"));
        }
        if self.fps.num == 0 || self.fps.den == 0 {
            return Err(Error::invalid(
                OP,
                format!("frame rate {} is not positive", self.fps),
            ));
        }
        if !(self.scale.is_finite() && self.scale > 0.05 && self.scale <= 1.0) {
            let d = format!("scale {} is not in (0.05, 1]", self.scale);
            return Err(Error::invalid(OP, d));
        }
        if !(self.offset.0.is_finite() && self.offset.1.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("offset {:?} is not finite", self.offset),
            ));
        }
        self.proportions.validate()
    }
}

/// A ready generator: any frame can be rendered on its own, in any order.
pub struct Synth {
    options: SynthOptions,
    motion: Motion,
    palette: Palette,
    background: Frame,
    /// Pixels per proportion unit.
    unit: f32,
    /// Hip centre when standing still.
    home: (f32, f32),
}

impl Synth {
    pub fn new(options: &SynthOptions) -> Result<Synth> {
        options.validate()?;
        let (w, h) = (options.width as f32, options.height as f32);
        let props = &options.proportions;
        let unit = options.scale * h / Proportions::default().standing_height();
        // Centre the standing figure vertically: head top and ankles equally far from the edges.
        let lower = props.thigh + props.shin;
        let home_y = (h - 1.0) / 2.0 + (props.upper_height() - lower) * unit / 2.0;
        let home = (
            (w - 1.0) / 2.0 + options.offset.0,
            home_y + options.offset.1,
        );
        let palette = Palette::from_seed(options.seed);
        let background = draw::background(options.width, options.height, &palette)?;
        Ok(Synth {
            options: options.clone(),
            motion: Motion::new(options.seed),
            palette,
            background,
            unit,
            home,
        })
    }

    pub fn options(&self) -> &SynthOptions {
        &self.options
    }

    /// The posed figure of frame `index`, moved (if needed) so that it lies inside the frame.
    pub fn figure(&self, index: usize) -> Figure {
        let t = (index as f64 / self.options.fps.as_f64()) as f32;
        let state = self.motion.at(t);
        let root = (
            self.home.0 + state.shift.0 * self.unit,
            self.home.1 + state.shift.1 * self.unit,
        );
        let fig = skeleton::forward(&self.options.proportions, &state.angles, root, self.unit);
        let (x0, y0, x1, y1) = fig.extent();
        let margin = (fig.limb_width / 2.0).max(1.0);
        let dx = fit(x0, x1, margin, self.options.width as f32 - 1.0 - margin);
        let dy = fit(y0, y1, margin, self.options.height as f32 - 1.0 - margin);
        fig.translated(dx, dy)
    }

    /// Frame `index` and its pose.
    pub fn frame(&self, index: usize) -> (Frame, Pose) {
        let fig = self.figure(index);
        let mut frame = self.background.clone();
        draw::draw_figure(&mut frame, &fig, &self.palette);
        (frame, fig.to_pose(self.options.width, self.options.height))
    }

    /// The background without the figure.
    pub fn background(&self) -> &Frame {
        &self.background
    }
}

/// The shift that brings [lo, hi] inside [min, max]; centred when it cannot fit.
fn fit(lo: f32, hi: f32, min: f32, max: f32) -> f32 {
    if hi - lo > max - min {
        (min + max) / 2.0 - (lo + hi) / 2.0
    } else if lo < min {
        min - lo
    } else if hi > max {
        max - hi
    } else {
        0.0
    }
}

/// Every frame and pose, rendered in parallel.
pub fn generate(options: &SynthOptions) -> Result<(Vec<Frame>, Vec<Pose>)> {
    let synth = Synth::new(options)?;
    Ok((0..options.frames)
        .into_par_iter()
        .map(|i| synth.frame(i))
        .unzip())
}

/// Whether `dir` holds any `.json` file (a previous run's poses).
fn has_json(dir: &Path) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries.flatten().any(|e| {
        e.path()
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("json"))
    }))
}

/// Pose file of frame `index` (0-based), named like the frames (`frame_000001_keypoints.json`).
pub fn pose_file_name(index: usize) -> String {
    format!("frame_{:06}_keypoints.json", index + 1)
}

/// What `write` produced.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteSummary {
    pub frames: usize,
    pub video: Option<PathBuf>,
    pub frames_dir: Option<PathBuf>,
    pub poses_dir: PathBuf,
}

/// Writes the frames as a video (`out_video`, needs the `video` feature) and/or a PNG folder
/// (`out_frames`), and one OpenPose JSON per frame into `out_poses`.
pub fn write(
    options: &SynthOptions,
    out_video: Option<&Path>,
    out_frames: Option<&Path>,
    out_poses: &Path,
) -> Result<WriteSummary> {
    write_with_progress(options, out_video, out_frames, out_poses, &mut |_, _| {})
}

/// `write`, calling `progress(done, total)` after each batch of frames.
pub fn write_with_progress(
    options: &SynthOptions,
    out_video: Option<&Path>,
    out_frames: Option<&Path>,
    out_poses: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<WriteSummary> {
    let synth = Synth::new(options)?;
    #[cfg(not(feature = "video"))]
    if let Some(p) = out_video {
        let d =
            "this build has no video encoder (the `video` feature is off); write frames instead";
        return Err(Error::file(p, d));
    }
    std::fs::create_dir_all(out_poses).map_err(|source| Error::Io {
        path: out_poses.to_path_buf(),
        source,
    })?;
    if has_json(out_poses)? {
        let d = "already holds pose files; choose an empty folder";
        return Err(Error::file(out_poses, d));
    }
    let mut folder = match out_frames {
        Some(d) => Some(FolderWriter::create(d, ImageFormat::Png, false)?),
        None => None,
    };
    #[cfg(feature = "video")]
    let mut encoder = match out_video {
        Some(p) => Some(crate::video::VideoEncoder::create(
            p,
            options.width,
            options.height,
            options.fps,
            &crate::video::EncodeOptions::default(),
        )?),
        None => None,
    };
    let total = options.frames;
    let batch = 4 * rayon::current_num_threads().max(1);
    for start in (0..total).step_by(batch) {
        let end = (start + batch).min(total);
        let rendered: Vec<(Frame, Pose)> = (start..end)
            .into_par_iter()
            .map(|i| synth.frame(i))
            .collect();
        for (i, (frame, pose)) in (start..end).zip(rendered) {
            #[cfg(feature = "video")]
            if let Some(e) = encoder.as_mut() {
                e.push(&frame)?;
            }
            if let Some(f) = folder.as_mut() {
                f.push(&frame)?;
            }
            write_pose_file(&out_poses.join(pose_file_name(i)), &pose)?;
        }
        progress(end, total);
    }
    #[cfg(feature = "video")]
    if let Some(e) = encoder {
        e.finish()?;
    }
    Ok(WriteSummary {
        frames: total,
        video: out_video.map(Path::to_path_buf),
        frames_dir: out_frames.map(Path::to_path_buf),
        poses_dir: out_poses.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::keypoints::{L_ANKLE, NOSE, NUM_KEYPOINTS, R_ANKLE};
    use crate::pose::{read_pose_folder, ReadOptions};

    fn small(seed: u64) -> SynthOptions {
        SynthOptions {
            width: 128,
            height: 128,
            frames: 12,
            seed,
            ..SynthOptions::default()
        }
    }

    /// A fresh, empty temporary folder for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("engine_synth_{}_{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn generation_is_deterministic_by_seed() {
        let (f1, p1) = generate(&small(4)).unwrap();
        let (f2, p2) = generate(&small(4)).unwrap();
        assert_eq!((f1.len(), p1.len()), (12, 12));
        assert_eq!(f1, f2);
        assert_eq!(p1, p2);
        let (f3, p3) = generate(&small(5)).unwrap();
        assert_ne!(f1, f3);
        assert_ne!(p1, p3);
        // Frames differ over time: the figure moves.
        assert_ne!(p1[0], p1[11]);
    }

    #[test]
    fn keypoints_are_inside_and_on_the_drawn_figure() {
        for (seed, offset, scale) in [
            (0, (0.0, 0.0), 0.75),
            (9, (60.0, -30.0), 0.9),
            (2, (-20.0, 10.0), 0.4),
        ] {
            let opts = SynthOptions {
                offset,
                scale,
                ..small(seed)
            };
            let synth = Synth::new(&opts).unwrap();
            let bg = synth.background().clone();
            for i in 0..opts.frames {
                let (frame, pose) = synth.frame(i);
                assert_eq!(frame.size(), (128, 128));
                assert_eq!(pose.num_present(), NUM_KEYPOINTS, "seed {seed} frame {i}");
                for (k, kp) in pose.keypoints.iter().enumerate() {
                    assert!((0.0..=127.0).contains(&kp.x) && (0.0..=127.0).contains(&kp.y));
                    let (x, y) = (kp.x.round() as u32, kp.y.round() as u32);
                    let (a, b) = (frame.pixel(x, y).unwrap(), bg.pixel(x, y).unwrap());
                    let diff: i32 = (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum();
                    assert!(
                        diff > 30,
                        "seed {seed} frame {i} keypoint {k}: {a:?} vs {b:?}"
                    );
                }
            }
        }
    }

    fn height_and_centre(p: &Pose) -> (f32, f32) {
        let foot = p.keypoints[R_ANKLE].y.max(p.keypoints[L_ANKLE].y);
        let b = p.bounds().unwrap();
        (foot - p.keypoints[NOSE].y, 0.5 * (b.x_min + b.x_max))
    }

    #[test]
    fn proportions_scale_and_offset_change_size_and_place() {
        let base = small(3);
        let mut long = base.clone();
        long.proportions.thigh *= 1.3;
        long.proportions.shin *= 1.3;
        let other = SynthOptions {
            scale: 0.45,
            offset: (-30.0, 20.0),
            ..base.clone()
        };
        let (_, pb) = generate(&base).unwrap();
        let (_, pl) = generate(&long).unwrap();
        let (_, po) = generate(&other).unwrap();
        for i in 0..base.frames {
            let (hb, cb) = height_and_centre(&pb[i]);
            let (hl, _) = height_and_centre(&pl[i]);
            let (ho, co) = height_and_centre(&po[i]);
            assert!(hl > hb * 1.1, "frame {i}: {hl} vs {hb}");
            assert!(ho < hb * 0.7, "frame {i}: {ho} vs {hb}");
            assert!(co < cb - 15.0, "frame {i}: centre {co} vs {cb}");
        }
    }

    #[test]
    fn written_json_reads_back_to_the_same_keypoints() {
        let dir = temp_dir("json");
        let opts = small(11);
        let (frames, poses) = generate(&opts).unwrap();
        let (fdir, pdir) = (dir.join("frames"), dir.join("poses"));
        let mut calls = Vec::new();
        let s = write_with_progress(&opts, None, Some(&fdir), &pdir, &mut |d, t| {
            calls.push((d, t))
        })
        .unwrap();
        assert_eq!(s.frames, 12);
        assert_eq!(calls.last(), Some(&(12, 12)));
        let back = read_pose_folder(&pdir, &ReadOptions::default()).unwrap();
        assert_eq!(back, poses);
        let read: Vec<Frame> = crate::video::FolderReader::open(&fdir)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(read, frames);
        // A second write into the same pose folder is refused, not mixed.
        let again = write(&opts, None, None, &pdir);
        assert!(matches!(again, Err(Error::File { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "video")]
    #[test]
    fn written_video_decodes_to_the_right_frames() {
        let dir = temp_dir("video");
        let opts = small(1);
        let video = dir.join("video.mp4");
        std::fs::create_dir_all(&dir).unwrap();
        write(&opts, Some(&video), None, &dir.join("poses")).unwrap();
        let dec = crate::video::VideoDecoder::open(&video).unwrap();
        assert_eq!((dec.info().width, dec.info().height), (128, 128));
        let frames: Vec<Frame> = dec.collect::<Result<_>>().unwrap();
        assert_eq!(frames.len(), 12);
        assert!(frames.iter().all(|f| f.size() == (128, 128)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let bad = [
            SynthOptions {
                width: 8,
                ..small(0)
            },
            SynthOptions {
                frames: 0,
                ..small(0)
            },
            SynthOptions {
                scale: 0.0,
                ..small(0)
            },
            SynthOptions {
                scale: f32::NAN,
                ..small(0)
            },
            SynthOptions {
                offset: (f32::INFINITY, 0.0),
                ..small(0)
            },
        ];
        for o in bad {
            assert!(matches!(generate(&o), Err(Error::Invalid { .. })), "{o:?}");
        }
        let mut o = small(0);
        o.proportions.torso = 0.0;
        assert!(matches!(Synth::new(&o), Err(Error::Invalid { .. })));
    }

    #[test]
    fn fit_moves_ranges_inside() {
        assert_eq!(fit(2.0, 10.0, 1.0, 20.0), 0.0);
        assert_eq!(fit(-3.0, 5.0, 1.0, 20.0), 4.0);
        assert_eq!(fit(15.0, 25.0, 1.0, 20.0), -5.0);
        assert_eq!(fit(-10.0, 40.0, 0.0, 20.0), -5.0);
    }
}

//! `engine extract`: a video's frames cropped to a square, resized to the model size and written
//! as PNGs, plus `crop.json` recording the crop, the source size and the frame rate. A crop past
//! the frame's edges is padded with `pose::transform::CROP_FILL`; its corner in `crop.json` is
//! then negative or its far edge past the source size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::progress;
use super::train::crop_mode;
use engine::data::clip::{resolve_crop, to_model_frame};
use engine::data::{CropMode, CropRecord, CROP_FILE};
use engine::pose::openpose_json::list_pose_files;
use engine::pose::{read_pose_file, CropBox, Pose, ReadOptions};
use engine::video::folder::{frame_file_name, write_image};
use engine::video::{open_frames, FolderWriter, Frame, FrameSource, ImageFormat};
use engine::{Error, Result};

#[derive(clap::Args)]
pub struct ExtractArgs {
    /// Video file or folder of PNG/JPEG frames
    video: PathBuf,
    /// Output folder for frame_000001.png, … and crop.json (must be empty unless --overwrite)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Model size: frames become SIZE×SIZE
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Crop box in source pixels, x,y,w,h (default: the largest centred square); it may extend
    /// past the frame (negative x, y allowed) as long as it overlaps it, the outside padded grey
    #[arg(
        long,
        value_name = "X,Y,W,H",
        conflicts_with = "person_crop",
        allow_hyphen_values = true
    )]
    crop: Option<String>,
    /// Square crop around the person's keypoints over the whole clip (needs --poses); on a
    /// portrait video it extends past the frame, padded grey, so head and feet stay in
    #[arg(long, requires = "poses")]
    person_crop: bool,
    /// OpenPose JSON folder of the video (for --person-crop)
    #[arg(long, value_name = "DIR")]
    poses: Option<PathBuf>,
    /// Extract at most N frames from the start
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
    /// Replace the frames and crop.json of an earlier extract in --out
    #[arg(long)]
    overwrite: bool,
}

/// Refuses a non-empty output folder without `overwrite` (before anything is written), then
/// creates it and, with `overwrite`, removes the frame files a previous run wrote.
fn prepare_out(out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::file(out, "exists and is not a folder"));
    }
    if out.is_dir() && !overwrite {
        let mut entries = std::fs::read_dir(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(Error::file(
                out,
                "the output folder is not empty; choose another or pass --overwrite",
            ));
        }
    }
    FolderWriter::create(out, ImageFormat::Png, overwrite).map(|_| ())
}

/// The person box from the poses of the first frames (as many as will be extracted).
fn person_crop(src: &FrameSource, poses: &Path, limit: usize) -> Result<CropBox> {
    let files = list_pose_files(poses)?;
    let n = files
        .len()
        .min(limit)
        .min(src.info().frame_count.unwrap_or(usize::MAX));
    let read = ReadOptions::default();
    let poses: Vec<Pose> = files[..n]
        .par_iter()
        .map(|p| read_pose_file(p, &read))
        .collect::<Result<_>>()?;
    let size = (src.info().width, src.info().height);
    resolve_crop(&CropMode::Person, size, Some(&poses))
}

/// Crops, resizes and writes `batch` as frames `first + 1`, … in parallel.
fn write_batch(out: &Path, batch: &[Frame], first: usize, crop: &CropBox, size: u32) -> Result<()> {
    batch.par_iter().enumerate().try_for_each(|(k, f)| {
        let frame = to_model_frame(f, crop, size)?;
        let path = out.join(frame_file_name(first + k + 1, ImageFormat::Png));
        write_image(&path, &frame, ImageFormat::Png)
    })
}

pub fn run(args: &ExtractArgs) -> Result<()> {
    if args.size == 0 || args.max_frames == Some(0) {
        return Err(Error::invalid(
            "extract",
            "--size and --max-frames must be at least 1",
        ));
    }
    let start = Instant::now();
    let mut src = open_frames(&args.video)?;
    let source = (src.info().width, src.info().height);
    let limit = args.max_frames.unwrap_or(usize::MAX);
    let mode = crop_mode(args.crop.as_deref(), args.person_crop)?;
    let crop = match (&mode, &args.poses) {
        (CropMode::Person, Some(p)) => person_crop(&src, p, limit)?,
        _ => resolve_crop(&mode, source, None)?,
    };
    // Decode the first frame before touching the output, so a video with no frames (or a
    // broken one) leaves the folder as it was.
    let first = src
        .next()
        .ok_or_else(|| Error::file(&args.video, "the video holds no frames"))??;
    prepare_out(&args.out, args.overwrite)?;
    let total = src.info().frame_count.map(|n| n.min(limit));
    let bar = progress::bar(total.unwrap_or(0) as u64, "frames");
    bar.set_prefix("extract");
    let batch_len = 2 * rayon::current_num_threads().max(1);
    let mut batch = vec![first];
    let mut written = 0;
    loop {
        while batch.len() < batch_len && written + batch.len() < limit {
            match src.next() {
                Some(f) => batch.push(f?),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        write_batch(&args.out, &batch, written, &crop, args.size)?;
        written += batch.len();
        batch.clear();
        bar.set_position(written as u64);
    }
    bar.finish_and_clear();
    let rate = src.info().frame_rate;
    let record = CropRecord {
        source: args.video.display().to_string(),
        source_size: [source.0, source.1],
        crop,
        size: args.size,
        fps: rate.map(|r| [r.num, r.den]),
        fps_value: rate.map(|r| r.as_f64()),
        frames: written,
    };
    record.save(&args.out.join(CROP_FILE))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "extract: {written} frames in {secs:.2} s ({:.1} frames/s)",
        written as f64 / secs.max(1e-9)
    );
    println!(
        "frames: {} ({written} frames, {s}x{s}, crop {},{},{},{} of {}x{})",
        args.out.display(),
        crop.x,
        crop.y,
        crop.w,
        crop.h,
        source.0,
        source.1,
        s = args.size
    );
    Ok(())
}

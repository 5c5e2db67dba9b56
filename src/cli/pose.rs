//! `engine pose`: OpenPose-18 poses of every frame of a video (or frame folder) with the engine's
//! own pose network, one OpenPose JSON per frame (the main person, tracked), optionally an
//! overlay video or PNG folder with the skeletons drawn on the frames.

use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::model::pose_net::default_weights;
use engine::pose::estimate::{EstimateOptions, FramePoses, PoseEstimator};
use engine::pose::render::{draw_stick, RenderStyle};
use engine::pose::{write_pose_file, Pose};
use engine::synth::pose_file_name;
use engine::video::{open_frames, Frame, FrameRate, Sink};
use engine::{Error, Result};

#[derive(clap::Args)]
pub struct PoseArgs {
    /// A video file or a folder of PNG/JPEG frames
    #[arg(value_name = "VIDEO|DIR")]
    input: PathBuf,
    /// Output folder for frame_NNNNNN_keypoints.json (one per frame, OpenPose format)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also draw the skeletons on the frames: a video (.mp4, .mkv, .avi, .mov) or a PNG folder
    #[arg(long, value_name = "OUT.mp4|DIR")]
    overlay: Option<PathBuf>,
    /// Converted network weights, the graph JSON beside them [default:
    /// weights/openpose_mobilenet_thin.safetensors here or in the source tree]
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Stop after this many frames
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
    /// Network input height in pixels (the width follows the frame's aspect ratio)
    #[arg(long, default_value_t = 368)]
    net_height: u32,
    /// Replace pose files (and overlay frames) an earlier run wrote
    #[arg(long)]
    overwrite: bool,
}

/// Pose files an earlier run wrote into `dir`.
fn previous_pose_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("frame_") && name.ends_with("_keypoints.json")
        })
        .collect()
}

/// The frame with every person's skeleton blended on: the main person opaque, others faint.
pub fn draw_overlay(frame: &Frame, poses: &FramePoses) -> Result<Frame> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let s = h.min(w) as f32 / 256.0;
    let style = RenderStyle {
        limb_half_width: (1.5 * s).max(1.5),
        point_radius: (2.5 * s).max(2.0),
    };
    let mut out = frame.clone();
    let mut order: Vec<usize> = (0..poses.people.len()).collect();
    // draw the main person last, on top
    order.sort_by_key(|&i| Some(i) == poses.main);
    let mut planes = vec![0.0f32; 3 * h * w];
    for i in order {
        planes.iter_mut().for_each(|v| *v = 0.0);
        draw_stick(&poses.people[i], h, w, &style, &mut planes);
        let alpha = if Some(i) == poses.main { 0.85 } else { 0.4 };
        let data = out.data_mut();
        for p in 0..h * w {
            let rgb = [planes[p], planes[h * w + p], planes[2 * h * w + p]];
            if rgb.iter().any(|&v| v > 0.0) {
                for c in 0..3 {
                    let v = &mut data[p * 3 + c];
                    *v = ((1.0 - alpha) * *v as f32 + alpha * rgb[c] * 255.0).round() as u8;
                }
            }
        }
    }
    Ok(out)
}

fn prepare_out(out: &Path, overwrite: bool) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let old = previous_pose_files(out);
    if !old.is_empty() && !overwrite {
        return Err(Error::file(
            out,
            format!(
                "already holds {} pose files (pass --overwrite to replace them)",
                old.len()
            ),
        ));
    }
    for path in old {
        std::fs::remove_file(&path).map_err(|source| Error::Io { path, source })?;
    }
    Ok(())
}

pub fn run(args: &PoseArgs) -> Result<()> {
    if args.max_frames == Some(0) {
        return Err(Error::invalid("pose", "--max-frames 0: nothing to do"));
    }
    let source = open_frames(&args.input)?;
    let info = source.info().clone();
    let opts = EstimateOptions {
        net_height: args.net_height,
        ..EstimateOptions::default()
    };
    let weights = args.weights.clone().unwrap_or_else(default_weights);
    let mut est = PoseEstimator::load(&weights, opts)?;
    prepare_out(&args.out, args.overwrite)?;
    let mut overlay = match &args.overlay {
        Some(p) => {
            let rate = match info.frame_rate {
                Some(r) => r,
                None => FrameRate::new(30, 1)?,
            };
            Some(Sink::create(
                p,
                info.width,
                info.height,
                rate,
                args.overwrite,
            )?)
        }
        None => None,
    };
    let total = match (info.frame_count, args.max_frames) {
        (Some(n), Some(m)) => Some(n.min(m)),
        (n, m) => n.or(m),
    };
    let bar = super::progress::bar(total.unwrap_or(0) as u64, "frames");
    bar.set_prefix("pose");
    let start = Instant::now();
    let (mut frames, mut found) = (0usize, 0usize);
    for frame in source.take(args.max_frames.unwrap_or(usize::MAX)) {
        let frame = frame?;
        let poses = est.estimate(&frame)?;
        let main: Pose = poses.main_pose();
        found += usize::from(poses.main.is_some());
        write_pose_file(&args.out.join(pose_file_name(frames)), &main)?;
        if let Some(o) = overlay.as_mut() {
            o.push(&draw_overlay(&frame, &poses)?)?;
        }
        frames += 1;
        bar.set_message(format!("{} people", poses.people.len()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if frames == 0 {
        return Err(Error::file(&args.input, "holds no frames"));
    }
    println!(
        "poses: {} ({frames} frames, a person in {found}; {}x{} frames, network height {})",
        args.out.display(),
        info.width,
        info.height,
        args.net_height
    );
    if let Some(o) = overlay {
        let (path, n, writer) = o.finish()?;
        println!("overlay: {} ({n} frames, {writer})", path.display());
    }
    println!(
        "time: {secs:.1} s, {:.2} frames/s on {} CPU threads",
        frames as f64 / secs,
        rayon::current_num_threads()
    );
    Ok(())
}

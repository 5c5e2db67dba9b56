//! `engine eval`: per-frame SSIM, PSNR and sharpness between a prediction and the ground truth
//! (videos or frame folders), their mean / min / max as a table, and a JSON report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::progress;
use engine::metrics::extra::{registered, ExtraMetric, ExtraOptions};
use engine::metrics::ssim::WIN;
use engine::metrics::{score_frames, EvalReport, FrameScores};
use engine::video::{open_frames, Frame, FrameSource};
use engine::{Error, Result};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Generated frames: a video file or a folder of PNG/JPEG frames
    #[arg(long, value_name = "VIDEO|DIR")]
    pred: PathBuf,
    /// Ground-truth frames: a video file or a folder of PNG/JPEG frames
    #[arg(long, value_name = "VIDEO|DIR")]
    truth: PathBuf,
    /// Also write the report (summary and per-frame scores) as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Resize both to SIZE×SIZE before comparing (needed when their sizes differ)
    #[arg(long, value_name = "SIZE")]
    size: Option<u32>,
    /// Compare only the first N frames (needed when the frame counts differ)
    #[arg(long, value_name = "N")]
    frames: Option<usize>,
    /// Folder with network weights for the extra metrics (FID, LPIPS) when they are available
    #[arg(long, value_name = "DIR")]
    weights: Option<PathBuf>,
}

/// One input, opened, with its path for messages.
struct Input<'a> {
    path: &'a Path,
    src: FrameSource,
    read: usize,
}

impl Input<'_> {
    fn next(&mut self) -> Option<Result<Frame>> {
        let f = self.src.next();
        self.read += f.is_some() as usize;
        f
    }
    /// Decodes the rest to learn the frame count (for an error message).
    fn count_all(&mut self) -> usize {
        self.read + self.src.by_ref().count()
    }
}

fn count_mismatch(pred: &Input, np: usize, truth: &Input, nt: usize) -> Error {
    Error::invalid(
        "eval",
        format!(
            "--pred {} has {np} frames but --truth {} has {nt}; \
             pass --frames N to compare the first N",
            pred.path.display(),
            truth.path.display()
        ),
    )
}

/// The compared size: both inputs' common size, or `--size` (then both are resized).
fn compared_size(args: &EvalArgs, pred: &Input, truth: &Input) -> Result<(u32, u32)> {
    let ps = (pred.src.info().width, pred.src.info().height);
    let ts = (truth.src.info().width, truth.src.info().height);
    let size = match args.size {
        Some(s) => (s, s),
        None if ps == ts => ps,
        None => {
            return Err(Error::invalid(
                "eval",
                format!(
                    "--pred {} is {}x{} but --truth {} is {}x{}; pass --size N to resize both",
                    pred.path.display(),
                    ps.0,
                    ps.1,
                    truth.path.display(),
                    ts.0,
                    ts.1
                ),
            ))
        }
    };
    if (size.0 as usize) < WIN || (size.1 as usize) < WIN {
        return Err(Error::invalid(
            "eval",
            format!(
                "frames of {}x{} are smaller than the {WIN}x{WIN} SSIM window",
                size.0, size.1
            ),
        ));
    }
    Ok(size)
}

/// Checks the frame counts the headers know before any decoding.
fn check_known_counts(args: &EvalArgs, pred: &Input, truth: &Input) -> Result<()> {
    let (np, nt) = (pred.src.info().frame_count, truth.src.info().frame_count);
    match (args.frames, np, nt) {
        (None, Some(a), Some(b)) if a != b => Err(count_mismatch(pred, a, truth, b)),
        (Some(n), a, b) => {
            for (input, count) in [(pred, a), (truth, b)] {
                if let Some(c) = count.filter(|&c| c < n) {
                    return Err(too_short(input, c, n));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn too_short(input: &Input, count: usize, wanted: usize) -> Error {
    Error::file(
        input.path,
        format!("has {count} frames, fewer than --frames {wanted}"),
    )
}

/// Reads up to `n` frame pairs; none once both inputs are exhausted or `limit` pairs were read.
/// One input ending before the other is an error giving both counts (or the shortfall below
/// `limit`).
fn read_pairs(
    pred: &mut Input,
    truth: &mut Input,
    n: usize,
    limit: Option<usize>,
) -> Result<Vec<(Frame, Frame)>> {
    let mut pairs = Vec::with_capacity(n);
    while pairs.len() < n && limit.is_none_or(|l| pred.read < l) {
        match (pred.next(), truth.next()) {
            (Some(p), Some(t)) => pairs.push((p?, t?)),
            (None, None) if limit.is_none() => break,
            (p, t) => {
                let pred_ended = p.is_none();
                // A decode error on the side that did not end says more than the counts.
                for frame in [p, t].into_iter().flatten() {
                    frame?;
                }
                if let Some(l) = limit {
                    let short = if pred_ended { &*pred } else { &*truth };
                    return Err(too_short(short, short.read, l));
                }
                // One side ended early: count both to the end for the message.
                let (np, nt) = (pred.count_all(), truth.count_all());
                return Err(count_mismatch(pred, np, truth, nt));
            }
        }
    }
    Ok(pairs)
}

/// Scores a batch of pairs (resized to `size` first when needed) in parallel.
fn score_batch(pairs: &mut [(Frame, Frame)], size: (u32, u32)) -> Result<Vec<FrameScores>> {
    pairs
        .par_iter_mut()
        .map(|(p, t)| {
            if p.size() != size {
                *p = p.resize(size.0, size.1)?;
            }
            if t.size() != size {
                *t = t.resize(size.0, size.1)?;
            }
            score_frames(p, t)
        })
        .collect()
}

fn write_json(path: &Path, report: &EvalReport) -> Result<()> {
    let text = serde_json::to_string_pretty(&report.to_json())
        .map_err(|e| Error::file(path, format!("cannot encode the report: {e}")))?;
    std::fs::write(path, text + "\n").map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if args.frames == Some(0) || args.size == Some(0) {
        return Err(Error::invalid(
            "eval",
            "--frames and --size must be at least 1",
        ));
    }
    let start = Instant::now();
    let mut pred = Input {
        path: &args.pred,
        src: open_frames(&args.pred)?,
        read: 0,
    };
    let mut truth = Input {
        path: &args.truth,
        src: open_frames(&args.truth)?,
        read: 0,
    };
    let size = compared_size(args, &pred, &truth)?;
    check_known_counts(args, &pred, &truth)?;
    let mut extras: Vec<Box<dyn ExtraMetric>> = registered(&ExtraOptions {
        weights_dir: args.weights.clone(),
    })?;
    let total = args.frames.or(pred.src.info().frame_count).unwrap_or(0);
    let bar = progress::bar(total as u64, "frames");
    bar.set_prefix("eval");
    let batch = 2 * rayon::current_num_threads().max(1);
    let mut scores = Vec::new();
    loop {
        let mut pairs = read_pairs(&mut pred, &mut truth, batch, args.frames)?;
        if pairs.is_empty() {
            break;
        }
        scores.extend(score_batch(&mut pairs, size)?);
        for (p, t) in &pairs {
            extras.iter_mut().try_for_each(|m| m.push(p, t))?;
        }
        bar.set_position(scores.len() as u64);
    }
    bar.finish_and_clear();
    if scores.is_empty() {
        return Err(Error::file(&args.pred, "no frames to compare"));
    }
    let mut extra = Vec::new();
    for m in &mut extras {
        extra.extend(m.finish()?);
    }
    let report = EvalReport {
        pred: args.pred.display().to_string(),
        truth: args.truth.display().to_string(),
        width: size.0,
        height: size.1,
        frames: scores,
        extra,
    };
    print!("{}", report.table());
    let fid_weights = std::path::Path::new("weights/inception.safetensors");
    if args.weights.is_none() && fid_weights.is_file() {
        println!(
            "fid: not computed; pass --weights weights to add it (Inception-v3, about 1 s per \
             frame and side on a CPU)"
        );
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        println!("json: {}", path.display());
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "eval: {} frames in {secs:.2} s ({:.1} frames/s)",
        report.frames.len(),
        report.frames.len() as f64 / secs.max(1e-9)
    );
    Ok(())
}

//! Poses computed on the fly for `engine train` / `engine transfer` when no pose folder is given:
//! the engine's own pose network (as `engine pose`) writes OpenPose JSON into a folder beside the
//! run or the output, which later runs reuse once it is complete.

use super::progress;
use engine::model::pose_net::default_weights;
use engine::pose::estimate::{EstimateOptions, PoseEstimator};
use engine::pose::write_pose_file;
use engine::synth::pose_file_name;
use engine::video::open_frames;
use engine::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Written last into a pose folder made here, naming the video it belongs to.
const COMPLETE: &str = "poses_complete.txt";

/// The pose folder to use for `video`: `given`, or `dir` filled by the pose network (reused when
/// an earlier run completed it for the same video). Returns the folder and whether frames with
/// no person may appear in it (the network writes an all-missing pose there).
pub fn poses_for(
    video: &Path,
    given: Option<&Path>,
    dir: PathBuf,
    weights: Option<&Path>,
) -> Result<(PathBuf, bool)> {
    if let Some(g) = given {
        return Ok((g.to_path_buf(), false));
    }
    let marker = dir.join(COMPLETE);
    let stamp = video.display().to_string();
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == stamp) {
        eprintln!("poses: reusing {}", dir.display());
        return Ok((dir, true));
    }
    estimate_into(video, &dir, weights)?;
    std::fs::write(&marker, &stamp).map_err(|source| Error::Io {
        path: marker.clone(),
        source,
    })?;
    Ok((dir, true))
}

fn estimate_into(video: &Path, dir: &Path, weights: Option<&Path>) -> Result<()> {
    let weights = weights
        .map(Path::to_path_buf)
        .unwrap_or_else(default_weights);
    let mut est = PoseEstimator::load(&weights, EstimateOptions::default())?;
    let source = open_frames(video)?;
    let total = source.info().frame_count.unwrap_or(0) as u64;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    eprintln!(
        "poses: no pose folder given; estimating them into {}",
        dir.display()
    );
    let bar = progress::bar(total, "frames");
    bar.set_prefix("pose");
    let start = Instant::now();
    let mut n = 0;
    for frame in source {
        let pose = est.estimate(&frame?)?.main_pose();
        write_pose_file(&dir.join(pose_file_name(n)), &pose)?;
        n += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if n == 0 {
        return Err(Error::file(video, "holds no frames"));
    }
    eprintln!(
        "poses: {n} frames in {:.1} s ({:.2} frames/s)",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

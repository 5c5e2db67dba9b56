//! `engine synth`: writes a synthetic dancer as a video (or a PNG folder without the `video`
//! feature) plus its exact OpenPose JSON, one file per frame.

use std::io::Write;
use std::path::PathBuf;

use engine::synth::{write_with_progress, SynthOptions};
use engine::video::FrameRate;
use engine::{Error, Result};

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output folder: video.mp4 (or frames/ without video support) and poses/*.json
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of frames
    #[arg(long, default_value_t = 120)]
    frames: usize,
    /// Frame size, WIDTHxHEIGHT
    #[arg(long, default_value = "256x256", value_name = "WxH")]
    size: String,
    /// Frames per second (29.97 is read as 30000/1001)
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Picks the dance and the colours
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Standing height of the figure as a fraction of the frame height
    #[arg(long, default_value_t = 0.75)]
    scale: f32,
    /// Pixels to move the figure from the frame centre, DX,DY (y down)
    #[arg(
        long,
        default_value = "0,0",
        value_name = "DX,DY",
        allow_hyphen_values = true
    )]
    offset: String,
    /// Also write the frames as PNGs into DIR/frames/ (always done without video support)
    #[arg(long)]
    png: bool,
    /// Replace the frames and poses an earlier `engine synth` wrote into DIR (other files are kept)
    #[arg(long)]
    overwrite: bool,
}

/// Removes the files a previous run wrote (`frame_*` in poses/ and frames/), nothing else.
fn remove_previous_output(out: &std::path::Path) -> Result<()> {
    for sub in ["poses", "frames"] {
        let dir = out.join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("frame_")
                && (name.ends_with("_keypoints.json") || name.ends_with(".png"));
            if ours {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| Error::Io { path, source })?;
            }
        }
    }
    Ok(())
}

fn parse_pair<T: std::str::FromStr>(text: &str, sep: char, what: &str) -> Result<(T, T)> {
    let bad = || {
        Error::invalid(
            "synth",
            format!("--{what} {text}: expected two numbers split by `{sep}`"),
        )
    };
    let (a, b) = text.split_once(sep).ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

pub fn run(args: &SynthArgs) -> Result<()> {
    let (width, height) = parse_pair::<u32>(&args.size.to_ascii_lowercase(), 'x', "size")?;
    let offset = parse_pair::<f32>(&args.offset, ',', "offset")?;
    let options = SynthOptions {
        width,
        height,
        frames: args.frames,
        fps: FrameRate::from_f64(args.fps)?,
        seed: args.seed,
        scale: args.scale,
        offset,
        ..SynthOptions::default()
    };
    let video = cfg!(feature = "video").then(|| args.out.join("video.mp4"));
    let frames = (args.png || video.is_none()).then(|| args.out.join("frames"));
    let poses = args.out.join("poses");
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    if args.overwrite {
        remove_previous_output(&args.out)?;
    }
    let mut progress = |done: usize, total: usize| {
        eprint!("\rsynth: frame {done}/{total}");
        let _ = std::io::stderr().flush();
    };
    let summary = write_with_progress(
        &options,
        video.as_deref(),
        frames.as_deref(),
        &poses,
        &mut progress,
    )?;
    eprintln!();
    if let Some(v) = &summary.video {
        println!("video: {}", v.display());
    }
    if let Some(f) = &summary.frames_dir {
        println!("frames: {}", f.display());
    }
    println!(
        "poses: {} ({} frames, {width}x{height}, {}, seed {})",
        summary.poses_dir.display(),
        summary.frames,
        options.fps,
        options.seed
    );
    Ok(())
}

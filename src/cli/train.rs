//! `engine train`: stage-1 training on one target video with its OpenPose JSON poses.

use super::auto_poses::poses_for;
use super::progress;
use clap::Args;
use engine::backend::{set_precision, Precision};
use engine::data::{ClipOptions, CropMode};
use engine::model::ModelConfig;
use engine::pose::openpose_json::EmptyFrame;
use engine::pose::{CropBox, ReadOptions};
use engine::train::{self, StagePlan, TrainOptions, VggChoice, HEADLINE_TERMS};
use engine::{Device, Error, Result};
use std::path::{Path, PathBuf};

/// Where `engine train` looks for the real VGG19 weights when `--vgg` is not given.
pub const DEFAULT_VGG: &str = "weights/vgg19.safetensors";

#[derive(Args)]
pub struct TrainArgs {
    /// Target video (any FFmpeg-readable file) or a folder of PNG/JPEG frames
    #[arg(long)]
    target: PathBuf,
    /// Folder of OpenPose JSON files, one per frame of the target [default: estimated by the
    /// engine's pose network into OUT/poses]
    #[arg(long)]
    poses: Option<PathBuf>,
    /// Pose network weights for estimating poses [default: weights/openpose_mobilenet_thin.safetensors]
    #[arg(long)]
    pose_weights: Option<PathBuf>,
    /// Frames whose pose file holds no person get an empty label instead of an error
    #[arg(long)]
    allow_missing_person: bool,
    /// Run folder: checkpoints (ckpt/), losses.csv, losses.png, samples/
    #[arg(long)]
    out: PathBuf,
    /// Model config: a preset (paper, small, tiny) or a JSON file; a resumed run keeps its own
    #[arg(long)]
    config: Option<String>,
    /// Stage-1 iterations (correspondence + generator + discriminator); each stage's learning
    /// rate decays linearly over its second half [default: 20000; a resumed run keeps its plan]
    #[arg(long)]
    iters: Option<u64>,
    /// Stage-2 iterations (temporal generator G1 and discriminator D1) [default: a quarter of
    /// the stage-1 iterations]
    #[arg(long)]
    temporal_iters: Option<u64>,
    /// Stage-3 iterations (face generator G2 and discriminator D2) [default: a quarter of the
    /// stage-1 iterations]
    #[arg(long)]
    face_iters: Option<u64>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Write a checkpoint every N iterations (and at the end)
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Write a sample sheet (label | exemplar | warped | output | truth) every N iterations
    #[arg(long, default_value_t = 250)]
    sample_every: u64,
    /// Continue the run in --out from its last checkpoint
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of frames (the last ones) held out for the sample sheets
    #[arg(long, default_value_t = 0.05)]
    holdout: f32,
    /// Crop box x,y,w,h in source pixels (default: the largest centred square); it may extend
    /// past the frame (negative x, y allowed), the outside padded grey
    #[arg(long, conflicts_with = "person_crop", allow_hyphen_values = true)]
    crop: Option<String>,
    /// Crop a square around the person (from the keypoints of the whole clip)
    #[arg(long)]
    person_crop: bool,
    /// Use only the first N frames
    #[arg(long)]
    max_frames: Option<usize>,
    /// Median-smooth the poses over an odd window of frames (0 = off)
    #[arg(long, default_value_t = 0)]
    smooth: usize,
    /// VGG19 weights (safetensors from tools/weights/fetch.py), or `random`; default
    /// weights/vgg19.safetensors when present, otherwise random features with a warning
    #[arg(long)]
    vgg: Option<PathBuf>,
    /// Target frames stored in the checkpoint as exemplars for transfer
    #[arg(long, default_value_t = 8)]
    exemplars: usize,
    /// cpu, cuda or auto
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the GPU's matrix products: f32, tf32 (conv and matmul on tensor cores) or
    /// bf16 (tf32 plus the correlation in bf16); the CPU always computes in f32
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Time the second iteration of this run by GPU kernel (launches and GPU time of each) into
    /// OUT/kernel_profile.md; needs --device cuda
    #[arg(long)]
    profile_kernels: bool,
}

/// `x,y,w,h` → a crop box. x and y may be negative: a box past the frame's edges is padded
/// (whether it overlaps the frame at all is checked once the video's size is known).
pub fn parse_crop(text: &str) -> Result<CropBox> {
    let bad = || {
        Error::invalid(
            "crop",
            format!("--crop {text}: expected x,y,w,h in pixels (w, h at least 1)"),
        )
    };
    let v: Vec<i64> = text
        .split(',')
        .map(|s| s.trim().parse::<i64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let corner = |c: i64| i32::try_from(c).map_err(|_| bad());
    let side = |s: i64| u32::try_from(s).ok().filter(|&s| s > 0).ok_or_else(bad);
    match v[..] {
        [x, y, w, h] => Ok(CropBox {
            x: corner(x)?,
            y: corner(y)?,
            w: side(w)?,
            h: side(h)?,
        }),
        _ => Err(Error::invalid(
            "crop",
            format!("--crop {text}: expected four numbers x,y,w,h"),
        )),
    }
}

/// The crop mode of `--crop` / `--person-crop`.
pub fn crop_mode(crop: Option<&str>, person: bool) -> Result<CropMode> {
    Ok(match (crop, person) {
        (Some(c), _) => CropMode::Box(parse_crop(c)?),
        (None, true) => CropMode::Person,
        (None, false) => CropMode::Centre,
    })
}

/// A preset name or a JSON file.
pub fn load_config(name: &str) -> Result<ModelConfig> {
    if engine::model::PRESETS.contains(&name) {
        return ModelConfig::preset(name);
    }
    let path = Path::new(name);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return ModelConfig::from_json(&text).map_err(|e| Error::file(path, e.to_string()));
    }
    Err(Error::invalid(
        "config",
        format!(
            "--config {name}: not a preset ({}) nor a JSON file",
            engine::model::PRESETS.join(", ")
        ),
    ))
}

/// Opts into the model pipeline on CUDA before it has been verified end to end on a GPU.
pub const UNVERIFIED_CUDA_ENV: &str = "ENGINE_UNVERIFIED_CUDA";

/// Resolves `--device` for the model. The CUDA backend runs every primitive and training and
/// transfer can place their networks and batches on the GPU, but the whole pipeline has not yet
/// been checked against the CPU on a GPU (tests/cuda_pipeline.rs does that), so `cuda` is
/// refused with that reason unless `ENGINE_UNVERIFIED_CUDA=1`, and `auto` says which device it
/// used.
pub fn compute_device(arg: &str) -> Result<Device> {
    let asked = arg.parse::<Device>()?;
    let opted_in = std::env::var(UNVERIFIED_CUDA_ENV).is_ok_and(|v| v == "1");
    if asked == Device::Cuda && !opted_in {
        return Err(Error::DeviceUnavailable {
            device: "cuda".into(),
            reason: format!(
                "training and transfer on a GPU have not yet been verified against the CPU \
                 (the CUDA kernels are tested op by op); use --device cpu, or set \
                 {UNVERIFIED_CUDA_ENV}=1 to run them on the GPU anyway"
            ),
        });
    }
    // `cuda` (opted in) fails here without a usable GPU; `auto` falls back to the CPU.
    let found = asked.resolve()? == Device::Cuda;
    if found && opted_in {
        eprintln!("device: cuda ({UNVERIFIED_CUDA_ENV}=1: the GPU pipeline is not yet verified)");
        return Ok(Device::Cuda);
    }
    let note = if found {
        " (a GPU was found; the model pipeline runs on the CPU until it is verified there)"
    } else {
        ""
    };
    eprintln!("device: cpu{note}");
    Ok(Device::Cpu)
}

/// Sets the process-wide precision of the GPU's matrix products from `--precision`. Anything but
/// f32 needs the GPU: the CPU backend computes in f32 only, and a setting it would ignore is
/// refused rather than silently dropped.
pub fn compute_precision(arg: &str, device: Device) -> Result<Precision> {
    let p = arg.parse::<Precision>()?;
    if p != Precision::F32 && device != Device::Cuda {
        return Err(Error::invalid(
            "precision",
            format!("--precision {p} runs on the GPU only (the device is {device}); use f32"),
        ));
    }
    set_precision(p);
    Ok(p)
}

fn vgg_choice(arg: Option<&PathBuf>, cfg_size: Option<usize>) -> VggChoice {
    let small = cfg_size.is_some_and(|s| s <= 64);
    // Random features carry no ImageNet knowledge; a narrower net costs less for as much.
    let random = VggChoice::Random {
        width_divisor: if small { 8 } else { 1 },
    };
    match arg {
        Some(p) if p.as_os_str() == "random" => random,
        Some(p) => VggChoice::Weights(p.clone()),
        None if Path::new(DEFAULT_VGG).is_file() => VggChoice::Weights(DEFAULT_VGG.into()),
        None => {
            eprintln!(
                "warning: {DEFAULT_VGG} not found, so the perceptual and contextual losses use a \
                 randomly initialised VGG19 (run `python3 tools/weights/fetch.py` for the real one)"
            );
            random
        }
    }
}

/// The iteration plan: the defaults for a fresh run; on resume only what was given overrides
/// the stored plan (`None` keeps it whole).
fn plan(args: &TrainArgs) -> Option<StagePlan> {
    let given = [args.iters, args.temporal_iters, args.face_iters];
    if args.resume && given.iter().all(Option::is_none) {
        return None;
    }
    let stage1 = args.iters.unwrap_or(20000);
    Some(StagePlan {
        stage1,
        temporal: args.temporal_iters.unwrap_or(stage1 / 4),
        face: args.face_iters.unwrap_or(stage1 / 4),
    })
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let device = compute_device(&args.device)?;
    compute_precision(&args.precision, device)?;
    train::check_profile(args.profile_kernels, device)?;
    train::check_start(&args.out, args.resume)?;
    let (poses, estimated) = poses_for(
        &args.target,
        args.poses.as_deref(),
        args.out.join("poses"),
        args.pose_weights.as_deref(),
    )?;
    let mut read = ReadOptions::default();
    if estimated || args.allow_missing_person {
        read.empty = EmptyFrame::AllMissing;
    }
    let config = match (&args.config, args.resume) {
        (Some(c), _) => Some(load_config(c)?),
        (None, true) => None,
        (None, false) => Some(ModelConfig::preset("small")?),
    };
    let opts = TrainOptions {
        target: args.target.clone(),
        poses,
        out: args.out.clone(),
        // A resumed run keeps its own loss network unless --vgg names one.
        vgg: match (&args.vgg, args.resume) {
            (None, true) => None,
            (v, _) => Some(vgg_choice(
                v.as_ref(),
                config.as_ref().map(|c| c.image_size),
            )),
        },
        config,
        plan: plan(args),
        batch: args.batch,
        checkpoint_every: args.checkpoint_every,
        sample_every: args.sample_every,
        seed: args.seed,
        holdout: args.holdout,
        clip: ClipOptions {
            crop: crop_mode(args.crop.as_deref(), args.person_crop)?,
            max_frames: args.max_frames,
            smooth_window: args.smooth,
            read,
            ..ClipOptions::default()
        },
        resume: args.resume,
        exemplars: args.exemplars,
        device,
        profile_kernels: args.profile_kernels,
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let summary = train::train(&opts, &mut |p| {
        let b = bar.get_or_insert_with(|| {
            let b = progress::bar(p.total, "iter");
            b.set_prefix("train");
            b.set_position(p.iteration.saturating_sub(1));
            b
        });
        let msg: Vec<String> = HEADLINE_TERMS
            .iter()
            .filter_map(|t| p.terms.get(t).map(|v| format!("{t} {v:.4}")))
            .collect();
        b.set_message(format!("{}  {}", p.stage, msg.join("  ")));
        b.set_position(p.iteration);
    })?;
    if let Some(b) = bar {
        b.finish();
    }
    let run = summary.iteration - summary.start_iteration;
    println!(
        "trained iterations {}..{} in {:.1} s ({:.2} it/s); checkpoint: {}",
        summary.start_iteration,
        summary.iteration,
        summary.seconds,
        run as f64 / summary.seconds.max(1e-9),
        summary.checkpoint.display()
    );
    for (name, v) in &summary.last_terms.terms {
        println!("  {name:<18} {v:.5}");
    }
    println!(
        "losses: {}  plot: {}  samples: {}",
        args.out.join("losses.csv").display(),
        args.out.join("losses.png").display(),
        args.out.join("samples").display()
    );
    if args.profile_kernels {
        println!(
            "kernel profile: {}",
            train::run_dir::RunDir::new(&args.out)
                .kernel_profile()
                .display()
        );
    }
    Ok(())
}

//! `engine transfer`: a trained target model dances the source video's motion. Without
//! `--source`, it runs the embedded demo (synthetic dancers, a tiny model trained on the spot).

use super::auto_poses::poses_for;
use super::progress;
use super::train::{compute_device, compute_precision, crop_mode};
use clap::Args;
use engine::pose::NormalizationKind;
use engine::tensor::Device;
use engine::transfer::demo::{run_demo, DemoOptions};
use engine::transfer::{self, ExemplarChoice, TransferOptions, TransferSummary};
use engine::{Error, Result};
use std::path::PathBuf;

#[derive(Args)]
pub struct TransferArgs {
    /// Source video or frame folder (whose motion is transferred); leave out for the demo
    #[arg(long, requires = "target_model")]
    source: Option<PathBuf>,
    /// Folder of OpenPose JSON files, one per source frame [default: estimated by the engine's
    /// pose network into <out>_source_poses/ beside the output]
    #[arg(long)]
    source_poses: Option<PathBuf>,
    /// Pose network weights for estimating poses [default: weights/openpose_mobilenet_thin.safetensors]
    #[arg(long)]
    pose_weights: Option<PathBuf>,
    /// Frames whose pose file holds no person get an empty label instead of an error
    #[arg(long)]
    allow_missing_person: bool,
    /// A run folder of `engine train` (its latest checkpoint) or a checkpoint folder
    #[arg(long)]
    target_model: Option<PathBuf>,
    /// Output video (.mp4, .mkv, …) or a folder for PNG frames [default: transfer.mp4; the demo
    /// writes into --demo-dir]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the output if it exists
    #[arg(long)]
    overwrite: bool,
    /// Crop box x,y,w,h of the source frames (default: the largest centred square); it may
    /// extend past the frame (negative x, y allowed), the outside padded grey
    #[arg(long, conflicts_with = "person_crop", allow_hyphen_values = true)]
    crop: Option<String>,
    /// Crop a square around the source person
    #[arg(long)]
    person_crop: bool,
    #[arg(long)]
    max_frames: Option<usize>,
    /// Pose normalisation: head (eq. 1), ankle or none [default: the model's]
    #[arg(long)]
    normalize: Option<String>,
    /// Exemplar: auto, nearest (per frame) or the index of a stored target frame
    #[arg(long, default_value = "auto")]
    exemplar: String,
    /// Write source | label | output side by side
    #[arg(long)]
    side_by_side: bool,
    /// Frames generated per forward pass
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Folder for the demo's videos, model and output
    #[arg(long, default_value = "engine-demo")]
    demo_dir: PathBuf,
    /// Training iterations of the demo model
    #[arg(long, default_value_t = 400)]
    demo_iters: u64,
    /// Iterations of each later stage (temporal, face) of the demo model
    #[arg(long, default_value_t = 40)]
    demo_later_iters: u64,
    /// cpu, cuda or auto
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the GPU's matrix products: f32, tf32 (conv and matmul on tensor cores) or
    /// bf16 (tf32 plus the correlation in bf16); the CPU always computes in f32
    #[arg(long, default_value = "f32")]
    precision: String,
}

fn parse_exemplar(s: &str) -> Result<ExemplarChoice> {
    match s {
        "auto" => Ok(ExemplarChoice::Auto),
        "nearest" => Ok(ExemplarChoice::Nearest),
        n => n.parse().map(ExemplarChoice::Index).map_err(|_| {
            Error::invalid(
                "transfer",
                format!("--exemplar {n}: expected auto, nearest or an index"),
            )
        }),
    }
}

fn parse_normalize(s: &str) -> Result<NormalizationKind> {
    match s {
        "head" => Ok(NormalizationKind::Head),
        "ankle" => Ok(NormalizationKind::Ankle),
        "none" => Ok(NormalizationKind::None),
        _ => Err(Error::invalid(
            "transfer",
            format!("--normalize {s}: expected head, ankle or none"),
        )),
    }
}

fn frames_bar() -> impl FnMut(usize, usize) {
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |done, total| {
        let b = bar.get_or_insert_with(|| {
            let b = progress::bar(total as u64, "frames");
            b.set_prefix("transfer");
            b
        });
        b.set_position(done as u64);
        if done >= total {
            b.finish();
        }
    }
}

fn report(s: &TransferSummary) {
    println!(
        "wrote {} ({} frames, {}) from checkpoint {} (iteration {}; {})",
        s.out.display(),
        s.frames,
        s.writer,
        s.checkpoint.display(),
        s.iteration,
        s.networks
    );
    println!(
        "generation: {:.2} frames/s ({:.1} s); end to end: {:.2} frames/s ({:.1} s)",
        s.frames as f64 / s.generate_seconds.max(1e-9),
        s.generate_seconds,
        s.frames as f64 / s.total_seconds.max(1e-9),
        s.total_seconds
    );
}

fn demo(args: &TransferArgs, device: Device) -> Result<()> {
    eprintln!(
        "no --source given: running the demo in {}",
        args.demo_dir.display()
    );
    let mut bar: Option<indicatif::ProgressBar> = None;
    let summary = run_demo(
        &DemoOptions {
            dir: args.demo_dir.clone(),
            iterations: args.demo_iters,
            later_iterations: args.demo_later_iters,
            seed: 0,
            device,
        },
        &mut |line| eprintln!("demo: {line}"),
        &mut |p| {
            let b = bar.get_or_insert_with(|| {
                let b = progress::bar(p.total, "iter");
                b.set_prefix("train");
                b
            });
            b.set_position(p.iteration);
            if p.iteration >= p.total {
                b.finish();
            }
        },
        &mut frames_bar(),
    )?;
    println!(
        "target: {}\nsource: {}\nmodel:  {} ({} iterations trained now, {:.1} s)",
        summary.target_video.display(),
        summary.source_video.display(),
        summary.run.display(),
        summary.trained_iterations,
        summary.train_seconds
    );
    report(&summary.transfer);
    Ok(())
}

pub fn run(args: &TransferArgs) -> Result<()> {
    let device = compute_device(&args.device)?;
    compute_precision(&args.precision, device)?;
    let Some(source) = &args.source else {
        return demo(args, device);
    };
    // clap's `requires` guarantees this with --source.
    let model = args
        .target_model
        .clone()
        .ok_or_else(|| Error::invalid("transfer", "--source needs --target-model"))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("transfer.mp4"));
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let pose_dir = out.with_file_name(format!("{stem}_source_poses"));
    let (source_poses, estimated) = poses_for(
        source,
        args.source_poses.as_deref(),
        pose_dir,
        args.pose_weights.as_deref(),
    )?;
    let opts = TransferOptions {
        source: source.clone(),
        source_poses,
        allow_missing_person: estimated || args.allow_missing_person,
        model,
        out,
        crop: crop_mode(args.crop.as_deref(), args.person_crop)?,
        max_frames: args.max_frames,
        normalization: args.normalize.as_deref().map(parse_normalize).transpose()?,
        exemplar: parse_exemplar(&args.exemplar)?,
        side_by_side: args.side_by_side,
        batch: args.batch,
        overwrite: args.overwrite,
        device,
    };
    let summary = transfer::transfer(&opts, &mut frames_bar())?;
    report(&summary);
    Ok(())
}

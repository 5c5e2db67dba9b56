//! The `engine` command line. Each subcommand lives in `cli/`; a subcommand is added only when
//! it works end to end.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "Pose transfer between dance videos on hand-written GPU kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transfer a source video's motion onto a trained target person (no arguments: the demo)
    Transfer(cli::transfer::TransferArgs),
    /// Train the pose-transfer model on one target video and its poses
    Train(cli::train::TrainArgs),
    /// Print the version, the devices found (CPU threads, CUDA driver/NVRTC/GPUs) and the video support
    Info(cli::info::InfoArgs),
    /// Write a synthetic dancer: a video (or PNG frames) and its exact OpenPose JSON poses
    Synth(cli::synth::SynthArgs),
    /// OpenPose-18 poses of a video or frame folder (JSON per frame, optional skeleton overlay)
    Pose(cli::pose::PoseArgs),
    /// Frames of a video cropped and resized to the model size as PNGs, plus crop.json
    Extract(cli::extract::ExtractArgs),
    /// SSIM, PSNR and sharpness of predicted frames against the ground truth (table and JSON)
    Eval(cli::eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transfer(args) => cli::transfer::run(&args),
        Command::Train(args) => cli::train::run(&args),
        Command::Info(args) => cli::info::run(&args),
        Command::Synth(args) => cli::synth::run(&args),
        Command::Pose(args) => cli::pose::run(&args),
        Command::Extract(args) => cli::extract::run(&args),
        Command::Eval(args) => cli::eval::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

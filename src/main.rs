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
    /// Print the version, the devices found (CPU threads, CUDA driver/NVRTC/GPUs) and the video support
    Info(cli::info::InfoArgs),
    /// Write a synthetic dancer: a video (or PNG frames) and its exact OpenPose JSON poses
    Synth(cli::synth::SynthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => cli::info::run(&args),
        Command::Synth(args) => cli::synth::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

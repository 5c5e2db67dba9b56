//! `engine info`: what this build can use on this machine. Exits 0 without a GPU.

use engine::backend::cuda_probe;
use engine::{Device, Result};

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Which device `--device` would resolve to (cpu, cuda or auto)
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    println!("engine {}", env!("CARGO_PKG_VERSION"));
    println!("features: cuda={} video={}", cfg!(feature = "cuda"), cfg!(feature = "video"));
    println!("cpu: {} threads (rayon)", rayon::current_num_threads());
    match cuda_probe::probe() {
        Ok(info) => {
            println!(
                "cuda: driver {}.{}, NVRTC {}.{}",
                info.driver_version.0, info.driver_version.1, info.nvrtc_version.0, info.nvrtc_version.1
            );
            for d in &info.devices {
                println!("  gpu {d}");
            }
            if !engine::backend::cuda_backend_built() {
                println!("  (the CUDA kernels are not part of this version yet: ops run on the CPU)");
            }
        }
        Err(reason) => println!("cuda: not available: {reason}"),
    }
    print_video();
    let requested: Device = args.device.parse()?;
    match requested.resolve() {
        Ok(d) => println!("--device {requested} resolves to: {d}"),
        Err(e) => println!("--device {requested}: {e}"),
    }
    Ok(())
}

#[cfg(feature = "video")]
fn print_video() {
    use ffmpeg_next as ff;
    let v = |x: u32| format!("{}.{}.{}", x >> 16, (x >> 8) & 0xff, x & 0xff);
    match ff::init() {
        Ok(()) => {
            let h264 = ff::encoder::find(ff::codec::Id::H264).is_some();
            println!(
                "video: FFmpeg libavcodec {}, libavformat {}; H.264 encoder: {}",
                v(ff::codec::version()),
                v(ff::format::version()),
                if h264 { "yes" } else { "no (MPEG-4 Part 2 fallback)" }
            );
        }
        Err(e) => println!("video: FFmpeg failed to initialise: {e}"),
    }
}

#[cfg(not(feature = "video"))]
fn print_video() {
    println!("video: not in this build (frame folders only; rebuild with the `video` feature)");
}

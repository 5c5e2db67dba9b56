//! `engine info`: what this build can use on this machine. Exits 0 without a GPU.

use engine::backend::cuda_probe;
use engine::model::{count, ModelConfig};
use engine::pose::LabelKind;
use engine::{Device, Error, Result};

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Which device `--device` would resolve to (cpu, cuda or auto)
    #[arg(long, default_value = "auto")]
    device: String,
    /// Also print a model config (preset paper, small or tiny, or a .json file), its parameter
    /// counts and forward GMACs per network (batch 1)
    #[arg(long, value_name = "NAME")]
    config: Option<String>,
    /// With --config: use this label format instead (paper: 21 channels, cocosnet: 20)
    #[arg(long, requires = "config")]
    label: Option<String>,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    println!("engine {}", env!("CARGO_PKG_VERSION"));
    println!(
        "features: cuda={} video={}",
        cfg!(feature = "cuda"),
        cfg!(feature = "video")
    );
    println!("cpu: {} threads (rayon)", rayon::current_num_threads());
    match cuda_probe::probe() {
        Ok(info) => {
            println!(
                "cuda: driver {}.{}, NVRTC {}.{}",
                info.driver_version.0,
                info.driver_version.1,
                info.nvrtc_version.0,
                info.nvrtc_version.1
            );
            for d in &info.devices {
                println!("  gpu {d}");
            }
            match engine::backend::cuda_backend_status() {
                Ok(()) => println!("  CUDA backend: ready (every kernel compiled)"),
                Err(reason) => println!("  CUDA backend: cannot start: {reason}"),
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
    println!(
        "train/transfer on cuda: not yet verified on a GPU, so refused unless {}=1",
        super::train::UNVERIFIED_CUDA_ENV
    );
    println!("--precision: f32 (CPU and GPU), tf32 and bf16 (GPU tensor cores only)");
    if let Some(name) = &args.config {
        print_model(name, args.label.as_deref())?;
    }
    Ok(())
}

/// The config JSON, then one row per network: parameters (M) and forward GMACs at batch 1.
fn print_model(name: &str, label: Option<&str>) -> Result<()> {
    let mut cfg = if name.ends_with(".json") {
        let json = std::fs::read_to_string(name).map_err(|e| Error::Io {
            path: name.into(),
            source: e,
        })?;
        ModelConfig::from_json(&json).map_err(|e| Error::file(name, e.to_string()))?
    } else {
        ModelConfig::preset(name)?
    };
    match label {
        None => {}
        Some("paper") => cfg.label = LabelKind::Paper,
        Some("cocosnet") => cfg.label = LabelKind::Cocosnet,
        Some(other) => {
            let detail = format!("--label {other}: expected paper or cocosnet");
            return Err(Error::invalid("info", detail));
        }
    }
    cfg.validate()?;
    let counts = count(&cfg)?;
    println!("model config `{}`:\n{}", cfg.name, cfg.to_json()?);
    let s = cfg.image_size;
    println!(
        "{:<24} {:>12} {:>14}",
        "network",
        "params (M)",
        format!("GMAC @{s}²")
    );
    for (name, c, note) in counts.rows() {
        let row = format!(
            "{name:<24} {:>12.3} {:>14.3}  {note}",
            c.mparams(),
            c.gmacs()
        );
        println!("{}", row.trim_end());
    }
    let f = cfg.face_crop;
    println!(
        "(temporal rows: window l = {}; face rows: GMAC @{f}², one face crop)",
        cfg.temporal_window
    );
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
                if h264 {
                    "yes"
                } else {
                    "no (MPEG-4 Part 2 fallback)"
                }
            );
        }
        Err(e) => println!("video: FFmpeg failed to initialise: {e}"),
    }
}

#[cfg(not(feature = "video"))]
fn print_video() {
    println!("video: not in this build (frame folders only; rebuild with the `video` feature)");
}

//! One `paper`-config training iteration (stage 1: G step then D step, every stage-1 loss) and
//! one generator inference at batch 4, 256², cocosnet label (20 channels) on the GPU, at each
//! precision: the engine's side of ../shared/tools/torch_model_baseline.py, which times the same
//! on the same card. Random weights (timing only), the VGG19 at full width. Prints one markdown
//! row per precision: ms per iteration (median of RUNS after a warm-up), ms per inference, and the
//! device pool's peak memory.
//! `cargo bench --no-default-features --features cuda --bench cuda_train_step`.

use engine::autograd::no_grad;
use engine::backend::cuda::launch::global;
use engine::backend::{set_precision, Precision};
use engine::model::vgg19::{Vgg19, Vgg19Spec};
use engine::model::ModelConfig;
use engine::pose::LabelKind;
use engine::train_step::{Stage1Batch, Stage1Trainer};
use engine::{Device, Result, Tensor, Var};
use std::time::Instant;

const BATCH: usize = 4;
const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall-clock ms of `f` (each call ends in a host read of a loss or an output, so the GPU is
/// synchronised when it returns): median of RUNS after one warm-up.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        global()?.sync()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ms))
}

fn batch(cfg: &ModelConfig) -> Result<Stage1Batch> {
    let (s, lc) = (cfg.image_size, cfg.label_channels());
    let b = Stage1Batch {
        label: Tensor::rand_uniform([BATCH, lc, s, s], 0.0, 1.0, 1),
        exemplar: Tensor::rand_uniform([BATCH, 3, s, s], -1.0, 1.0, 2),
        gt: Tensor::rand_uniform([BATCH, 3, s, s], -1.0, 1.0, 3),
    };
    b.to_device(Device::Cuda)
}

fn row(p: Precision, cfg: &ModelConfig) -> Result<String> {
    set_precision(p);
    let vgg = Vgg19::new(Vgg19Spec::standard(), 7)?;
    let mut t = Stage1Trainer::new(cfg, 5, vgg)?;
    t.to_device(Device::Cuda)?;
    let b = batch(cfg)?;
    let train_ms = time(|| t.step(&b, 1.0).map(|_| ()))?;
    let (label, exemplar) = (
        Var::constant(b.label.clone()),
        Var::constant(b.exemplar.clone()),
    );
    let infer_ms = time(|| {
        no_grad(|| t.gen.forward(&label, &exemplar, false))?
            .fake
            .value()
            .narrow(0, 0, 1)?
            .to_vec()
            .map(|_| ())
    })?;
    let peak = global()?.mem_stats().peak as f64 / (1 << 30) as f64;
    Ok(format!(
        "| {p} | {train_ms:.1} | {infer_ms:.1} | {peak:.2} |"
    ))
}

/// With precisions as arguments, prints their rows; with none, runs itself once per precision
/// (a fresh process each, so every row's pool peak is its own).
fn main() {
    let asked: Vec<Precision> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let mut cfg = ModelConfig::preset("paper").expect("paper preset");
    cfg.label = LabelKind::Cocosnet;
    if !asked.is_empty() {
        for p in asked {
            match row(p, &cfg) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("| {p} | error: {e} | | |"),
            }
        }
        return;
    }
    println!(
        "# paper config, cocosnet label, batch {BATCH}, {0}×{0}: one stage-1 training \
         iteration and one inference (median of {RUNS})\n",
        cfg.image_size
    );
    println!("| precision | train iteration ms | inference ms | pool peak GiB |");
    println!("|---|---|---|---|");
    let me = std::env::current_exe().expect("own executable");
    for p in Precision::ALL {
        match std::process::Command::new(&me).arg(p.name()).output() {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => println!("| {p} | could not run: {e} | | |"),
        }
    }
}

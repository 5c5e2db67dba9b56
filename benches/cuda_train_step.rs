//! One `paper`-config training iteration (stage 1: G step then D step, every stage-1 loss) and
//! one generator inference at batch 4, 256², cocosnet label (20 channels) on the GPU, at each
//! precision: the engine's side of ../shared/tools/torch_model_baseline.py, which times the same
//! on the same card. Random weights (timing only), the VGG19 at full width. Prints one markdown
//! row per precision: ms per iteration (median of RUNS after a warm-up), ms per inference, and the
//! device pool's peak memory.
//! `cargo bench --no-default-features --features cuda --bench cuda_train_step`.
//!
//! `ENGINE_BENCH_SMOKE=1` (or `--smoke`) runs the `tiny` config at batch 1 with a VGG19 of an
//! eighth of the width, once: a rehearsal of the device run on the emulated driver
//! (tests/cuda_benches.rs), where the timings mean nothing.

use engine::autograd::no_grad;
use engine::backend::cuda::launch::global;
use engine::backend::{set_precision, Precision};
use engine::model::vgg19::{Vgg19, Vgg19Spec};
use engine::model::ModelConfig;
use engine::pose::LabelKind;
use engine::train_step::{Stage1Batch, Stage1Trainer};
use engine::{Device, Result, Tensor, Var};
use std::time::Instant;

/// What one run times.
pub struct Setup {
    pub cfg: ModelConfig,
    pub vgg: Vgg19Spec,
    pub batch: usize,
    pub warmup: usize,
    pub runs: usize,
}

impl Setup {
    /// The `paper` config with the `cocosnet` label, batch 4, the full VGG19.
    pub fn full() -> Self {
        let mut cfg = ModelConfig::preset("paper").expect("paper preset");
        cfg.label = LabelKind::Cocosnet;
        Setup {
            cfg,
            vgg: Vgg19Spec::standard(),
            batch: 4,
            warmup: 1,
            runs: 3,
        }
    }

    /// The `tiny` config at batch 1, VGG19 at an eighth of the width, one run without a warm-up.
    pub fn smoke() -> Self {
        Setup {
            cfg: ModelConfig::preset("tiny").expect("tiny preset"),
            vgg: Vgg19Spec::scaled(8),
            batch: 1,
            warmup: 0,
            runs: 1,
        }
    }

    /// [`Setup::smoke`] when `ENGINE_BENCH_SMOKE=1` or `--smoke` is given, else [`Setup::full`].
    pub fn from_env() -> Self {
        let smoke = std::env::var("ENGINE_BENCH_SMOKE").is_ok_and(|v| v == "1")
            || std::env::args().any(|a| a == "--smoke");
        if smoke {
            Self::smoke()
        } else {
            Self::full()
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall-clock ms of `f` (each call ends in a host read of a loss or an output, so the GPU is
/// synchronised when it returns): median of `s.runs` after `s.warmup` untimed calls.
fn time(s: &Setup, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..s.warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(s.runs);
    for _ in 0..s.runs.max(1) {
        let t = Instant::now();
        f()?;
        global()?.sync()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ms))
}

fn batch(setup: &Setup) -> Result<Stage1Batch> {
    let (s, lc, n) = (
        setup.cfg.image_size,
        setup.cfg.label_channels(),
        setup.batch,
    );
    let b = Stage1Batch {
        label: Tensor::rand_uniform([n, lc, s, s], 0.0, 1.0, 1),
        exemplar: Tensor::rand_uniform([n, 3, s, s], -1.0, 1.0, 2),
        gt: Tensor::rand_uniform([n, 3, s, s], -1.0, 1.0, 3),
    };
    b.to_device(Device::Cuda)
}

/// One table row: the setup timed at precision `p`.
pub fn row(p: Precision, setup: &Setup) -> Result<String> {
    set_precision(p);
    let vgg = Vgg19::new(setup.vgg, 7)?;
    let mut t = Stage1Trainer::new(&setup.cfg, 5, vgg)?;
    t.to_device(Device::Cuda)?;
    let b = batch(setup)?;
    let train_ms = time(setup, || t.step(&b, 1.0).map(|_| ()))?;
    let (label, exemplar) = (
        Var::constant(b.label.clone()),
        Var::constant(b.exemplar.clone()),
    );
    let infer_ms = time(setup, || {
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
    let setup = Setup::from_env();
    if !asked.is_empty() {
        for p in asked {
            match row(p, &setup) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("| {p} | error: {e} | | |"),
            }
        }
        return;
    }
    println!(
        "# {name} config, {label:?} label, batch {batch}, {size}×{size}: one stage-1 training \
         iteration and one inference (median of {runs})\n",
        name = setup.cfg.name,
        label = setup.cfg.label,
        batch = setup.batch,
        size = setup.cfg.image_size,
        runs = setup.runs
    );
    println!("| precision | train iteration ms | inference ms | pool peak GiB |");
    println!("|---|---|---|---|");
    let me = std::env::current_exe().expect("own executable");
    for p in Precision::ALL {
        // The child reads ENGINE_BENCH_SMOKE itself; `--smoke` is passed on.
        let smoke = std::env::args().any(|a| a == "--smoke");
        let mut child = std::process::Command::new(&me);
        child.arg(p.name());
        if smoke {
            child.arg("--smoke");
        }
        match child.output() {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => println!("| {p} | could not run: {e} | | |"),
        }
    }
}

//! One `paper`-config training iteration (stage 1: G step then D step, every stage-1 loss) and
//! one generator inference at batch 4, 256², cocosnet label (20 channels) on the GPU, at each
//! precision: the engine's side of ../shared/tools/torch_model_baseline.py, which times the same
//! on the same card. Random weights (timing only), the VGG19 at full width. Prints one markdown
//! row per precision: ms per iteration (median of RUNS after a warm-up), ms per inference, and the
//! device pool's peak memory; then, per precision, one more iteration profiled by kernel (the
//! GPU time between events recorded around each launch, `Gpu::set_profiling`).
//! `cargo bench --no-default-features --features cuda --bench cuda_train_step`.
//!
//! `ENGINE_BENCH_SMOKE=1` (or `--smoke`) runs the `tiny` config at batch 1 with a VGG19 of an
//! eighth of the width, once: a rehearsal of the device run on the emulated driver
//! (tests/cuda_benches.rs), where the timings mean nothing.

use engine::autograd::no_grad;
use engine::backend::cuda::launch::{global, profile_table, KernelTime};
use engine::backend::{set_precision, Precision};
use engine::model::vgg19::{Vgg19, Vgg19Spec};
use engine::model::ModelConfig;
use engine::pose::LabelKind;
use engine::train_step::{Stage1Batch, Stage1Trainer};
use engine::{Device, Result, Tensor, Var};
use std::time::Instant;

/// The smoke switch and PyTorch's same-run timings (run.sh model runs ../shared/tools/
/// torch_model_baseline.py first and passes its JSON as TORCH_MODEL_JSON).
#[path = "shared/mod.rs"]
pub mod shared;
use shared::torch_run::TorchRun;

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
        if shared::smoke_requested() {
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

/// What one precision measured.
#[derive(Clone, Debug)]
pub struct Timing {
    pub train_ms: f64,
    pub infer_ms: f64,
    /// The device pool's peak.
    pub peak_gib: f64,
    /// One more training iteration, profiled: each kernel's launches and GPU time, longest first.
    pub profile: Vec<KernelTime>,
}

/// Kernels listed per precision under the table.
const PROFILE_TOP: usize = 15;

/// The setup timed at precision `p`.
pub fn measure(p: Precision, setup: &Setup) -> Result<Timing> {
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
    let g = global()?;
    let peak_gib = g.mem_stats().peak as f64 / (1 << 30) as f64;
    g.set_profiling(true);
    let step = t.step(&b, 1.0);
    g.set_profiling(false);
    step?;
    let profile = g.take_profile()?;
    Ok(Timing {
        train_ms,
        infer_ms,
        peak_gib,
        profile,
    })
}

/// The mode of torch_model_baseline.py set beside a precision: it times eager fp32 with tf32
/// convolutions, and bf16 autocast.
fn torch_mode(p: Precision) -> &'static str {
    match p {
        Precision::Bf16 => "bf16-autocast",
        _ => "fp32+tf32conv",
    }
}

/// One table row: ours, and PyTorch's same-run figures where `torch` has this setup's.
fn table_row(p: Precision, setup: &Setup, t: &Timing, torch: Option<&TorchRun>) -> String {
    let (n, s) = (setup.batch, setup.cfg.image_size);
    let mode = torch_mode(p);
    let theirs = |what: &str| torch.and_then(|r| r.ms(&format!("{what} B={n} {s}² {mode}")));
    let cell = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    let ratio =
        |v: Option<f64>, ours: f64| v.map_or("—".to_string(), |v| format!("{:.2}", v / ours));
    let (tt, ti) = (theirs("train iteration"), theirs("generator inference"));
    format!(
        "| {p} | {:.1} | {:.1} | {:.2} | {mode} | {} | {} | {} | {} |",
        t.train_ms,
        t.infer_ms,
        t.peak_gib,
        cell(tt),
        ratio(tt, t.train_ms),
        cell(ti),
        ratio(ti, t.infer_ms)
    )
}

/// Where one profiled training iteration's GPU time went.
fn print_profile(p: Precision, t: &Timing) {
    println!(
        "\n### {p}: one training iteration by kernel (the iteration's median wall time above)\n"
    );
    print!("{}", profile_table(&t.profile, t.train_ms, PROFILE_TOP));
}

/// With a precision as argument, prints its timing as one `timing` line and one `kernel` line
/// per profiled kernel (or an `error` line); with none, runs itself once per precision (a fresh
/// process each, so every row's pool peak is its own) and prints the table, then the profiles.
fn main() {
    let asked: Option<Precision> = std::env::args().find_map(|a| a.parse().ok());
    let setup = Setup::from_env();
    if let Some(p) = asked {
        match measure(p, &setup) {
            Ok(t) => {
                println!("timing {} {} {}", t.train_ms, t.infer_ms, t.peak_gib);
                for k in &t.profile {
                    println!("kernel {} {} {}", k.kernel, k.launches, k.ms);
                }
            }
            Err(e) => println!("error {e}"),
        }
        return;
    }
    let torch = TorchRun::from_env("TORCH_MODEL_JSON");
    println!(
        "# {name} config, {label:?} label, batch {batch}, {size}×{size}: one stage-1 training \
         iteration and one inference (median of {runs})\n",
        name = setup.cfg.name,
        label = setup.cfg.label,
        batch = setup.batch,
        size = setup.cfg.image_size,
        runs = setup.runs
    );
    match &torch {
        Some(t) => println!(
            "PyTorch: the same run on this card, {}. Ratios are PyTorch ms / ours.\n",
            t.path
        ),
        None => println!("No same-run PyTorch figures (TORCH_MODEL_JSON unset).\n"),
    }
    println!("| precision | train iteration ms | inference ms | pool peak GiB | PyTorch mode | PyTorch train ms | ratio | PyTorch inference ms | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().expect("own executable");
    let smoke = shared::smoke_requested();
    let mut profiled = Vec::new();
    for p in Precision::ALL {
        // The child reads ENGINE_BENCH_SMOKE itself; `--smoke` is passed on.
        let mut child = std::process::Command::new(&me);
        child.arg(p.name());
        if smoke {
            child.arg("--smoke");
        }
        let got = child
            .output()
            .map_err(|e| format!("could not run: {e}"))
            .and_then(|out| {
                parse_child(
                    &String::from_utf8_lossy(&out.stdout),
                    &String::from_utf8_lossy(&out.stderr),
                )
            });
        match got {
            Ok(t) => {
                println!("{}", table_row(p, &setup, &t, torch.as_ref()));
                profiled.push((p, t));
            }
            Err(e) => println!("| {p} | {} | | | | | | | |", e.replace('|', "/")),
        }
    }
    for (p, t) in &profiled {
        print_profile(*p, t);
    }
}

/// The child's `timing TRAIN INFER PEAK` line with its `kernel NAME LAUNCHES MS` lines, or its
/// error (from its stderr when it printed neither, e.g. after a panic).
pub fn parse_child(out: &str, err: &str) -> std::result::Result<Timing, String> {
    let mut timing = None;
    let mut profile = Vec::new();
    for line in out.lines() {
        if let Some(e) = line.strip_prefix("error ") {
            return Err(e.to_string());
        }
        if let Some(rest) = line.strip_prefix("timing ") {
            let v: Vec<f64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
            if let [train_ms, infer_ms, peak_gib] = v[..] {
                timing = Some((train_ms, infer_ms, peak_gib));
            }
        }
        if let Some(rest) = line.strip_prefix("kernel ") {
            let f: Vec<&str> = rest.split(' ').collect();
            if let [kernel, launches, ms] = f[..] {
                if let (Ok(launches), Ok(ms)) = (launches.parse(), ms.parse()) {
                    let kernel = kernel.to_string();
                    profile.push(KernelTime {
                        kernel,
                        launches,
                        ms,
                    });
                }
            }
        }
    }
    if let Some((train_ms, infer_ms, peak_gib)) = timing {
        return Ok(Timing {
            train_ms,
            infer_ms,
            peak_gib,
            profile,
        });
    }
    // A panic's location line and its message, else the last line.
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let why = match lines.iter().position(|l| l.contains("panicked at")) {
        Some(i) => lines[i..lines.len().min(i + 2)].join(" "),
        None => lines.last().unwrap_or(&"").to_string(),
    };
    Err(format!("no timing from the child process: {why}"))
}

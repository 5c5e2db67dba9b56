//! The model pipeline on the GPU against the CPU: one trainer per stage stepped on both devices
//! from the same init and batch (loss terms, gradients, parameters after two Adam steps), one
//! stage-1 step at the tensor-core precisions, then a short
//! `engine train` run with resume and a transfer on each device (the frames agree). This is what
//! lifts the `--device cuda` refusal of the CLI. Needs a GPU: every test is `#[ignore]`d; run
//! with `--ignored --test-threads=1 --nocapture` (ENGINE_REQUIRE_GPU=1 fails instead of skipping
//! when no GPU is found).
#![cfg(feature = "cuda")]

mod common;

use common::gpu_ok;
use common::weights::{max_abs, max_abs_diff};

use engine::backend::{set_precision, Precision};
use engine::data::{ClipOptions, CropMode};
use engine::model::vgg19::{Vgg19, Vgg19Spec};
use engine::model::ModelConfig;
use engine::nn::ParamStore;
use engine::pose::transform::CropBox;
use engine::synth::SynthOptions;
use engine::train::stages::copy_generator_store;
use engine::train::{train, StagePlan, TrainOptions, VggChoice};
use engine::train_step::{
    FaceBatch, FaceTrainer, LossTerms, Stage1Batch, Stage1Trainer, TemporalBatch, TemporalTrainer,
};
use engine::transfer::{transfer, ExemplarChoice, TransferOptions};
use engine::{Device, Tensor};
use std::path::{Path, PathBuf};

const SEED: u64 = 11;
/// Adam steps per trainer comparison.
const STEPS: usize = 2;

fn cfg() -> ModelConfig {
    ModelConfig::preset("tiny").expect("tiny preset")
}

fn vgg() -> Vgg19 {
    Vgg19::new(Vgg19Spec::scaled(8), SEED ^ 3).expect("vgg")
}

fn uniform(d: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand_uniform(d.to_vec(), lo, hi, seed)
}

/// Loss terms agree to `rtol` (relative to max(1, |cpu|)); both finite.
fn check_terms(what: &str, cpu: &LossTerms, gpu: &LossTerms, rtol: f32, fails: &mut Vec<String>) {
    for ((name, a), (name_b, b)) in cpu.terms.iter().zip(&gpu.terms) {
        let ok = name == name_b && a.is_finite() && b.is_finite() && {
            (a - b).abs() <= rtol * a.abs().max(1.0)
        };
        println!("{what} {name} cpu {a:.6e} gpu {b:.6e} {}", pass(ok));
        if !ok {
            fails.push(format!("{what} {name}: cpu {a} gpu {b}"));
        }
    }
    if cpu.terms.len() != gpu.terms.len() {
        fails.push(format!(
            "{what}: {} vs {} terms",
            cpu.terms.len(),
            gpu.terms.len()
        ));
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Largest |x| of a gradient (0 when there is none).
fn grad_max(store: &ParamStore, name: &str) -> f32 {
    let g = store.get(name).ok().and_then(|v| v.grad());
    let v = g.and_then(|g| g.to_vec().ok()).unwrap_or_default();
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Whether `name`'s gradient is 0 in exact arithmetic, i.e. only rounding noise on both devices:
/// a bias whose effect a following instance norm cancels, judged against its conv's weight
/// gradient on the CPU.
fn noise_gradient(store: &ParamStore, name: &str) -> bool {
    let Some(conv) = name.strip_suffix(".bias") else {
        return false;
    };
    let w = grad_max(store, &format!("{conv}.weight"));
    // On the tiny config the noise biases sit below 3e-7 of their weight's gradient and the real
    // ones above 4e-3 (one CPU step): 1e-4 splits them with room on both sides.
    w > 0.0 && grad_max(store, name) <= 1e-4 * w
}

/// First-step gradients agree within this share of their tensor's max|g|. Both sides sum in f32
/// in different orders, and on these random batches (every label channel active) the
/// correspondence's scale-100 softmax amplifies that: on the emulated driver the adaptors'
/// gradients differed by up to 4.7e-3 of max|g|, while on the parity fixture's batch the same
/// CUDA trainer stays within 3e-5 of float64 (tests/model_parity.rs). 1e-2 keeps a margin and
/// still fails a wrong or missing term, which moves gradients by O(max|g|).
const GRAD_TOL: f32 = 1e-2;

/// The values of one store entry and its gradient (None for state such as spectral norm's u
/// and v).
fn values(store: &ParamStore, name: &str) -> (Vec<f32>, Option<Vec<f32>>) {
    let var = store.get(name).expect("entry");
    let grad = var.grad().map(|g| g.to_vec().expect("gradient values"));
    (var.value().to_vec().expect("values"), grad)
}

/// After the first step, which Adam (betas (0, 0.9)) turns into exactly ±lr per weight, the sign
/// of its gradient:
/// - every gradient agrees with the CPU's within GRAD_TOL·max|g| of its tensor, except biases
///   whose gradient is only rounding noise (`noise_gradient`);
/// - a weight moved differently (|Δ| > lr/10) only where its CPU gradient is within that
///   tolerance of 0 (or on such a bias), and by at most 2.4·lr;
/// - state without a gradient (spectral norm's u and v: one power iteration from the same
///   weights) agrees within 1e-4·max|x|.
fn check_first_step(
    what: &str,
    cpu: &ParamStore,
    gpu: &ParamStore,
    lr: f32,
    fails: &mut Vec<String>,
) {
    let (mut flips, mut worst) = (0usize, (0.0f32, String::new()));
    for e in cpu.entries() {
        let name = &e.name;
        let ((x, gx), (y, gy)) = (values(cpu, name), values(gpu, name));
        let (Some(gx), Some(gy)) = (gx, gy) else {
            let tol = 1e-4 * max_abs(&x) + 1e-7;
            let worst = max_abs_diff(&x, &y);
            if worst > tol || y.iter().any(|v| !v.is_finite()) {
                fails.push(format!(
                    "{what} {name} (no gradient): max |Δ| {worst:e} > {tol:e}"
                ));
            }
            continue;
        };
        let noise = noise_gradient(cpu, name);
        let gtol = GRAD_TOL * max_abs(&gx) + 1e-12;
        let gworst = max_abs_diff(&gx, &gy);
        if !noise && gworst / gtol * GRAD_TOL > worst.0 {
            worst = (gworst / gtol * GRAD_TOL, name.clone());
        }
        if !noise && gworst > gtol || gy.iter().any(|v| !v.is_finite()) {
            fails.push(format!(
                "{what} {name} gradient: max |Δ| {gworst:e} > {gtol:e}"
            ));
        }
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            let d = (a - b).abs();
            let flip_ok = noise || gx[i].abs() <= gtol;
            if !d.is_finite() || d > 2.4 * lr || (d > lr / 10.0 && !flip_ok) {
                fails.push(format!(
                    "{what} {name}[{i}]: moved {d:e} apart with CPU gradient {:e} (tolerance {gtol:e})",
                    gx[i]
                ));
                break;
            }
            flips += (d > lr / 10.0) as usize;
        }
    }
    println!(
        "{what} step 0: gradients within {:.1e}·max|g| (in {}; tolerance {GRAD_TOL}); {flips} \
         weights moved apart (near-zero gradients)",
        worst.0, worst.1
    );
}

/// Parameters after `STEPS` Adam steps. Adam moves a weight by at most about lr per step whatever
/// its gradient's size (with betas (0, 0.9), up to √(0.19/0.1) ≈ 1.38·lr in the second step), so
/// a gradient whose sign differs between the devices puts that weight up to 2.4·lr apart per
/// step: every element must be within that. State without a gradient follows the weights, and
/// after they parted only a guard against gross errors applies: within 5% of max|x|.
fn check_store(what: &str, cpu: &ParamStore, gpu: &ParamStore, lr: f32, fails: &mut Vec<String>) {
    let bound = 2.4 * lr * STEPS as f32 + 1e-5;
    let mut worst = (0.0f32, String::new());
    for e in cpu.entries() {
        let ((x, gx), (y, _)) = (values(cpu, &e.name), values(gpu, &e.name));
        let limit = if gx.is_some() {
            bound
        } else {
            0.05 * max_abs(&x) + 1e-6
        };
        let mut max = 0.0f32;
        for (p, q) in x.iter().zip(&y) {
            let d = (p - q).abs();
            max = if d.is_finite() {
                max.max(d)
            } else {
                f32::INFINITY
            };
        }
        if gx.is_some() && max > worst.0 {
            worst = (max, e.name.clone());
        }
        if max > limit {
            fails.push(format!(
                "{what} {}: max |Δ| {max:e} (limit {limit:e})",
                e.name
            ));
        }
    }
    println!(
        "{what} params after {STEPS} steps: worst |Δ| {:e} in {} (bound {bound:e})",
        worst.0, worst.1
    );
}

/// Steps `cpu` and `gpu` `STEPS` times on `batch(100·step)` (moved to each one's device) and
/// compares the loss terms of every step, the first step's gradients and weights
/// (`check_first_step`) and the weights after the last (`check_store`), for the trainer's two
/// stores named `stores`.
fn compare_steps<T, B>(
    label: &str,
    stores: [&str; 2],
    (cpu, gpu): (&mut T, &mut T),
    batch: impl Fn(u64) -> B,
    step: impl Fn(&mut T, &B, Device) -> LossTerms,
    of: impl Fn(&T) -> [(&ParamStore, f32); 2],
) {
    let mut fails = Vec::new();
    for i in 0..STEPS {
        let b = batch(100 * i as u64);
        let (a, g) = (step(cpu, &b, Device::Cpu), step(gpu, &b, Device::Cuda));
        check_terms(&format!("{label} step {i}"), &a, &g, 2e-3, &mut fails);
        if i == 0 {
            for (name, ((c, lr), (g, _))) in stores.iter().zip(of(cpu).into_iter().zip(of(gpu))) {
                check_first_step(name, c, g, lr, &mut fails);
            }
        }
    }
    for (name, ((c, lr), (g, _))) in stores.iter().zip(of(cpu).into_iter().zip(of(gpu))) {
        check_store(name, c, g, lr, &mut fails);
    }
    finish(fails);
}

fn finish(fails: Vec<String>) {
    assert!(
        fails.is_empty(),
        "{} failures:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// A random stage-1 batch of 2 (every label channel active), seeds offset by `k`.
fn stage1_batch(cfg: &ModelConfig, k: u64) -> Stage1Batch {
    let (s, lc) = (cfg.image_size, cfg.label_channels());
    Stage1Batch {
        label: uniform(&[2, lc, s, s], 0.0, 1.0, 1 + k),
        exemplar: uniform(&[2, 3, s, s], -1.0, 1.0, 2 + k),
        gt: uniform(&[2, 3, s, s], -1.0, 1.0, 3 + k),
    }
}

#[test]
#[ignore]
fn stage1_trainer_steps_match_the_cpu() {
    if !gpu_ok() {
        return;
    }
    let cfg = cfg();
    let mut cpu = Stage1Trainer::new(&cfg, SEED, vgg()).unwrap();
    let mut gpu = Stage1Trainer::new(&cfg, SEED, vgg()).unwrap();
    gpu.to_device(Device::Cuda).unwrap();
    compare_steps(
        "stage1",
        ["stage1 G", "stage1 D"],
        (&mut cpu, &mut gpu),
        |k| stage1_batch(&cfg, k),
        |t, b, dev| t.step(&b.to_device(dev).unwrap(), 1.0).unwrap(),
        |t| [(&t.g_store, cfg.optim.g_lr), (&t.d_store, cfg.optim.d_lr)],
    );
}

/// Loss terms of one stage-1 step at tf32 and at bf16 on the GPU against the f32 step on the
/// CPU, relative to max(1, |cpu|): guards against a wrong path, not rounding bounds (those are
/// the kernel tests'). The emulated driver measured at most 2.2e-4 at either (perceptual_mse).
const TF32_RTOL: f32 = 2e-3;
const BF16_RTOL: f32 = 2e-3;

/// One stage-1 step at each tensor-core precision — the whole model on tf32 convs and matmuls,
/// then also the bf16 corr_warp — from the same init and batch as an f32 step on the CPU: every
/// loss term finite and near the CPU's, every parameter finite after the update.
#[test]
#[ignore]
fn stage1_steps_at_tf32_and_bf16() {
    if !gpu_ok() {
        return;
    }
    let cfg = cfg();
    let batch = stage1_batch(&cfg, 0);
    let mut cpu = Stage1Trainer::new(&cfg, SEED, vgg()).unwrap();
    let want = cpu.step(&batch, 1.0).unwrap();
    let mut fails = Vec::new();
    for (prec, rtol) in [(Precision::Tf32, TF32_RTOL), (Precision::Bf16, BF16_RTOL)] {
        let mut gpu = Stage1Trainer::new(&cfg, SEED, vgg()).unwrap();
        gpu.to_device(Device::Cuda).unwrap();
        let on_gpu = batch.to_device(Device::Cuda).unwrap();
        set_precision(prec);
        let got = gpu.step(&on_gpu, 1.0);
        set_precision(Precision::F32);
        check_terms(
            &format!("stage1 at {prec}"),
            &want,
            &got.unwrap(),
            rtol,
            &mut fails,
        );
        for store in [&gpu.g_store, &gpu.d_store] {
            for e in store.entries() {
                if values(store, &e.name).0.iter().any(|v| !v.is_finite()) {
                    fails.push(format!("{prec}: {} not finite after the step", e.name));
                }
            }
        }
    }
    finish(fails);
}

/// A frozen stage-1 store for the later stages, the same on both devices.
fn frozen_pair(cfg: &ModelConfig) -> (ParamStore, ParamStore) {
    let stage1 = Stage1Trainer::new(cfg, SEED, vgg()).unwrap();
    let cpu = copy_generator_store(&stage1.g_store, cfg).unwrap();
    let gpu = copy_generator_store(&stage1.g_store, cfg).unwrap();
    (cpu, gpu)
}

#[test]
#[ignore]
fn temporal_trainer_steps_match_the_cpu() {
    if !gpu_ok() {
        return;
    }
    let cfg = cfg();
    let (s, lc, l) = (cfg.image_size, cfg.label_channels(), cfg.temporal_window);
    let (fc, fg) = frozen_pair(&cfg);
    let mut cpu = TemporalTrainer::new(&cfg, fc, SEED ^ 0x7e, vgg()).unwrap();
    let mut gpu = TemporalTrainer::new(&cfg, fg, SEED ^ 0x7e, vgg()).unwrap();
    gpu.to_device(Device::Cuda).unwrap();
    let batch = |k: u64| TemporalBatch {
        labels: (0..l)
            .map(|i| uniform(&[2, lc, s, s], 0.0, 1.0, 10 + i as u64 + k))
            .collect(),
        frames: (0..l)
            .map(|i| uniform(&[2, 3, s, s], -1.0, 1.0, 20 + i as u64 + k))
            .collect(),
        exemplar: uniform(&[2, 3, s, s], -1.0, 1.0, 30 + k),
    };
    compare_steps(
        "temporal",
        ["G1", "D1"],
        (&mut cpu, &mut gpu),
        batch,
        |t, b, dev| t.step(&b.to_device(dev).unwrap(), 1.0).unwrap(),
        |t| [(&t.g_store, cfg.optim.g_lr), (&t.d_store, cfg.optim.d_lr)],
    );
}

#[test]
#[ignore]
fn face_trainer_steps_match_the_cpu() {
    if !gpu_ok() {
        return;
    }
    let cfg = cfg();
    let (s, lc, c) = (cfg.image_size, cfg.label_channels(), cfg.face_crop);
    let (fc, fg) = frozen_pair(&cfg);
    let mut cpu = FaceTrainer::new(&cfg, fc, SEED ^ 0xfa, vgg()).unwrap();
    let mut gpu = FaceTrainer::new(&cfg, fg, SEED ^ 0xfa, vgg()).unwrap();
    gpu.to_device(Device::Cuda).unwrap();
    let boxes = vec![
        CropBox {
            x: 3,
            y: 5,
            w: c as _,
            h: c as _,
        },
        CropBox {
            x: (s - c) as _,
            y: 0,
            w: c as _,
            h: c as _,
        },
    ];
    let batch = |k: u64| FaceBatch {
        label: uniform(&[2, lc, s, s], 0.0, 1.0, 40 + k),
        exemplar: uniform(&[2, 3, s, s], -1.0, 1.0, 41 + k),
        gt: uniform(&[2, 3, s, s], -1.0, 1.0, 42 + k),
        boxes: boxes.clone(),
    };
    compare_steps(
        "face",
        ["G2", "D2"],
        (&mut cpu, &mut gpu),
        batch,
        |t, b, dev| t.step(&b.to_device(dev).unwrap(), 1.0).unwrap(),
        |t| [(&t.g_store, cfg.optim.g_lr), (&t.d_store, cfg.optim.d_lr)],
    );
}

/// A fresh folder under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "engine_cuda_pipeline_{name}_{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn train_opts(
    frames: &Path,
    poses: &Path,
    out: &Path,
    plan: StagePlan,
    device: Device,
) -> TrainOptions {
    TrainOptions {
        target: frames.to_path_buf(),
        poses: poses.to_path_buf(),
        out: out.to_path_buf(),
        config: Some(cfg()),
        plan: Some(plan),
        batch: 2,
        checkpoint_every: 2,
        sample_every: 2,
        seed: SEED,
        holdout: 0.2,
        clip: ClipOptions::default(),
        resume: false,
        vgg: Some(VggChoice::Random { width_divisor: 8 }),
        exemplars: 3,
        device,
        profile_kernels: false,
    }
}

/// The PNG frames of a transfer output folder, in order.
fn read_frames(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8().into_raw())
        .collect()
}

/// `engine train` through all three stages on the GPU (stopped and resumed in the middle), then
/// `engine transfer` on each device from the GPU-trained run: the same frames within rounding.
#[test]
#[ignore]
fn train_resume_and_transfer_run_on_the_gpu() {
    if !gpu_ok() {
        return;
    }
    let dir = temp_dir("run");
    let (frames, poses) = (dir.join("frames"), dir.join("poses"));
    let synth = SynthOptions {
        width: 80,
        height: 72,
        frames: 12,
        ..SynthOptions::default()
    };
    engine::synth::write(&synth, None, Some(&frames), &poses).unwrap();
    let run = dir.join("run");
    // On the emulated driver (about 20 s per stage-1 iteration) half of everything: still a
    // checkpoint in each stage, a resume and a transfer batch.
    let emulated = common::emulated::emulated();
    let full = if emulated {
        StagePlan {
            stage1: 2,
            temporal: 1,
            face: 1,
        }
    } else {
        StagePlan {
            stage1: 4,
            temporal: 2,
            face: 2,
        }
    };
    let frames_out = if emulated { 3 } else { 6 };
    let first = StagePlan {
        temporal: 0,
        face: 0,
        ..full
    };
    // The first run also writes the kernel profile of its second iteration.
    let mut opts = train_opts(&frames, &poses, &run, first, Device::Cuda);
    opts.profile_kernels = true;
    let s1 = train(&opts, &mut |_| {}).unwrap();
    assert_eq!(s1.iteration, full.stage1);
    let profile = std::fs::read_to_string(run.join("kernel_profile.md")).unwrap();
    assert!(
        profile.contains("iteration 2 of `engine train`") && profile.contains("| conv2d_"),
        "{profile}"
    );
    let mut resume = train_opts(&frames, &poses, &run, full, Device::Cuda);
    resume.resume = true;
    resume.config = None;
    let s2 = train(&resume, &mut |_| {}).unwrap();
    let total = full.stage1 + full.temporal + full.face;
    assert_eq!((s2.start_iteration, s2.iteration), (full.stage1, total));
    for (name, v) in &s2.last_terms.terms {
        assert!(v.is_finite(), "{name} = {v}");
    }
    let mut outs = Vec::new();
    for (name, device) in [("cpu", Device::Cpu), ("gpu", Device::Cuda)] {
        let out = dir.join(format!("transfer_{name}"));
        let summary = transfer(
            &TransferOptions {
                source: frames.clone(),
                source_poses: poses.clone(),
                model: run.clone(),
                out: out.clone(),
                crop: CropMode::Centre,
                max_frames: Some(frames_out),
                allow_missing_person: false,
                normalization: None,
                exemplar: ExemplarChoice::Auto,
                side_by_side: false,
                batch: 3,
                overwrite: true,
                device,
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(summary.frames, frames_out);
        outs.push(read_frames(&out));
    }
    let (a, b) = (&outs[0], &outs[1]);
    assert_eq!(a.len(), b.len());
    let (mut sum, mut n, mut max) = (0u64, 0u64, 0u8);
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            let d = p.abs_diff(*q);
            sum += d as u64;
            n += 1;
            max = max.max(d);
        }
    }
    let mean = sum as f64 / n as f64;
    println!("transfer cpu vs gpu: mean |Δ| {mean:.3} max {max} (bytes)");
    // Same weights, f32 on both: rounding moves a pixel by a byte at most, here and there.
    assert!(mean <= 0.5 && max <= 8, "mean {mean} max {max}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}

//! Training-run tests on a small synthetic dancer (PNG frames + exact poses).

use super::*;
use crate::synth::SynthOptions;
use crate::tensor::Tensor;
use crate::video::test_frames::TempDir;

fn dancer(dir: &Path) -> (PathBuf, PathBuf) {
    let opts = SynthOptions {
        width: 80,
        height: 72,
        frames: 12,
        ..SynthOptions::default()
    };
    let (frames, poses) = (dir.join("frames"), dir.join("poses"));
    crate::synth::write(&opts, None, Some(&frames), &poses).unwrap();
    (frames, poses)
}

fn options(frames: &Path, poses: &Path, out: &Path, iterations: u64) -> TrainOptions {
    TrainOptions {
        target: frames.to_path_buf(),
        poses: poses.to_path_buf(),
        out: out.to_path_buf(),
        config: Some(ModelConfig::preset("tiny").unwrap()),
        plan: Some(StagePlan {
            stage1: iterations,
            ..StagePlan::default()
        }),
        batch: 2,
        checkpoint_every: 2,
        sample_every: 3,
        seed: 5,
        holdout: 0.2,
        clip: ClipOptions::default(),
        resume: false,
        vgg: Some(VggChoice::Random { width_divisor: 16 }),
        exemplars: 3,
        device: Device::Cpu,
        profile_kernels: false,
    }
}

fn generator_params(run: &Path) -> BTreeMap<String, Tensor> {
    let dir = checkpoint::resolve(run).unwrap();
    crate::nn::safetensors_io::load_tensors(dir.join(checkpoint::GENERATOR_FILE)).unwrap()
}

use std::collections::BTreeMap;

#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    let tmp = TempDir::new("train_resume");
    let (frames, poses) = dancer(tmp.path());
    let straight = tmp.path().join("straight");
    let split = tmp.path().join("split");
    let s = train(&options(&frames, &poses, &straight, 4), &mut |_| {}).unwrap();
    assert_eq!((s.start_iteration, s.iteration), (0, 4));
    // The same plan stopped after 2 iterations, then resumed: iterations 0 and 1 run at lr factor
    // 1.0 under a plan of 2 and of 4 alike (the decay starts at half the plan).
    let mut first = options(&frames, &poses, &split, 2);
    first.checkpoint_every = 100;
    train(&first, &mut |_| {}).unwrap();
    let mut resume = options(&frames, &poses, &split, 4);
    resume.resume = true;
    resume.config = None;
    resume.vgg = None;
    let r = train(&resume, &mut |_| {}).unwrap();
    assert_eq!((r.start_iteration, r.iteration), (2, 4));
    let (a, b) = (generator_params(&straight), generator_params(&split));
    assert_eq!(a.len(), b.len());
    for (name, ta) in &a {
        let (x, y) = (ta.cpu_data().unwrap(), b[name].cpu_data().unwrap());
        let err = x
            .iter()
            .zip(y.iter())
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-5, "{name}: resumed differs by {err}");
    }
    // The log holds each iteration once, the plot and the sample sheets exist.
    let log = std::fs::read_to_string(split.join("losses.csv")).unwrap();
    let its: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    for it in 1..=4 {
        let n = its.iter().filter(|x| **x == it.to_string()).count();
        assert!(
            n > 0 && n == its.iter().filter(|x| **x == "1").count(),
            "iteration {it}: {n} rows"
        );
    }
    assert!(split.join("losses.png").is_file());
    assert!(split.join("samples").join("iter_0000003.png").is_file());
    let state = checkpoint::read_state(&checkpoint::resolve(&split).unwrap()).unwrap();
    assert_eq!(state.iteration, 4);
}

#[test]
fn refuses_to_overwrite_or_resume_wrongly() {
    let tmp = TempDir::new("train_refuse");
    let (frames, poses) = dancer(tmp.path());
    let out = tmp.path().join("run");
    // Resume without a checkpoint.
    let mut o = options(&frames, &poses, &out, 2);
    o.resume = true;
    let e = train(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    o.resume = false;
    train(&o, &mut |_| {}).unwrap();
    let before = generator_params(&out);
    // A second fresh run into the same folder is refused and changes nothing.
    let e = train(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    // Resuming with another config is refused.
    o.resume = true;
    let mut other = ModelConfig::preset("tiny").unwrap();
    other.label = crate::pose::LabelKind::Cocosnet;
    o.config = Some(other);
    let e = train(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("different model config"), "{e}");
    // Resuming on another target video is refused.
    let mut elsewhere = o.clone();
    elsewhere.config = None;
    elsewhere.target = tmp.path().join("other_frames");
    let e = train(&elsewhere, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("same --target"), "{e}");
    let after = generator_params(&out);
    assert!(before
        .iter()
        .all(|(k, v)| after[k].cpu_data().unwrap() == v.cpu_data().unwrap()));
    // Bad numbers are refused before any file is touched.
    o.config = None;
    o.holdout = 1.5;
    assert!(train(&o, &mut |_| {}).is_err());
    // A kernel profile needs the GPU.
    o.holdout = 0.2;
    o.profile_kernels = true;
    let e = train(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(
        e.contains("--profile-kernels") && e.contains("--device cuda"),
        "{e}"
    );
}

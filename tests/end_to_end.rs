//! The whole pipeline through the built binary on generated data: synthetic target and source
//! videos with exact poses → `engine train` (tiny, a few stage-1 iterations) → checkpoint →
//! `--resume` into the temporal and face stages →
//! `engine transfer` to an mp4 (decoded back: frame count and size) → `engine extract` +
//! `engine eval` of a self-transfer. Then the bad inputs: each must fail with a message naming
//! the file and leave existing output untouched.

#![cfg(feature = "video")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("engine_e2e_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("run engine")
}

fn ok(args: &[&str]) -> String {
    let out = engine(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "engine {args:?} failed:\n{text}");
    text
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = engine(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "engine {args:?} should have failed");
    assert!(
        stderr.contains("error:"),
        "no error line for {args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn synth(dir: &Path, frames: &str, size: &str, seed: &str, scale: &str) -> (PathBuf, PathBuf) {
    ok(&[
        "synth",
        "--out",
        s(dir),
        "--frames",
        frames,
        "--size",
        size,
        "--seed",
        seed,
        "--scale",
        scale,
    ]);
    (dir.join("video.mp4"), dir.join("poses"))
}

fn train_args<'a>(video: &'a str, poses: &'a str, run: &'a str, iters: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--target",
        video,
        "--poses",
        poses,
        "--out",
        run,
        "--config",
        "tiny",
        "--iters",
        iters,
        "--checkpoint-every",
        "2",
        "--sample-every",
        "2",
        "--batch",
        "2",
        "--vgg",
        "random",
        "--device",
        "cpu",
    ]
}

fn decoded_frames(path: &Path) -> (usize, (u32, u32)) {
    let mut src = engine::video::open_frames(path).unwrap();
    let mut n = 0;
    let mut size = (0, 0);
    for f in &mut src {
        size = f.unwrap().size();
        n += 1;
    }
    (n, size)
}

#[test]
fn train_resume_transfer_eval_on_generated_videos() {
    let dir = temp_dir("pipeline");
    let (target, target_poses) = synth(&dir.join("target"), "16", "96x80", "3", "0.8");
    let (source, source_poses) = synth(&dir.join("source"), "10", "120x90", "4", "0.6");
    let run = dir.join("run");
    let text = ok(&train_args(s(&target), s(&target_poses), s(&run), "3"));
    assert!(text.contains("trained iterations 0..3"), "{text}");
    let text = ok(&[
        train_args(s(&target), s(&target_poses), s(&run), "3"),
        vec!["--temporal-iters", "1", "--face-iters", "1", "--resume"],
    ]
    .concat());
    assert!(text.contains("trained iterations 3..5"), "{text}");
    for f in [
        "losses.csv",
        "losses.png",
        "samples/iter_0000004.png",
        "ckpt/state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    let out = dir.join("out.mp4");
    let text = ok(&[
        "transfer",
        "--source",
        s(&source),
        "--source-poses",
        s(&source_poses),
        "--target-model",
        s(&run),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    assert!(text.contains("frames/s"), "{text}");
    assert!(text.contains("G + G1 (temporal) + G2 (face)"), "{text}");
    assert_eq!(decoded_frames(&out), (10, (64, 64)));
    let side = dir.join("side.mp4");
    ok(&[
        "transfer",
        "--source",
        s(&source),
        "--source-poses",
        s(&source_poses),
        "--target-model",
        s(&run),
        "--out",
        s(&side),
        "--side-by-side",
        "--exemplar",
        "nearest",
        "--max-frames",
        "4",
    ]);
    assert_eq!(decoded_frames(&side), (4, (192, 64)));

    // Self-transfer of the target, scored against the target's own frames at the model size.
    let recon = dir.join("recon.mp4");
    ok(&[
        "transfer",
        "--source",
        s(&target),
        "--source-poses",
        s(&target_poses),
        "--target-model",
        s(&run),
        "--out",
        s(&recon),
        "--normalize",
        "none",
    ]);
    let truth = dir.join("truth");
    ok(&["extract", s(&target), "--out", s(&truth), "--size", "64"]);
    let json = dir.join("eval.json");
    let text = ok(&[
        "eval",
        "--pred",
        s(&recon),
        "--truth",
        s(&truth),
        "--json",
        s(&json),
    ]);
    assert!(
        text.to_lowercase().contains("ssim") && text.to_lowercase().contains("psnr"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ssim = v
        .pointer("/summary/ssim/mean")
        .and_then(|x| x.as_f64())
        .expect("ssim.mean in the JSON");
    assert!(ssim.is_finite() && ssim > -1.0 && ssim < 1.0, "ssim {ssim}");
}

#[test]
fn bad_inputs_fail_clearly_and_overwrite_nothing() {
    let dir = temp_dir("bad");
    let (target, poses) = synth(&dir.join("target"), "8", "64x64", "5", "0.8");
    let run = dir.join("run");
    let run_s = s(&run).to_string();

    // A GPU precision on the CPU, and a precision that does not exist.
    let mut args = train_args(s(&target), s(&poses), &run_s, "1");
    args.extend(["--precision", "tf32"]);
    let e = fails(&args);
    assert!(e.contains("--precision tf32") && e.contains("GPU"), "{e}");
    args.pop();
    args.push("f16");
    let e = fails(&args);
    assert!(e.contains("f16"), "{e}");

    // Missing video and missing pose folder.
    let missing = dir.join("nope.mp4");
    let e = fails(&train_args(s(&missing), s(&poses), &run_s, "1"));
    assert!(e.contains("nope.mp4"), "{e}");
    let e = fails(&train_args(
        s(&target),
        s(&dir.join("no_poses")),
        &run_s,
        "1",
    ));
    assert!(e.contains("no_poses"), "{e}");

    // A truncated video and a text file posing as one.
    let bytes = std::fs::read(&target).unwrap();
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len().min(600)]).unwrap();
    let e = fails(&train_args(s(&truncated), s(&poses), &run_s, "1"));
    assert!(e.contains("truncated.mp4"), "{e}");
    let text = dir.join("text.mp4");
    std::fs::write(&text, "not a video at all").unwrap();
    let e = fails(&train_args(s(&text), s(&poses), &run_s, "1"));
    assert!(e.contains("text.mp4"), "{e}");

    // Fewer pose files than frames; a pose file without a person.
    let few = dir.join("few_poses");
    std::fs::create_dir_all(&few).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&poses)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in &names[..4] {
        std::fs::copy(p, few.join(p.file_name().unwrap())).unwrap();
    }
    let e = fails(&train_args(s(&target), s(&few), &run_s, "1"));
    assert!(e.contains("few_poses"), "{e}");
    let empty = dir.join("empty_person");
    std::fs::create_dir_all(&empty).unwrap();
    for p in &names {
        std::fs::copy(p, empty.join(p.file_name().unwrap())).unwrap();
    }
    let victim = empty.join(names[2].file_name().unwrap());
    std::fs::write(&victim, r#"{"version": 1.3, "people": []}"#).unwrap();
    let e = fails(&train_args(s(&target), s(&empty), &run_s, "1"));
    assert!(
        e.contains(victim.file_name().unwrap().to_str().unwrap()),
        "{e}"
    );
    assert!(
        !run.join("ckpt").exists(),
        "a failed start left a checkpoint"
    );

    // A real run, then: a fresh start into it, and a resume with another config, are refused.
    ok(&train_args(s(&target), s(&poses), &run_s, "2"));
    let ckpt = run.join("ckpt").join("generator.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let e = fails(&train_args(s(&target), s(&poses), &run_s, "2"));
    assert!(e.contains("--resume"), "{e}");
    let mut other = train_args(s(&target), s(&poses), &run_s, "4");
    other[8] = "small";
    other.push("--resume");
    let e = fails(&other);
    assert!(e.contains("different model config"), "{e}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint changed");

    // Transfer: no checkpoint there, an existing output, an unwritable output.
    let out = dir.join("out.mp4");
    std::fs::write(&out, "keep me").unwrap();
    let t = |model: &str, out: &str| {
        vec![
            "transfer".to_string(),
            "--source".into(),
            s(&target).into(),
            "--source-poses".into(),
            s(&poses).into(),
            "--target-model".into(),
            model.into(),
            "--out".into(),
            out.into(),
        ]
    };
    let run_t = |args: Vec<String>| fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = run_t(t(s(&dir.join("no_run")), s(&dir.join("x.mp4"))));
    assert!(e.contains("no_run"), "{e}");
    let e = run_t(t(&run_s, s(&out)));
    assert!(e.contains("out.mp4") && e.contains("--overwrite"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let blocked = dir.join("a_file");
    std::fs::write(&blocked, "x").unwrap();
    let e = run_t(t(&run_s, s(&blocked.join("sub").join("o.mp4"))));
    assert!(e.contains("a_file"), "{e}");
}

/// `engine train` and `engine transfer` with a video alone: the engine's pose network writes the
/// poses (OUT/poses and <out>_source_poses/), frames where it finds nobody get an empty label.
#[test]
fn video_alone_gets_poses_from_the_pose_network() {
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/openpose_mobilenet_thin.safetensors");
    if !weights.is_file() {
        eprintln!(
            "skipped: {} missing (run python3 tools/weights/fetch.py)",
            weights.display()
        );
        return;
    }
    let dir = temp_dir("auto_poses");
    let (target, _) = synth(&dir.join("target"), "6", "128x128", "8", "0.85");
    let run = dir.join("run");
    let mut args = train_args(s(&target), "", s(&run), "2");
    args.drain(3..5); // no --poses
    args.extend(["--pose-weights", s(&weights)]);
    let text = ok(&args);
    assert!(text.contains("estimating them into"), "{text}");
    assert!(run.join("poses/poses_complete.txt").is_file());
    let json = std::fs::read_dir(run.join("poses")).unwrap().count();
    assert_eq!(json, 7, "6 pose files and the completion marker");
    let out = dir.join("t.mp4");
    ok(&[
        "transfer",
        "--source",
        s(&target),
        "--target-model",
        s(&run),
        "--out",
        s(&out),
        "--pose-weights",
        s(&weights),
    ]);
    assert!(dir.join("t_source_poses/poses_complete.txt").is_file());
    assert_eq!(decoded_frames(&out).0, 6);
}

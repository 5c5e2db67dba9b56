//! `engine synth` end to end: the built binary writes a video (or frames) and one OpenPose JSON
//! per frame, and the poses read back equal the library's own generation.

use std::path::PathBuf;
use std::process::Command;

use engine::pose::{read_pose_folder, ReadOptions};
use engine::synth::{generate, SynthOptions};
use engine::video::FrameRate;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("engine_synth_cli_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

#[test]
fn synth_writes_video_or_frames_and_exact_poses() {
    let dir = temp_dir("run");
    let out = engine()
        .args(["synth", "--out"])
        .arg(&dir)
        .args([
            "--frames", "12", "--size", "128x96", "--fps", "25", "--seed", "7",
        ])
        .args(["--scale", "0.6", "--offset", "-10,5", "--png"])
        .output()
        .expect("run engine");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "engine synth failed: {stderr}");
    assert!(
        stderr.contains("synth: frame 12/12"),
        "no progress line: {stderr}"
    );

    let poses = read_pose_folder(&dir.join("poses"), &ReadOptions::default()).unwrap();
    let opts = SynthOptions {
        width: 128,
        height: 96,
        frames: 12,
        fps: FrameRate::new(25, 1).unwrap(),
        seed: 7,
        scale: 0.6,
        offset: (-10.0, 5.0),
        ..SynthOptions::default()
    };
    let (frames, want) = generate(&opts).unwrap();
    assert_eq!(poses, want);

    let pngs = engine::video::FolderReader::open(dir.join("frames")).unwrap();
    assert_eq!(pngs.len(), 12);
    let first = pngs.read(0).unwrap();
    assert_eq!(first, frames[0]);

    #[cfg(feature = "video")]
    {
        let dec = engine::video::VideoDecoder::open(dir.join("video.mp4"))
            .unwrap_or_else(|e| panic!("decoding the synth video back: {e}"));
        assert_eq!((dec.info().width, dec.info().height), (128, 96));
        let n = dec
            .map(|f| f.unwrap())
            .filter(|f| f.size() == (128, 96))
            .count();
        assert_eq!(n, 12);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synth_rejects_bad_arguments() {
    let dir = temp_dir("bad");
    for args in [
        vec!["--size", "128"],
        vec!["--size", "0x64"],
        vec!["--offset", "3"],
        vec!["--frames", "0"],
        vec!["--scale", "-1"],
    ] {
        let out = engine()
            .args(["synth", "--out"])
            .arg(&dir)
            .args(&args)
            .output()
            .expect("run engine");
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

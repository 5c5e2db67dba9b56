//! `engine extract` and `engine eval` end to end on a synthetic dancer: the built binary on a
//! video (a PNG folder without the `video` feature), the files it writes, and bad inputs
//! answered with a non-zero exit, a message naming the path, and nothing overwritten.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use engine::pose::write_pose_file;
use engine::synth::{generate, pose_file_name, SynthOptions};
use engine::video::{FolderReader, FolderWriter, Frame, FrameRate, ImageFormat};

const W: u32 = 64;
const H: u32 = 48;
const N: usize = 8;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "engine_data_pipeline_{}_{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("run engine")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_frames(dir: &Path, frames: &[Frame]) {
    let mut w = FolderWriter::create(dir, ImageFormat::Png, false).unwrap();
    frames.iter().for_each(|f| drop(w.push(f).unwrap()));
}

/// The dancer as frames/ and poses/ (and video.mp4 with the `video` feature); returns the frames
/// and the input to extract from.
fn dancer(s: &Scratch) -> (Vec<Frame>, PathBuf) {
    let opts = SynthOptions {
        width: W,
        height: H,
        frames: N,
        fps: FrameRate::new(25, 1).unwrap(),
        seed: 11,
        ..SynthOptions::default()
    };
    let (frames, poses) = generate(&opts).unwrap();
    write_frames(&s.join("frames"), &frames);
    std::fs::create_dir_all(s.join("poses")).unwrap();
    for (i, p) in poses.iter().enumerate() {
        write_pose_file(&s.join("poses").join(pose_file_name(i)), p).unwrap();
    }
    #[cfg(feature = "video")]
    let input = {
        use engine::video::{EncodeOptions, VideoEncoder};
        let path = s.join("video.mp4");
        let mut enc =
            VideoEncoder::create(&path, W, H, opts.fps, &EncodeOptions::default()).unwrap();
        frames.iter().for_each(|f| enc.push(f).unwrap());
        enc.finish().unwrap();
        path
    };
    #[cfg(not(feature = "video"))]
    let input = s.join("frames");
    (frames, input)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn extract_writes_model_size_frames_and_the_crop() {
    let s = Scratch::new("extract");
    let (_, input) = dancer(&s);
    let out = s.join("out");
    let o = engine(&[&"extract", &input, &"--out", &out, &"--size", &"32"]);
    assert!(o.status.success(), "extract failed: {}", stderr(&o));
    assert!(
        stderr(&o).contains("frames/s"),
        "no rate line: {}",
        stderr(&o)
    );
    let frames = FolderReader::open(&out).unwrap();
    assert_eq!(frames.len(), N);
    assert!(frames.map(|f| f.unwrap().size()).all(|sz| sz == (32, 32)));
    let crop = read_json(&out.join("crop.json"));
    assert_eq!(
        crop["crop"],
        serde_json::json!({"x": 8, "y": 0, "w": 48, "h": 48})
    );
    assert_eq!(crop["source_size"], serde_json::json!([W, H]));
    assert_eq!(crop["frames"], serde_json::json!(N));
    assert_eq!(crop["size"], serde_json::json!(32));
    let want_fps = if cfg!(feature = "video") {
        serde_json::json!([25, 1])
    } else {
        serde_json::Value::Null
    };
    assert_eq!(crop["fps"], want_fps);

    // A box, a frame limit, and the person crop from the poses.
    let out3 = s.join("out3");
    let o = engine(&[
        &"extract",
        &input,
        &"--out",
        &out3,
        &"--size",
        &"16",
        &"--crop",
        &"4,2,30,40",
        &"--max-frames",
        &"5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(FolderReader::open(s.join("out3")).unwrap().len(), 5);
    let crop = read_json(&s.join("out3/crop.json"));
    assert_eq!(
        crop["crop"],
        serde_json::json!({"x": 4, "y": 2, "w": 30, "h": 40})
    );
    let o = engine(&[
        &"extract",
        &input,
        &"--out",
        &s.join("out4"),
        &"--size",
        &"16",
        &"--person-crop",
        &"--poses",
        &s.join("poses"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let crop = read_json(&s.join("out4/crop.json"))["crop"].clone();
    assert_eq!(crop["w"], crop["h"]);
    assert_eq!(FolderReader::open(s.join("out4")).unwrap().len(), N);
}

/// Every file of `dir` with its bytes, to check that a refused run changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

fn assert_refused(o: &Output, path: &Path, what: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "{what}: accepted");
    assert!(
        err.contains(&path.display().to_string()),
        "{what}: the message does not name {}: {err}",
        path.display()
    );
}

#[test]
fn extract_refuses_bad_inputs_and_overwrites_nothing() {
    let s = Scratch::new("extract_bad");
    let (frames, input) = dancer(&s);
    let out = s.join("out");

    let missing = s.join("no_such_video.mp4");
    assert_refused(
        &engine(&[&"extract", &missing, &"--out", &out]),
        &missing,
        "missing file",
    );
    assert!(!out.exists(), "a refused run created the output folder");

    let junk = s.join("junk.mp4");
    std::fs::write(&junk, b"this is not a video at all").unwrap();
    assert_refused(
        &engine(&[&"extract", &junk, &"--out", &out]),
        &junk,
        "non-video file",
    );
    #[cfg(feature = "video")]
    {
        let bytes = std::fs::read(&input).unwrap();
        let cut = s.join("truncated.mp4");
        std::fs::write(&cut, &bytes[..bytes.len().min(200)]).unwrap();
        assert_refused(
            &engine(&[&"extract", &cut, &"--out", &out]),
            &cut,
            "truncated video",
        );
    }
    assert!(!out.exists());

    // A non-empty output folder is left alone without --overwrite.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"keep me").unwrap();
    write_frames(&out, &frames[..2]);
    let before = snapshot(&out);
    assert_refused(
        &engine(&[&"extract", &input, &"--out", &out]),
        &out,
        "non-empty output",
    );
    assert_eq!(
        snapshot(&out),
        before,
        "a refused run changed the output folder"
    );
    let o = engine(&[
        &"extract",
        &input,
        &"--out",
        &out,
        &"--size",
        &"16",
        &"--overwrite",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(FolderReader::open(&out).unwrap().len(), N);
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"keep me");

    // An output path that cannot be a folder (below a regular file).
    let blocked = s.join("notes_file");
    std::fs::write(&blocked, b"x").unwrap();
    let inside = blocked.join("out");
    assert_refused(
        &engine(&[&"extract", &input, &"--out", &inside]),
        &blocked,
        "unwritable output",
    );

    let bad_crop = engine(&[
        &"extract",
        &input,
        &"--out",
        &s.join("o5"),
        &"--crop",
        &"64,0,30,30",
    ]);
    assert!(!bad_crop.status.success() && stderr(&bad_crop).contains("CropBox"));
    let no_poses = engine(&[
        &"extract",
        &input,
        &"--out",
        &s.join("o6"),
        &"--person-crop",
    ]);
    assert!(!no_poses.status.success());
}

/// Frames with seeded ±`amp` noise.
fn noisy(frames: &[Frame], amp: i32) -> Vec<Frame> {
    let mut rng = engine::tensor::Rng::new(9);
    frames
        .iter()
        .map(|f| {
            let mut g = f.clone();
            for v in g.data_mut() {
                let d = (rng.uniform() * (2 * amp + 1) as f64) as i32 - amp;
                *v = (*v as i32 + d).clamp(0, 255) as u8;
            }
            g
        })
        .collect()
}

#[test]
fn eval_of_itself_noise_and_mismatches() {
    let s = Scratch::new("eval");
    let (frames, _) = dancer(&s);
    let truth = s.join("frames");
    let json = s.join("self.json");
    let o = engine(&[
        &"eval", &"--pred", &truth, &"--truth", &truth, &"--json", &json,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("inf") && table.contains("ssim"), "{table}");
    let r = read_json(&json);
    assert_eq!(r["frames"], serde_json::json!(N));
    assert_eq!(r["summary"]["ssim"]["mean"], serde_json::json!(1.0));
    assert_eq!(r["summary"]["psnr_db"]["mean"], serde_json::Value::Null);
    assert_eq!(
        r["summary"]["psnr_db"]["mean_infinite"],
        serde_json::json!(true)
    );
    assert_eq!(r["identical_frames"], serde_json::json!(N));

    let noisy_frames = noisy(&frames, 12);
    write_frames(&s.join("noisy"), &noisy_frames);
    let json = s.join("noisy.json");
    let o = engine(&[
        &"eval",
        &"--pred",
        &s.join("noisy"),
        &"--truth",
        &truth,
        &"--json",
        &json,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_json(&json);
    let n = N as f64;
    let want_ssim: f64 = (0..N)
        .map(|i| engine::metrics::ssim(&noisy_frames[i], &frames[i]).unwrap())
        .sum::<f64>()
        / n;
    let want_psnr: f64 = (0..N)
        .map(|i| engine::metrics::psnr(&noisy_frames[i], &frames[i]).unwrap())
        .sum::<f64>()
        / n;
    let got_ssim = r["summary"]["ssim"]["mean"].as_f64().unwrap();
    let got_psnr = r["summary"]["psnr_db"]["mean"].as_f64().unwrap();
    assert!(
        (got_ssim - want_ssim).abs() < 1e-12 && got_ssim < 0.99,
        "{got_ssim} vs {want_ssim}"
    );
    assert!(
        (got_psnr - want_psnr).abs() < 1e-9 && got_psnr > 20.0,
        "{got_psnr} vs {want_psnr}"
    );
    assert_eq!(r["per_frame"].as_array().unwrap().len(), N);

    // Frame counts differ: refused without --frames, fine with it.
    write_frames(&s.join("short"), &frames[..5]);
    let o = engine(&[&"eval", &"--pred", &truth, &"--truth", &s.join("short")]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("--frames") && err.contains("8") && err.contains("5"),
        "{err}"
    );
    let o = engine(&[
        &"eval",
        &"--pred",
        &truth,
        &"--truth",
        &s.join("short"),
        &"--frames",
        &"5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("frames: 5"));
    let o = engine(&[
        &"eval",
        &"--pred",
        &truth,
        &"--truth",
        &s.join("short"),
        &"--frames",
        &"6",
    ]);
    assert_refused(&o, &s.join("short"), "--frames beyond the shorter input");

    // Sizes differ: refused without --size, resized with it.
    let small: Vec<Frame> = frames.iter().map(|f| f.resize(32, 24).unwrap()).collect();
    write_frames(&s.join("small"), &small);
    let o = engine(&[&"eval", &"--pred", &s.join("small"), &"--truth", &truth]);
    assert!(
        !o.status.success() && stderr(&o).contains("--size"),
        "{}",
        stderr(&o)
    );
    let o = engine(&[
        &"eval",
        &"--pred",
        &s.join("small"),
        &"--truth",
        &truth,
        &"--size",
        &"24",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Extra metrics are asked for with --weights; a folder without any of their weights is refused.
    let empty = s.join("no_weights");
    std::fs::create_dir_all(&empty).unwrap();
    let o = engine(&[
        &"eval",
        &"--pred",
        &truth,
        &"--truth",
        &truth,
        &"--weights",
        &empty,
    ]);
    assert_refused(&o, &empty, "weights folder without weights");

    let missing = s.join("missing_dir");
    assert_refused(
        &engine(&[&"eval", &"--pred", &missing, &"--truth", &truth]),
        &missing,
        "missing pred",
    );
    let junk = s.join("junk.mp4");
    std::fs::write(&junk, b"not a video").unwrap();
    assert_refused(
        &engine(&[&"eval", &"--pred", &truth, &"--truth", &junk]),
        &junk,
        "non-video truth",
    );
}

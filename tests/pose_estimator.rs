//! The pose estimator: PAF decoding and person assembly on synthetic maps rendered from known
//! poses, main-person choice and tracking, the layer-graph loader on a tiny generated graph, and
//! (when the converted weights and the NumPy reference exist) parity of the real network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::model::pose_net::PoseNet;
use engine::nn::safetensors_io::{load_tensors, save_tensors};
use engine::pose::paf::{decode, DecodeOptions, Tracker, PAF_PAIRS};
use engine::pose::{Keypoint, Pose, NUM_KEYPOINTS};
use engine::Tensor;

// ---- synthetic maps ---------------------------------------------------------------------------

/// A standing figure: (x, y) per keypoint for a body `height` pixels tall with its neck at `at`.
fn figure(at: (f32, f32), height: f32) -> Pose {
    #[rustfmt::skip]
    const UNIT: [(f32, f32); NUM_KEYPOINTS] = [
        (0.0, -0.10), (0.0, 0.0), (-0.12, 0.0), (-0.20, 0.15), (-0.22, 0.30), (0.12, 0.0),
        (0.20, 0.15), (0.22, 0.30), (-0.08, 0.35), (-0.09, 0.55), (-0.10, 0.75), (0.08, 0.35),
        (0.09, 0.55), (0.10, 0.75), (-0.03, -0.13), (0.03, -0.13), (-0.06, -0.11), (0.06, -0.11),
    ];
    let mut p = Pose::missing();
    for (k, (ux, uy)) in p.keypoints.iter_mut().zip(UNIT) {
        *k = Keypoint::new(at.0 + ux * height, at.1 + uy * height, 1.0);
    }
    p
}

/// Heatmaps [19, h, w] (Gaussians of σ at each keypoint, background last) and PAFs [38, h, w]
/// (unit vectors within `width` pixels of each limb, averaged where people overlap).
fn render(people: &[Pose], h: usize, w: usize, sigma: f32, width: f32) -> (Tensor, Tensor) {
    let mut heat = vec![0.0f32; 19 * h * w];
    let mut paf = vec![0.0f32; 38 * h * w];
    let mut count = vec![0u32; 19 * h * w];
    for p in people {
        for (k, kp) in p.keypoints.iter().enumerate() {
            for (i, v) in heat[k * h * w..(k + 1) * h * w].iter_mut().enumerate() {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let d2 = (x - kp.x).powi(2) + (y - kp.y).powi(2);
                *v = v.max((-d2 / (2.0 * sigma * sigma)).exp());
            }
        }
        for (pair, &(a, b, cx, cy)) in PAF_PAIRS.iter().enumerate() {
            let (ka, kb) = (p.keypoints[a], p.keypoints[b]);
            let (dx, dy) = (kb.x - ka.x, kb.y - ka.y);
            let len = (dx * dx + dy * dy).sqrt();
            let (ux, uy) = (dx / len, dy / len);
            for i in 0..h * w {
                let (x, y) = ((i % w) as f32 - ka.x, (i / w) as f32 - ka.y);
                let along = x * ux + y * uy;
                let across = (x * uy - y * ux).abs();
                if along >= -width && along <= len + width && across <= width {
                    paf[cx * h * w + i] += ux;
                    paf[cy * h * w + i] += uy;
                    count[pair * h * w + i] += 1;
                }
            }
        }
    }
    for (pair, &(_, _, cx, cy)) in PAF_PAIRS.iter().enumerate() {
        for i in 0..h * w {
            let n = count[pair * h * w + i].max(1) as f32;
            paf[cx * h * w + i] /= n;
            paf[cy * h * w + i] /= n;
        }
    }
    for i in 0..h * w {
        let m = (0..18).map(|k| heat[k * h * w + i]).fold(0.0, f32::max);
        heat[18 * h * w + i] = 1.0 - m;
    }
    (
        Tensor::from_vec(heat, [19, h, w]).unwrap(),
        Tensor::from_vec(paf, [38, h, w]).unwrap(),
    )
}

/// Largest keypoint distance between two poses (every point must be present in both).
fn max_error(got: &Pose, want: &Pose) -> f32 {
    let mut worst = 0.0f32;
    for (k, (g, w)) in got.keypoints.iter().zip(&want.keypoints).enumerate() {
        assert!(g.is_present(), "keypoint {k} missing: {got:?}");
        worst = worst.max(((g.x - w.x).powi(2) + (g.y - w.y).powi(2)).sqrt());
    }
    worst
}

#[test]
fn decode_recovers_two_people() {
    // Sub-pixel positions, two sizes, a 48×64 map (the network's stride-8 grid of a 384×512 input).
    let a = figure((18.3, 12.6), 36.0);
    let b = figure((47.7, 17.2), 26.0);
    let (heat, paf) = render(&[a, b], 48, 64, 1.0, 1.0);
    let people = decode(&heat, &paf, &DecodeOptions::default()).unwrap();
    assert_eq!(people.len(), 2, "{people:#?}");
    for (want, name) in [(a, "a"), (b, "b")] {
        let got = people
            .iter()
            .find(|p| (p.pose.keypoints[1].x - want.keypoints[1].x).abs() < 3.0)
            .unwrap_or_else(|| panic!("person {name} not found"));
        assert_eq!(got.parts, NUM_KEYPOINTS);
        let err = max_error(&got.pose, &want);
        // 1/8 map pixel: one pixel of the frame at the network's stride of 8.
        println!("person {name}: max keypoint error {err:.3} map px (tolerance 0.125)");
        assert!(err < 0.125, "person {name}: error {err} map px");
    }
    // Without smoothing or upsampling the peaks are still found within a pixel.
    let raw = DecodeOptions {
        upsample: 1,
        smooth_sigma: 0.0,
        ..DecodeOptions::default()
    };
    let people = decode(&heat, &paf, &raw).unwrap();
    assert_eq!(people.len(), 2);
    for p in &people {
        let want = if p.pose.keypoints[1].x < 32.0 { a } else { b };
        assert!(max_error(&p.pose, &want) < 0.5);
    }
}

#[test]
fn decode_keeps_limbs_apart_when_people_are_close() {
    // Side by side with arms 3 pixels apart: the PAFs must still pair each wrist with its own
    // elbow.
    let a = figure((20.0, 10.0), 30.0);
    let b = figure((34.0, 10.5), 30.0);
    let (heat, paf) = render(&[a, b], 40, 56, 1.0, 1.0);
    let people = decode(&heat, &paf, &DecodeOptions::default()).unwrap();
    assert_eq!(people.len(), 2, "{people:#?}");
    for p in &people {
        let want = if p.pose.keypoints[1].x < 27.0 { a } else { b };
        let err = max_error(&p.pose, &want);
        assert!(err < 0.3, "error {err}");
    }
}

#[test]
fn decode_drops_lone_peaks_and_empty_maps() {
    let (heat, paf) = render(&[], 20, 20, 1.0, 1.0);
    assert!(decode(&heat, &paf, &DecodeOptions::default())
        .unwrap()
        .is_empty());
    // Peaks without any PAF support form no person.
    let (heat, _) = render(&[figure((10.0, 6.0), 12.0)], 20, 20, 1.0, 1.0);
    let paf = Tensor::zeros([38, 20, 20]);
    assert!(decode(&heat, &paf, &DecodeOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn tracker_picks_the_prominent_person_then_keeps_identity() {
    let mut tracker = Tracker::default();
    // Frame 0: a is larger, so a is chosen.
    let frame0 = [figure((150.0, 60.0), 200.0), figure((300.0, 80.0), 150.0)];
    assert_eq!(tracker.choose(&frame0), Some(0));
    // Over the next frames b grows past a and the list order changes; a stays the main person.
    let mut last = 0;
    for t in 1..=10 {
        let s = t as f32;
        let a = figure((150.0 + 2.0 * s, 60.0), 200.0 - 8.0 * s);
        let b = figure((300.0 - 2.0 * s, 80.0), 150.0 + 8.0 * s);
        let (people, want) = if t % 2 == 0 { ([a, b], 0) } else { ([b, a], 1) };
        last = tracker.choose(&people).unwrap();
        assert_eq!(last, want, "frame {t}: tracker switched person");
    }
    let _ = last;
    // A fresh tracker on the last frame picks b (now larger): the choice above was tracking.
    let a = figure((170.0, 60.0), 120.0);
    let b = figure((280.0, 80.0), 230.0);
    assert_eq!(Tracker::default().choose(&[a, b]), Some(1));
    // When a leaves, b becomes the main person; with nobody there is no choice.
    assert_eq!(tracker.choose(&[b]), Some(0));
    assert_eq!(tracker.choose(&[]), None);
    assert_eq!(tracker.choose(&[Pose::missing()]), None);
}

// ---- the layer-graph loader -------------------------------------------------------------------

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("engine_pose_{tag}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TINY_GRAPH: &str = r#"{
 "format": "engine-layer-graph", "version": 1,
 "input": {"name": "image", "tf_shape_nhwc": [-1, -1, -1, 2]},
 "output": "out", "heatmaps": 3, "pafs": 5, "stride": 2,
 "layers": [
  {"name": "c1", "op": "conv2d", "inputs": ["image"], "weight": "w1", "stride": [2, 2],
   "dilation": [1, 1], "padding": "SAME", "groups": 1},
  {"name": "b1", "op": "bias_add", "inputs": ["c1"], "bias": "b1"},
  {"name": "r1", "op": "relu", "inputs": ["b1"]},
  {"name": "d1", "op": "conv2d", "inputs": ["r1"], "weight": "dw", "stride": [1, 1],
   "dilation": [1, 1], "padding": "SAME", "groups": 4},
  {"name": "a1", "op": "affine", "inputs": ["d1"], "scale": 0.5, "shift": 1.0},
  {"name": "p1", "op": "max_pool", "inputs": ["d1"], "kernel": [2, 2], "stride": [1, 1],
   "padding": "SAME"},
  {"name": "out", "op": "concat", "inputs": ["a1", "p1"]}
 ]
}"#;

fn tiny_weights() -> BTreeMap<String, Tensor> {
    let mut m = BTreeMap::new();
    m.insert("w1".into(), Tensor::randn([4, 2, 3, 3], 0.0, 1.0, 1));
    m.insert(
        "b1".into(),
        Tensor::from_vec(vec![0.5, -0.5, 0.0, 1.0], [4]).unwrap(),
    );
    m.insert("dw".into(), Tensor::randn([4, 1, 3, 3], 0.0, 1.0, 2));
    m
}

/// TF "SAME" pad before, output size.
fn same(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (total / 2, out)
}

/// Direct loops: NCHW cross-correlation with TF SAME padding (N = 1), in f64.
fn conv_ref(
    x: &[f64],
    c: usize,
    h: usize,
    w: usize,
    wt: &Tensor,
    s: usize,
    groups: usize,
) -> (Vec<f64>, usize, usize) {
    let d = wt.dims();
    let (co, cg, kh, kw) = (d[0], d[1], d[2], d[3]);
    let wv = wt.cpu_data().unwrap();
    let ((pt, oh), (pl, ow)) = (same(h, kh, s), same(w, kw, s));
    let mut y = vec![0.0; co * oh * ow];
    for o in 0..co {
        let g = o / (co / groups);
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = 0.0;
                for ci in 0..cg {
                    for a in 0..kh {
                        for b in 0..kw {
                            let (yy, xx) = (
                                (i * s + a) as isize - pt as isize,
                                (j * s + b) as isize - pl as isize,
                            );
                            if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                let xv = x[((g * cg + ci) * h + yy as usize) * w + xx as usize];
                                acc += xv * wv[((o * cg + ci) * kh + a) * kw + b] as f64;
                            }
                        }
                    }
                }
                y[(o * oh + i) * ow + j] = acc;
            }
        }
    }
    let _ = c;
    (y, oh, ow)
}

fn tiny_reference(x: &Tensor, wts: &BTreeMap<String, Tensor>) -> Vec<f64> {
    let d = x.dims();
    let xv: Vec<f64> = x.cpu_data().unwrap().iter().map(|&v| v as f64).collect();
    let (mut y, h1, w1) = conv_ref(&xv, d[1], d[2], d[3], &wts["w1"], 2, 1);
    let b = wts["b1"].cpu_data().unwrap();
    for (i, v) in y.iter_mut().enumerate() {
        *v = (*v + b[i / (h1 * w1)] as f64).max(0.0);
    }
    let (dv, h2, w2) = conv_ref(&y, 4, h1, w1, &wts["dw"], 1, 4);
    let mut out: Vec<f64> = dv.iter().map(|v| v * 0.5 + 1.0).collect();
    // 2×2 max pool, stride 1, SAME: the window runs one past the bottom/right edge (-inf there).
    for c in 0..4 {
        for i in 0..h2 {
            for j in 0..w2 {
                let mut m = f64::NEG_INFINITY;
                for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    if i + a < h2 && j + b < w2 {
                        m = m.max(dv[(c * h2 + i + a) * w2 + j + b]);
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn graph_loader_runs_a_tiny_graph_like_the_reference_loops() {
    let dir = TempDir::new("tiny");
    let wts = tiny_weights();
    let st = dir.0.join("tiny.safetensors");
    let list: Vec<(String, Tensor)> = wts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    save_tensors(&st, &list, &Default::default()).unwrap();
    std::fs::write(st.with_extension("json"), TINY_GRAPH).unwrap();
    let net = PoseNet::load(&st).unwrap();
    assert_eq!(
        (
            net.input_channels(),
            net.heatmap_channels(),
            net.paf_channels()
        ),
        (2, 3, 5)
    );
    // 6×5: the stride-2 conv pads (0, 1) rows and (1, 1) columns, as TF does.
    let x = Tensor::randn([1, 2, 6, 5], 0.0, 1.0, 3);
    let y = net.forward(&x).unwrap();
    assert_eq!(y.dims(), [1, 8, 3, 3]);
    let want = tiny_reference(&x, &wts);
    let got = y.cpu_data().unwrap();
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    println!("tiny graph: max abs error {err:.2e} (tolerance 1e-5)");
    assert!(err < 1e-5, "max abs error {err}");
    let maps = net.maps(&x).unwrap();
    assert_eq!(
        (maps.heatmaps.dims(), maps.pafs.dims()),
        (&[3, 3, 3][..], &[5, 3, 3][..])
    );
    // Wrong input channels are a shape error naming the network.
    let e = net
        .forward(&Tensor::zeros([1, 3, 6, 5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PoseNet"), "{e}");
}

#[test]
fn graph_loader_reports_bad_graphs() {
    let origin = Path::new("tiny.json");
    let check = |json: &str, wts: BTreeMap<String, Tensor>, needle: &str| {
        let e = PoseNet::from_parts(json, wts, origin)
            .err()
            .expect("accepted a bad graph");
        let e = e.to_string();
        assert!(
            e.contains(needle) && e.contains("tiny.json"),
            "{needle}: {e}"
        );
    };
    let mut w = tiny_weights();
    w.remove("dw");
    check(TINY_GRAPH, w, "`dw`");
    let mut w = tiny_weights();
    w.insert("w1".into(), Tensor::zeros([4, 3, 3, 3]));
    check(TINY_GRAPH, w, "does not fit 2 input channels");
    let mut w = tiny_weights();
    w.insert("b1".into(), Tensor::zeros([5]));
    check(TINY_GRAPH, w, "bias");
    check(
        &TINY_GRAPH.replace("\"relu\"", "\"softmax\""),
        tiny_weights(),
        "softmax",
    );
    check(
        &TINY_GRAPH.replace("\"pafs\": 5", "\"pafs\": 6"),
        tiny_weights(),
        "channels",
    );
    check(
        &TINY_GRAPH.replace("[\"a1\", \"p1\"]", "[\"a1\", \"zz\"]"),
        tiny_weights(),
        "`zz`",
    );
    check(
        &TINY_GRAPH.replace("\"version\": 1", "\"version\": 7"),
        tiny_weights(),
        "version 7",
    );
    let e = PoseNet::load("/nonexistent/openpose.safetensors")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("convert_openpose.py"), "{e}");
}

// ---- the real network (needs the converted weights) -------------------------------------------

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn real_network_matches_the_numpy_reference() {
    let weights = repo_path(engine::model::pose_net::DEFAULT_WEIGHTS);
    let reference = repo_path("weights/openpose_reference.safetensors");
    if !weights.is_file() {
        println!(
            "skipped: {} missing (run tools/weights/convert_openpose.py)",
            weights.display()
        );
        return;
    }
    if !reference.is_file() {
        println!(
            "skipped: {} missing (run `cargo test --release --test pose_estimator -- --ignored \
             write_trial_frames`, then tools/weights/openpose_numpy.py)",
            reference.display()
        );
        return;
    }
    let net = PoseNet::load(&weights).unwrap();
    let r = load_tensors(&reference).unwrap();
    let mut frames = 0;
    while let Some(x) = r.get(&format!("input_{frames}")) {
        let t = std::time::Instant::now();
        let maps = net.maps(x).unwrap();
        let secs = t.elapsed().as_secs_f64();
        for (name, got) in [("heatmaps", &maps.heatmaps), ("pafs", &maps.pafs)] {
            let want = &r[&format!("{name}_{frames}")];
            assert_eq!(got.dims(), want.dims(), "{name}_{frames}");
            let (g, w) = (got.cpu_data().unwrap(), want.cpu_data().unwrap());
            let err = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let peak = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            println!(
                "frame {frames} {name} {:?}: max abs error {err:.2e} ({:.0}% of the 1e-3 \
                 tolerance), max |value| {peak:.3}, forward {secs:.2} s",
                got.dims(),
                err / 1e-3 * 100.0
            );
            assert!(err <= 1e-3, "{name}_{frames}: max abs error {err}");
        }
        frames += 1;
    }
    assert!(frames > 0, "the reference file holds no input_0");
}

/// Writes three frames of the trial video as PNGs for tools/weights/openpose_numpy.py.
#[cfg(feature = "video")]
#[test]
#[ignore = "needs the trial video; writes /tmp/engine_pose_frames"]
fn write_trial_frames() {
    use engine::video::{folder::write_image, open_frames, ImageFormat};
    let video = repo_path("../shared/data/video/dancer_a.mp4");
    let out = std::env::temp_dir().join("engine_pose_frames");
    std::fs::create_dir_all(&out).unwrap();
    for (i, frame) in open_frames(&video).unwrap().enumerate().take(121) {
        if [0, 60, 120].contains(&i) {
            let p = out.join(format!("frame_{i:03}.png"));
            write_image(&p, &frame.unwrap(), ImageFormat::Png).unwrap();
            println!("wrote {}", p.display());
        }
    }
}

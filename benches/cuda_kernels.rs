//! Kernel benchmark on the GPU: CUDA-event timing (warm-ups, then the median of the timed runs)
//! of the hand-written kernels at the shapes of PERFORMANCE.md, launched directly
//! (src/backend/cuda/launch/). Prints a markdown table with ms, TFLOP/s or GB/s, the fraction of
//! the H200 ceiling, PyTorch's time for the same case in the same run where TORCH_BASELINE_JSON
//! names ../shared/tools/torch_baseline.py's output (device_run/run.sh perf does), and the
//! PyTorch eager figure of PERFORMANCE.md (H200, an earlier run), each with its ratio.
//! `cargo bench --no-default-features --features cuda --bench cuda_kernels`.
//!
//! `ENGINE_BENCH_SMOKE=1` (or `--smoke`) runs small shapes through the same code paths instead,
//! once: a rehearsal of the device run on the emulated driver (tests/cuda_benches.rs), where
//! the timings mean nothing.

use cudarc::driver::{sys, CudaSlice};
use engine::backend::cuda::launch::*;
use engine::backend::cuda::params::MatmulArgs;
use engine::backend::precision::Precision;
use engine::backend::{precision, Conv2dParams, CorrWarpParams};
use engine::{Result, Tensor};

/// The smoke switch and PyTorch's same-run timings (run.sh perf runs ../shared/tools/
/// torch_baseline.py first and passes its JSON as TORCH_BASELINE_JSON).
#[path = "shared/mod.rs"]
pub mod shared;
use shared::torch_run::TorchRun;

/// H200 ceilings (PERFORMANCE.md): FLOP/s of PyTorch's 8192³ matmul in each arithmetic (fp32
/// SIMT, tf32 and bf16 tensor cores), and HBM bytes/s.
fn peak_flops(p: Precision) -> f64 {
    match p {
        Precision::F32 => 51e12,
        Precision::Tf32 => 408e12,
        Precision::Bf16 => 786e12,
    }
}
const PEAK_BYTES: f64 = 4.2e12;

/// The shapes one run times, and how often.
pub struct Sizes {
    pub corr: CorrDims,
    /// Row-slab heights of the f32 corr_warp backward.
    pub corr_slabs: Vec<usize>,
    /// Instance norm shapes [B, C, H, W]; `true`: SPADE modulation timed at that shape too.
    pub norms: Vec<([usize; 4], bool)>,
    /// conv3x3 C→C at (C, H=W), batch `conv_batch`.
    pub convs: Vec<(usize, usize)>,
    pub conv_batch: usize,
    /// Square matmul size.
    pub matmul: usize,
    pub warmup: usize,
    pub runs: usize,
}

impl Sizes {
    /// PERFORMANCE.md's shapes.
    pub fn full() -> Self {
        Sizes {
            corr: CorrDims {
                b: 4,
                c: 256,
                n: 4096,
                m: 4096,
                v: 3,
            },
            corr_slabs: vec![4096, 1024],
            norms: vec![([4, 64, 256, 256], true), ([4, 256, 64, 64], false)],
            convs: vec![(64, 256), (128, 128), (256, 64), (512, 32)],
            conv_batch: 4,
            matmul: 8192,
            warmup: 2,
            runs: 20,
        }
    }

    /// Small shapes through the same code paths: norm rows longer than one chunk (8281 >
    /// NORM_CHUNK) and shorter, a slabbed corr_warp backward, tf32 and bf16.
    pub fn smoke() -> Self {
        Sizes {
            corr: CorrDims {
                b: 2,
                c: 32,
                n: 96,
                m: 80,
                v: 3,
            },
            corr_slabs: vec![96, 40],
            norms: vec![([2, 8, 91, 91], true), ([1, 33, 7, 9], false)],
            convs: vec![(8, 13), (16, 9)],
            conv_batch: 2,
            matmul: 67,
            warmup: 1,
            runs: 1,
        }
    }

    /// [`Sizes::smoke`] when `ENGINE_BENCH_SMOKE=1` or `--smoke` is given, else [`Sizes::full`].
    pub fn from_env() -> Self {
        if shared::smoke_requested() {
            Self::smoke()
        } else {
            Self::full()
        }
    }
}

/// PyTorch eager ms from PERFORMANCE.md (H200) for the full shapes; `lookup` finds a shape's.
const TORCH_CORR_FWD_F32: f64 = 1.545;
const TORCH_CORR_FWD_BWD_F32: f64 = 4.22;
const TORCH_CORR_FWD_BF16: f64 = 0.717;
const TORCH_CORR_FWD_BWD_BF16: f64 = 1.780;
/// Instance norm [B, C, H, W]: (fwd, fwd+bwd), fp32.
const TORCH_NORM: [([usize; 4], (f64, f64)); 2] = [
    ([4, 64, 256, 256], (0.154, 0.366)),
    ([4, 256, 64, 64], (0.050, 0.216)),
];
/// conv3x3 C→C by input shape: fwd fp32 (measured for one shape only), fwd tf32 (cuDNN),
/// fwd+bwd tf32.
type ConvFigures = (Option<f64>, f64, f64);
const TORCH_CONV: [([usize; 4], ConvFigures); 4] = [
    ([4, 64, 256, 256], (Some(0.490), 0.184, 1.08)),
    ([4, 128, 128, 128], (None, 0.131, 0.532)),
    ([4, 256, 64, 64], (None, 0.092, 0.752)),
    ([4, 512, 32, 32], (None, 0.105, 0.452)),
];
/// PyTorch's 8192³ matmul in TFLOP/s: fp32, tf32.
const TORCH_MATMUL_TFLOPS: (usize, (f64, f64)) = (8192, (51.0, 408.0));

fn lookup<K: PartialEq, V: Copy>(table: &[(K, V)], key: &K) -> Option<V> {
    table.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// What a row is measured in.
pub enum Work {
    /// FLOPs, and the arithmetic whose ceiling they are set against.
    Flops(f64, Precision),
    Bytes(f64),
}

pub struct Row {
    pub case: String,
    pub ms: Option<f64>,
    pub work: Work,
    /// PyTorch eager from PERFORMANCE.md: (ms, precision).
    pub torch: Option<(f64, &'static str)>,
    /// The name of the same case in torch_baseline.py's JSON, where it times one.
    pub torch_key: Option<String>,
    pub error: Option<String>,
}

/// What a run measured: the table's rows and the bf16 corr_warp's peak memory.
pub struct Report {
    pub rows: Vec<Row>,
    pub peak: Option<Peak>,
}

/// Peak device memory of one bf16 corr_warp fwd+bwd.
pub struct Peak {
    pub case: String,
    pub pooled_mib: f64,
    /// The f32 inputs and output, allocated outside the pool.
    pub outside_mib: f64,
    /// PyTorch's same case in torch_baseline.py's JSON (its note holds the peak).
    pub torch_key: Option<String>,
}

/// PyTorch bf16 eager's peak for the corr_warp fwd+bwd at B4 C256 N=M4096, MiB: the
/// 2026-11-26 H200 run (benches/results), for runs without PyTorch's same-run figure.
const TORCH_CORR_BF16_PEAK_MIB: f64 = 640.0;

// torch_baseline.py's row names for our shapes (its f-strings, at its full size).
fn corr_key(d: CorrDims, dtype: &str, pass: &str) -> Option<String> {
    (d.n == 4096 && d.m == 4096).then(|| {
        format!(
            "corr_warp eager B={} C={} V={} {dtype} tf32=False {pass}",
            d.b, d.c, d.v
        )
    })
}

fn norm_key(s: [usize; 4], pass: &str) -> Option<String> {
    (s[2] == s[3]).then(|| format!("instance_norm B={} C={} @{} fp32 {pass}", s[0], s[1], s[2]))
}

fn conv_key(b: usize, c: usize, hw: usize, tf32: bool, pass: &str) -> String {
    let tf32 = if tf32 { "True" } else { "False" };
    format!("conv3x3 B={b} {c}->{c} @{hw} float32 tf32={tf32} cl=False {pass}")
}

fn matmul_key(n: usize, tf32: bool) -> String {
    let tf32 = if tf32 { "True" } else { "False" };
    format!("ceiling matmul {n}^3 float32 tf32={tf32}")
}

/// Median of `s.runs` event-timed runs of `f` after `s.warmup` untimed ones.
fn time(g: &Gpu, s: &Sizes, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let ev = |what: &str| {
        g.ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|err| engine::Error::invalid("bench", format!("{what}: {err}")))
    };
    let drv = |err: cudarc::driver::DriverError| engine::Error::invalid("bench", err.to_string());
    for _ in 0..s.warmup {
        f()?;
    }
    g.sync()?;
    let (start, end) = (ev("start")?, ev("end")?);
    let mut ms = Vec::with_capacity(s.runs);
    for _ in 0..s.runs.max(1) {
        start.record(&g.stream).map_err(drv)?;
        f()?;
        end.record(&g.stream).map_err(drv)?;
        end.synchronize().map_err(drv)?;
        ms.push(start.elapsed_ms(&end).map_err(drv)? as f64);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms[ms.len() / 2])
}

fn rand_dev(g: &Gpu, n: usize, seed: u64) -> Result<CudaSlice<f32>> {
    g.upload(Tensor::randn(vec![n], 0.0, 1.0, seed).cpu_data()?)
}

fn corr_rows(g: &Gpu, s: &Sizes, out: &mut Report) {
    let d = s.corr;
    let p = CorrWarpParams {
        scale: 100.0,
        normalize: true,
        eps: 1e-6,
    };
    let name = format!("B{} C{} N{} M{} V{}", d.b, d.c, d.n, d.m, d.v);
    let full = (d.b, d.c, d.n, d.m, d.v) == (4, 256, 4096, 4096, 3);
    let torch = |ms: f64, prec: &'static str| full.then_some((ms, prec));
    let (bnm, c, v) = ((d.b * d.n * d.m) as f64, d.c as f64, d.v as f64);
    let fwd_flops = 2.0 * bnm * (c + v);
    // Backward: S recomputed, dA, dq̂, dk̂ (C-sized) and dv (V-sized) products.
    let bwd_flops = 2.0 * bnm * (3.0 * c + 2.0 * v);
    let mut bufs = match corr_inputs(g, d) {
        Ok(b) => b,
        Err(err) => {
            let case = format!("corr_warp {name} setup");
            out.rows.push(row_err(
                &case,
                Work::Flops(fwd_flops, Precision::F32),
                None,
                err,
            ));
            return;
        }
    };
    let (q, k, vv, dout, y) = (&bufs.0, &bufs.1, &bufs.2, &bufs.3, &mut bufs.4);
    let fwd = time(g, s, || {
        corr_warp_forward(g, d, &p, q, k, vv, y, precision()).map(|_| ())
    });
    out.rows.push(
        row(
            &format!("corr_warp fused fwd {name} (incl. normalise)"),
            fwd,
            Work::Flops(fwd_flops, precision()),
            torch(TORCH_CORR_FWD_F32, "fp32"),
        )
        .keyed(corr_key(d, "float32", "fwd")),
    );
    for &slab in &s.corr_slabs {
        let r = time(g, s, || {
            let saved = corr_warp_forward(g, d, &p, q, k, vv, y, precision())?;
            corr_warp_backward(g, d, &p, &saved, vv, dout, slab, precision()).map(|_| ())
        });
        out.rows.push(
            row(
                &format!("corr_warp fwd+bwd {name}, bwd slab {slab} rows"),
                r,
                Work::Flops(fwd_flops + bwd_flops, precision()),
                torch(TORCH_CORR_FWD_BWD_F32, "fp32"),
            )
            .keyed(corr_key(d, "float32", "fwd+bwd")),
        );
    }
    // The bf16 tensor-core path (kernels/corr_warp_bf16.cu) against PyTorch's bf16 eager.
    let bf = Precision::Bf16;
    let fwd = time(g, s, || {
        corr_warp_forward(g, d, &p, q, k, vv, y, bf).map(|_| ())
    });
    out.rows.push(
        row(
            &format!("corr_warp fwd {name} bf16 (incl. normalise)"),
            fwd,
            Work::Flops(fwd_flops, bf),
            torch(TORCH_CORR_FWD_BF16, "bf16"),
        )
        .keyed(corr_key(d, "bfloat16", "fwd")),
    );
    let fb = time(g, s, || {
        let saved = corr_warp_forward(g, d, &p, q, k, vv, y, bf)?;
        corr_warp_backward(g, d, &p, &saved, vv, dout, d.n, bf).map(|_| ())
    });
    out.rows.push(
        row(
            &format!("corr_warp fwd+bwd {name} bf16"),
            fb,
            Work::Flops(fwd_flops + bwd_flops, bf),
            torch(TORCH_CORR_FWD_BWD_BF16, "bf16"),
        )
        .keyed(corr_key(d, "bfloat16", "fwd+bwd")),
    );
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    match corr_bf16_peak(d, &p) {
        Ok((pool, outside)) => {
            out.peak = Some(Peak {
                case: format!("corr_warp fwd+bwd {name} bf16"),
                pooled_mib: mib(pool),
                outside_mib: mib(outside),
                torch_key: corr_key(d, "bfloat16", "fwd+bwd"),
            })
        }
        Err(err) => out.rows.push(row_err(
            &format!("corr_warp fwd+bwd {name} bf16 peak memory"),
            Work::Bytes(0.0),
            None,
            err,
        )),
    }
}

/// Random q, k, v and dout of the corr_warp `d`, and its output buffer.
type CorrBufs = (
    CudaSlice<f32>,
    CudaSlice<f32>,
    CudaSlice<f32>,
    CudaSlice<f32>,
    CudaSlice<f32>,
);
fn corr_inputs(g: &Gpu, d: CorrDims) -> Result<CorrBufs> {
    let q = rand_dev(g, d.b * d.c * d.n, 1)?;
    let k = rand_dev(g, d.b * d.c * d.m, 2)?;
    let v = rand_dev(g, d.b * d.m * d.v, 3)?;
    let dout = rand_dev(g, d.b * d.n * d.v, 4)?;
    let y = g.zeros(d.b * d.n * d.v)?;
    Ok((q, k, v, dout, y))
}

/// Peak device memory of one bf16 corr_warp fwd+bwd, measured on a fresh `Gpu` (its own pool):
/// (the pool's peak, the f32 inputs and output allocated outside it), to set beside PyTorch's
/// `torch.cuda.max_memory_allocated` for bf16 eager (tools: torch_baseline.py).
fn corr_bf16_peak(d: CorrDims, p: &CorrWarpParams) -> Result<(u64, u64)> {
    let g = Gpu::new()?;
    let (q, k, v, dout, mut y) = corr_inputs(&g, d)?;
    let bf = Precision::Bf16;
    let saved = corr_warp_forward(&g, d, p, &q, &k, &v, &mut y, bf)?;
    let grads = corr_warp_backward(&g, d, p, &saved, &v, &dout, d.n, bf)?;
    g.sync()?;
    drop((saved, grads));
    let outside = [&q, &k, &v, &dout, &y]
        .iter()
        .map(|b| b.len() as u64 * 4)
        .sum();
    Ok((g.mem_stats().peak, outside))
}

fn norm_rows(g: &Gpu, s: &Sizes, out: &mut Report) {
    for &(shape, with_spade) in &s.norms {
        let torch = lookup(&TORCH_NORM, &shape);
        let dims = (shape[0], shape[1], shape[2] * shape[3]);
        let numel = shape.iter().product::<usize>();
        let bytes = numel as f64 * 4.0;
        let name = format!("{shape:?}").replace(' ', "");
        let r = (|| -> Result<()> {
            let x = rand_dev(g, numel, 10)?;
            let dy = rand_dev(g, numel, 11)?;
            let (w, b) = (rand_dev(g, shape[1], 12)?, rand_dev(g, shape[1], 13)?);
            let (mut y, mut dx) = (g.zeros(numel)?, g.zeros(numel)?);
            let fwd = time(g, s, || {
                instance_norm_forward(g, dims, 1e-5, &x, Some(&w), Some(&b), &mut y).map(|_| ())
            });
            out.rows.push(
                row(
                    &format!("instance norm {name} fwd"),
                    fwd,
                    Work::Bytes(2.0 * bytes),
                    torch.map(|t| (t.0, "fp32")),
                )
                .keyed(norm_key(shape, "fwd")),
            );
            let fb = time(g, s, || {
                let st = instance_norm_forward(g, dims, 1e-5, &x, Some(&w), Some(&b), &mut y)?;
                instance_norm_backward(g, dims, &x, Some(&w), &st, &dy, &mut dx).map(|_| ())
            });
            out.rows.push(
                row(
                    &format!("instance norm {name} fwd+bwd"),
                    fb,
                    Work::Bytes(5.0 * bytes),
                    torch.map(|t| (t.1, "fp32")),
                )
                .keyed(norm_key(shape, "fwd+bwd")),
            );
            if !with_spade {
                return Ok(());
            }
            let gm = rand_dev(g, numel, 14)?;
            let bt = rand_dev(g, numel, 15)?;
            let mut dg = g.zeros(numel)?;
            for pono in [false, true] {
                let kind = if pono { "PONO" } else { "instance" };
                let f = time(g, s, || {
                    spade_forward(g, pono, dims, 1e-5, &x, &gm, &bt, &mut y).map(|_| ())
                });
                out.rows.push(row(
                    &format!("SPADE modulation ({kind}) {name} fwd"),
                    f,
                    Work::Bytes(4.0 * bytes),
                    None,
                ));
                let fb = time(g, s, || {
                    let st = spade_forward(g, pono, dims, 1e-5, &x, &gm, &bt, &mut y)?;
                    spade_backward(g, pono, dims, &x, &gm, &st, &dy, &mut dx, &mut dg)
                });
                out.rows.push(row(
                    &format!("SPADE modulation ({kind}) {name} fwd+bwd"),
                    fb,
                    Work::Bytes(9.0 * bytes),
                    None,
                ));
            }
            Ok(())
        })();
        if let Err(err) = r {
            let case = format!("norm {name}");
            out.rows.push(row_err(&case, Work::Bytes(bytes), None, err));
        }
    }
}

fn conv_rows(g: &Gpu, s: &Sizes, out: &mut Report) {
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let nb = s.conv_batch;
    for &(c, hw) in &s.convs {
        let name = format!("conv3x3 {c}->{c} @{hw}² B{nb}");
        let (xs, ws) = ([nb, c, hw, hw], [c, c, 3, 3]);
        let torch = lookup(&TORCH_CONV, &xs);
        let flops = 2.0 * nb as f64 * (c * hw * hw) as f64 * (c * 9) as f64;
        let r = (|| -> Result<()> {
            let a = conv_args(xs, ws, &p, true)
                .ok_or_else(|| engine::Error::invalid("bench", "empty conv"))?;
            let n = nb * c * hw * hw;
            let x = rand_dev(g, n, 20)?;
            let w = rand_dev(g, c * c * 9, 21)?;
            let b = rand_dev(g, c, 22)?;
            let dy = rand_dev(g, n, 23)?;
            let (mut y, mut dx, mut dw, mut db) =
                (g.zeros(n)?, g.zeros(n)?, g.zeros(c * c * 9)?, g.zeros(c)?);
            // The f32 SIMT kernels, then the tf32 tensor-core ones beside cuDNN's tf32.
            for (prec, label) in [(precision(), ""), (Precision::Tf32, " tf32")] {
                let f = time(g, s, || {
                    conv_forward(g, &a, ConvPath::Auto, prec, &x, &w, Some(&b), &mut y)
                });
                let torch_fwd = match label {
                    "" => torch.and_then(|t| t.0).map(|ms| (ms, "fp32")),
                    _ => torch.map(|t| (t.1, "tf32")),
                };
                out.rows.push(
                    row(
                        &format!("{name} fwd{label}"),
                        f,
                        Work::Flops(flops, prec),
                        torch_fwd,
                    )
                    .keyed(Some(conv_key(
                        nb,
                        c,
                        hw,
                        prec == Precision::Tf32,
                        "fwd",
                    ))),
                );
                let fb = time(g, s, || {
                    conv_forward(g, &a, ConvPath::Auto, prec, &x, &w, Some(&b), &mut y)?;
                    conv_backward_input(g, &a, ConvPath::Auto, prec, &dy, &w, &mut dx)?;
                    conv_backward_weight(g, &a, ConvPath::Auto, prec, &x, &dy, &mut dw)?;
                    conv_backward_bias(g, &a, &dy, &mut db)
                });
                out.rows.push(
                    row(
                        &format!("{name} fwd+bwd{label}"),
                        fb,
                        Work::Flops(3.0 * flops, prec),
                        torch.map(|t| (t.2, "tf32")),
                    )
                    // PyTorch's conv fwd+bwd is timed at tf32 only.
                    .keyed(Some(conv_key(nb, c, hw, true, "fwd+bwd"))),
                );
            }
            Ok(())
        })();
        if let Err(err) = r {
            out.rows.push(row_err(
                &name,
                Work::Flops(flops, Precision::F32),
                None,
                err,
            ));
        }
    }
}

/// One square matmul in f32 and tf32, against PyTorch's matmul at the ceilings PERFORMANCE.md
/// measured on the H200 for 8192³.
fn matmul_rows(g: &Gpu, s: &Sizes, out: &mut Report) {
    let n = s.matmul;
    let flops = 2.0 * (n as f64).powi(3);
    let torch = (n == TORCH_MATMUL_TFLOPS.0).then_some(TORCH_MATMUL_TFLOPS.1);
    let r = (|| -> Result<()> {
        let a = rand_dev(g, n * n, 30)?;
        let b = rand_dev(g, n * n, 31)?;
        let mut c = g.zeros(n * n)?;
        for prec in [Precision::F32, Precision::Tf32] {
            let ms = time(g, s, || {
                let p = MatmulArgs {
                    m: n as i64,
                    n: n as i64,
                    k: n as i64,
                    batch: 1,
                    lda: n as i64,
                    ldb: n as i64,
                    ldc: n as i64,
                    alpha: 1.0,
                    ..Default::default()
                };
                matmul(
                    g,
                    &p,
                    prec,
                    &a.as_view(),
                    &b.as_view(),
                    &mut c.as_view_mut(),
                )
            });
            let (tflops, label) = match (torch, prec) {
                (Some((f32_rate, _)), Precision::F32) => (Some(f32_rate), "fp32"),
                (Some((_, tf32_rate)), _) => (Some(tf32_rate), "tf32"),
                (None, _) => (None, ""),
            };
            let torch_ms = tflops.map(|t| (flops / (t * 1e12) * 1e3, label));
            out.rows.push(
                row(
                    &format!("matmul {n}³ {prec}"),
                    ms,
                    Work::Flops(flops, prec),
                    torch_ms,
                )
                .keyed(Some(matmul_key(n, prec == Precision::Tf32))),
            );
        }
        Ok(())
    })();
    if let Err(err) = r {
        let case = format!("matmul {n}³");
        out.rows.push(row_err(
            &case,
            Work::Flops(flops, Precision::F32),
            None,
            err,
        ));
    }
}

impl Row {
    /// The row with the name of PyTorch's same case in torch_baseline.py's JSON.
    fn keyed(mut self, key: Option<String>) -> Row {
        self.torch_key = key;
        self
    }
}

fn row(case: &str, r: Result<f64>, work: Work, torch: Option<(f64, &'static str)>) -> Row {
    match r {
        Ok(ms) => Row {
            case: case.into(),
            ms: Some(ms),
            work,
            torch,
            torch_key: None,
            error: None,
        },
        Err(err) => row_err(case, work, torch, err),
    }
}

fn row_err(case: &str, work: Work, torch: Option<(f64, &'static str)>, err: engine::Error) -> Row {
    eprintln!("{case}: {err}");
    Row {
        case: case.into(),
        ms: None,
        work,
        torch,
        torch_key: None,
        error: Some(err.to_string()),
    }
}

/// Every row at `s`, on `g`.
pub fn run(g: &Gpu, s: &Sizes) -> Report {
    let mut out = Report {
        rows: Vec::new(),
        peak: None,
    };
    corr_rows(g, s, &mut out);
    norm_rows(g, s, &mut out);
    conv_rows(g, s, &mut out);
    matmul_rows(g, s, &mut out);
    out
}

/// The table, with PyTorch's same-run figures beside ours where `torch` has them.
pub fn print_table(card: &str, s: &Sizes, report: &Report, torch: Option<&TorchRun>) {
    println!("\n## CUDA kernel benchmark, {card}\n");
    println!(
        "Median of {} CUDA-event timed runs after {} warm-ups. Ceilings (H200, PERFORMANCE.md): \
         the row's arithmetic at PyTorch's 8192³ matmul rate (fp32 51, tf32 408, bf16 786 \
         TFLOP/s), HBM 4.2 TB/s. Ratios are PyTorch ms / ours (above 1: ours is faster).",
        s.runs, s.warmup
    );
    match torch {
        Some(t) => println!(
            "Same run: PyTorch eager on this card from {}; PERFORMANCE.md: H200, an earlier run.\n",
            t.path
        ),
        None => println!("No same-run PyTorch figures (TORCH_BASELINE_JSON unset); PERFORMANCE.md: H200, an earlier run.\n"),
    }
    println!("| case | ms | TFLOP/s or GB/s | fraction of ceiling | PyTorch same run ms | ratio | PyTorch PERFORMANCE.md ms | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut missing = Vec::new();
    for r in &report.rows {
        let same = match (torch, &r.torch_key) {
            (Some(t), Some(k)) => {
                let hit = t.ms(k);
                if hit.is_none() {
                    missing.push(k.clone());
                }
                hit
            }
            _ => None,
        };
        let doc = r
            .torch
            .map_or("—".to_string(), |(t, p)| format!("{t:.3} ({p})"));
        let Some(ms) = r.ms else {
            let err = r.error.as_deref().unwrap_or("failed");
            println!(
                "| {} | FAILED: {} | | | | | {doc} | |",
                r.case,
                err.replace('|', "/")
            );
            continue;
        };
        let (rate, frac) = match r.work {
            Work::Flops(f, p) => (
                format!("{:.2} TFLOP/s", f / (ms * 1e-3) / 1e12),
                f / (ms * 1e-3) / peak_flops(p),
            ),
            Work::Bytes(b) => (
                format!("{:.0} GB/s", b / (ms * 1e-3) / 1e9),
                b / (ms * 1e-3) / PEAK_BYTES,
            ),
        };
        let ratio = |t: Option<f64>| t.map_or("—".to_string(), |t| format!("{:.2}", t / ms));
        let same_ms = same.map_or("—".to_string(), |t| format!("{t:.3}"));
        println!(
            "| {} | {ms:.3} | {rate} | {frac:.2} | {same_ms} | {} | {doc} | {} |",
            r.case,
            ratio(same),
            ratio(r.torch.map(|t| t.0))
        );
    }
    if let Some(p) = &report.peak {
        let theirs = match (torch, &p.torch_key) {
            (Some(t), Some(k)) => t.peak_mib(k).map(|m| (m, "same run")),
            _ => None,
        }
        .or_else(|| {
            p.torch_key
                .as_ref()
                .map(|_| (TORCH_CORR_BF16_PEAK_MIB, "the 2026-11-26 H200 run"))
        });
        let ours = p.pooled_mib + p.outside_mib;
        print!(
            "\n{}, peak device memory: {:.1} MiB pooled + {:.1} MiB of f32 inputs/output = {ours:.1} MiB",
            p.case, p.pooled_mib, p.outside_mib
        );
        match theirs {
            Some((m, when)) => println!(
                "; PyTorch bf16 eager {m:.0} MiB ({when}): {:.3} of it (target below 0.25)",
                ours / m
            ),
            None => println!(),
        }
    }
    if !missing.is_empty() {
        println!("\nNo PyTorch row of these names in the same-run JSON: {missing:?}");
    }
}

fn main() {
    // SAFETY: only tries to load the driver library.
    if !unsafe { sys::is_culib_present() } {
        println!("no GPU: skipped (no CUDA driver library)");
        return;
    }
    let g = match Gpu::new() {
        Ok(g) => g,
        Err(err) => {
            println!("no GPU: skipped ({err})");
            return;
        }
    };
    let card = format!("{} ({})", g.name, g.arch);
    eprintln!("benchmarking on {card}");
    let sizes = Sizes::from_env();
    let torch = TorchRun::from_env("TORCH_BASELINE_JSON");
    let report = run(&g, &sizes);
    print_table(&card, &sizes, &report, torch.as_ref());
}

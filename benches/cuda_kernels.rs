//! Kernel benchmark on the GPU: CUDA-event timing (2 warm-ups, median of 20) of the hand-written
//! f32 kernels at the shapes of PERFORMANCE.md, launched directly (src/backend/cuda/launch.rs).
//! Prints a markdown table with ms, TFLOP/s or GB/s, the fraction of the H200 ceiling, and the
//! PyTorch eager figure from PERFORMANCE.md beside it (H200, not the same run).
//! `cargo bench --no-default-features --features cuda --bench cuda_kernels`.

use cudarc::driver::{sys, CudaSlice};
use engine::backend::cuda::launch::*;
use engine::backend::cuda::params::MatmulArgs;
use engine::backend::precision::Precision;
use engine::backend::{precision, Conv2dParams, CorrWarpParams};
use engine::{Result, Tensor};

/// H200 ceilings (PERFORMANCE.md): fp32 SIMT FLOP/s and HBM bytes/s.
const PEAK_FLOPS: f64 = 51e12;
const PEAK_BYTES: f64 = 4.2e12;
const WARMUP: usize = 2;
const RUNS: usize = 20;

/// What a row is measured in.
enum Work {
    Flops(f64),
    Bytes(f64),
}

struct Row {
    case: String,
    ms: Option<f64>,
    work: Work,
    /// PyTorch eager from PERFORMANCE.md: (ms, precision).
    torch: Option<(f64, &'static str)>,
    error: Option<String>,
}

/// Median of RUNS event-timed runs of `f` after WARMUP untimed ones.
fn time(g: &Gpu, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let ev = |what: &str| {
        g.ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|err| engine::Error::invalid("bench", format!("{what}: {err}")))
    };
    let drv = |err: cudarc::driver::DriverError| engine::Error::invalid("bench", err.to_string());
    for _ in 0..WARMUP {
        f()?;
    }
    g.sync()?;
    let (start, end) = (ev("start")?, ev("end")?);
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        start.record(&g.stream).map_err(drv)?;
        f()?;
        end.record(&g.stream).map_err(drv)?;
        end.synchronize().map_err(drv)?;
        ms.push(start.elapsed_ms(&end).map_err(drv)? as f64);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms[RUNS / 2])
}

fn rand_dev(g: &Gpu, n: usize, seed: u64) -> Result<CudaSlice<f32>> {
    g.upload(Tensor::randn(vec![n], 0.0, 1.0, seed).cpu_data()?)
}

fn corr_rows(g: &Gpu, rows: &mut Vec<Row>) {
    let d = CorrDims {
        b: 4,
        c: 256,
        n: 4096,
        m: 4096,
        v: 3,
    };
    let p = CorrWarpParams {
        scale: 100.0,
        normalize: true,
        eps: 1e-6,
    };
    let (bnm, c, v) = ((d.b * d.n * d.m) as f64, d.c as f64, d.v as f64);
    let fwd_flops = 2.0 * bnm * (c + v);
    // Backward: S recomputed, dA, dq̂, dk̂ (C-sized) and dv (V-sized) products.
    let bwd_flops = 2.0 * bnm * (3.0 * c + 2.0 * v);
    let setup = || -> Result<_> {
        let q = rand_dev(g, d.b * d.c * d.n, 1)?;
        let k = rand_dev(g, d.b * d.c * d.m, 2)?;
        let vv = rand_dev(g, d.b * d.m * d.v, 3)?;
        let dout = rand_dev(g, d.b * d.n * d.v, 4)?;
        let out = g.zeros(d.b * d.n * d.v)?;
        Ok((q, k, vv, dout, out))
    };
    let mut bufs = match setup() {
        Ok(b) => b,
        Err(err) => {
            rows.push(row_err(
                "corr_warp setup",
                Work::Flops(fwd_flops),
                None,
                err,
            ));
            return;
        }
    };
    let (q, k, vv, dout, out) = (&bufs.0, &bufs.1, &bufs.2, &bufs.3, &mut bufs.4);
    let fwd = time(g, || {
        corr_warp_forward(g, d, &p, q, k, vv, out, precision()).map(|_| ())
    });
    rows.push(row(
        "corr_warp fused fwd B4 N=M4096 C256 V3 (incl. normalise)",
        fwd,
        Work::Flops(fwd_flops),
        Some((1.545, "fp32")),
    ));
    for slab in [4096, 1024] {
        let r = time(g, || {
            let saved = corr_warp_forward(g, d, &p, q, k, vv, out, precision())?;
            corr_warp_backward(g, d, &p, &saved, vv, dout, slab, precision()).map(|_| ())
        });
        rows.push(row(
            &format!("corr_warp fwd+bwd B4 C256 V3, bwd slab {slab} rows"),
            r,
            Work::Flops(fwd_flops + bwd_flops),
            Some((4.22, "fp32")),
        ));
    }
    // The bf16 tensor-core path (kernels/corr_warp_bf16.cu) against PyTorch's bf16 eager.
    let bf = Precision::Bf16;
    let fwd = time(g, || {
        corr_warp_forward(g, d, &p, q, k, vv, out, bf).map(|_| ())
    });
    rows.push(row(
        "corr_warp fwd B4 C256 V3 bf16 (incl. normalise)",
        fwd,
        Work::Flops(fwd_flops),
        Some((0.618, "bf16")),
    ));
    let fb = time(g, || {
        let saved = corr_warp_forward(g, d, &p, q, k, vv, out, bf)?;
        corr_warp_backward(g, d, &p, &saved, vv, dout, d.n, bf).map(|_| ())
    });
    rows.push(row(
        "corr_warp fwd+bwd B4 C256 V3 bf16",
        fb,
        Work::Flops(fwd_flops + bwd_flops),
        Some((1.780, "bf16")),
    ));
    corr_bf16_peak(d, &p);
}

/// Peak device memory of one bf16 corr_warp fwd+bwd, measured on a fresh `Gpu` (its own pool):
/// the pool's peak plus the f32 inputs and output allocated outside it. Printed beside
/// PyTorch's `torch.cuda.max_memory_allocated` for bf16 eager (tools: torch_baseline.py).
fn corr_bf16_peak(d: CorrDims, p: &CorrWarpParams) {
    let r = (|| -> Result<(u64, u64)> {
        let g = Gpu::new()?;
        let q = rand_dev(&g, d.b * d.c * d.n, 1)?;
        let k = rand_dev(&g, d.b * d.c * d.m, 2)?;
        let v = rand_dev(&g, d.b * d.m * d.v, 3)?;
        let dout = rand_dev(&g, d.b * d.n * d.v, 4)?;
        let mut out = g.zeros(d.b * d.n * d.v)?;
        let bf = Precision::Bf16;
        let saved = corr_warp_forward(&g, d, p, &q, &k, &v, &mut out, bf)?;
        let grads = corr_warp_backward(&g, d, p, &saved, &v, &dout, d.n, bf)?;
        g.sync()?;
        drop((saved, grads));
        let outside = [&q, &k, &v, &dout, &out]
            .iter()
            .map(|b| b.len() as u64 * 4)
            .sum();
        Ok((g.mem_stats().peak, outside))
    })();
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    match r {
        Ok((pool, outside)) => println!(
            "corr_warp fwd+bwd B4 C256 V3 bf16, peak device memory: {:.0} MiB pooled + {:.0} MiB \
             of f32 inputs/output = {:.0} MiB (PyTorch bf16 eager: 640 MiB on the 2026-11-26 H200 \
             run, torch_baseline.py's peak note; target below a quarter of it)\n",
            mib(pool),
            mib(outside),
            mib(pool + outside)
        ),
        Err(err) => eprintln!("corr_warp bf16 peak memory: {err}"),
    }
}

fn norm_rows(g: &Gpu, rows: &mut Vec<Row>) {
    let shapes = [
        ([4, 64, 256, 256], Some((0.154, 0.366))),
        ([4, 256, 64, 64], Some((0.050, 0.216))),
    ];
    for (s, torch) in shapes {
        let dims = (s[0], s[1], s[2] * s[3]);
        let numel = s.iter().product::<usize>();
        let bytes = numel as f64 * 4.0;
        let name = format!("{s:?}").replace(' ', "");
        let r = (|| -> Result<()> {
            let x = rand_dev(g, numel, 10)?;
            let dy = rand_dev(g, numel, 11)?;
            let (w, b) = (rand_dev(g, s[1], 12)?, rand_dev(g, s[1], 13)?);
            let (mut y, mut dx) = (g.zeros(numel)?, g.zeros(numel)?);
            let fwd = time(g, || {
                instance_norm_forward(g, dims, 1e-5, &x, Some(&w), Some(&b), &mut y).map(|_| ())
            });
            rows.push(row(
                &format!("instance norm {name} fwd"),
                fwd,
                Work::Bytes(2.0 * bytes),
                torch.map(|t| (t.0, "fp32")),
            ));
            let fb = time(g, || {
                let st = instance_norm_forward(g, dims, 1e-5, &x, Some(&w), Some(&b), &mut y)?;
                instance_norm_backward(g, dims, &x, Some(&w), &st, &dy, &mut dx).map(|_| ())
            });
            rows.push(row(
                &format!("instance norm {name} fwd+bwd"),
                fb,
                Work::Bytes(5.0 * bytes),
                torch.map(|t| (t.1, "fp32")),
            ));
            if s[1] != 64 {
                return Ok(());
            }
            let gm = rand_dev(g, numel, 14)?;
            let bt = rand_dev(g, numel, 15)?;
            let mut dg = g.zeros(numel)?;
            for pono in [false, true] {
                let kind = if pono { "PONO" } else { "instance" };
                let f = time(g, || {
                    spade_forward(g, pono, dims, 1e-5, &x, &gm, &bt, &mut y).map(|_| ())
                });
                rows.push(row(
                    &format!("SPADE modulation ({kind}) {name} fwd"),
                    f,
                    Work::Bytes(4.0 * bytes),
                    None,
                ));
                let fb = time(g, || {
                    let st = spade_forward(g, pono, dims, 1e-5, &x, &gm, &bt, &mut y)?;
                    spade_backward(g, pono, dims, &x, &gm, &st, &dy, &mut dx, &mut dg)
                });
                rows.push(row(
                    &format!("SPADE modulation ({kind}) {name} fwd+bwd"),
                    fb,
                    Work::Bytes(9.0 * bytes),
                    None,
                ));
            }
            Ok(())
        })();
        if let Err(err) = r {
            rows.push(row_err(
                &format!("norm {name}"),
                Work::Bytes(bytes),
                None,
                err,
            ));
        }
    }
}

fn conv_rows(g: &Gpu, rows: &mut Vec<Row>) {
    // (channels, spatial, PyTorch fwd, fwd+bwd, precision of those figures)
    let shapes: [(usize, usize, _, _, &str); 4] = [
        (64, 256, Some(0.490), Some(1.08), "fwd fp32, fwd+bwd tf32"),
        (128, 128, Some(0.131), Some(0.532), "tf32"),
        (256, 64, Some(0.092), Some(0.752), "tf32"),
        (512, 32, Some(0.105), Some(0.452), "tf32"),
    ];
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    for (c, hw, tf, tfb, prec) in shapes {
        let name = format!("conv3x3 {c}->{c} @{hw}² B4");
        let (xs, ws) = ([4, c, hw, hw], [c, c, 3, 3]);
        let flops = 2.0 * 4.0 * (c * hw * hw) as f64 * (c * 9) as f64;
        let r = (|| -> Result<()> {
            let a = conv_args(xs, ws, &p, true)
                .ok_or_else(|| engine::Error::invalid("bench", "empty conv"))?;
            let n = 4 * c * hw * hw;
            let x = rand_dev(g, n, 20)?;
            let w = rand_dev(g, c * c * 9, 21)?;
            let b = rand_dev(g, c, 22)?;
            let dy = rand_dev(g, n, 23)?;
            let (mut y, mut dx, mut dw, mut db) =
                (g.zeros(n)?, g.zeros(n)?, g.zeros(c * c * 9)?, g.zeros(c)?);
            let f = time(g, || {
                conv_forward(g, &a, ConvPath::Auto, precision(), &x, &w, Some(&b), &mut y)
            });
            rows.push(row(
                &format!("{name} fwd"),
                f,
                Work::Flops(flops),
                tf.map(|t| (t, prec_of(prec, true))),
            ));
            let fb = time(g, || {
                conv_forward(g, &a, ConvPath::Auto, precision(), &x, &w, Some(&b), &mut y)?;
                conv_backward_input(g, &a, ConvPath::Auto, precision(), &dy, &w, &mut dx)?;
                conv_backward_weight(g, &a, ConvPath::Auto, precision(), &x, &dy, &mut dw)?;
                conv_backward_bias(g, &a, &dy, &mut db)
            });
            rows.push(row(
                &format!("{name} fwd+bwd"),
                fb,
                Work::Flops(3.0 * flops),
                tfb.map(|t| (t, prec_of(prec, false))),
            ));
            // The tf32 tensor-core kernels, beside PyTorch's tf32 (cuDNN) figures.
            let t = Precision::Tf32;
            let f = time(g, || {
                conv_forward(g, &a, ConvPath::Auto, t, &x, &w, Some(&b), &mut y)
            });
            let torch_tf32_fwd = TORCH_TF32_CONV_FWD.iter().find(|r| r.0 == c);
            rows.push(row(
                &format!("{name} fwd tf32"),
                f,
                Work::Flops(flops),
                torch_tf32_fwd.map(|r| (r.1, "tf32")),
            ));
            let fb = time(g, || {
                conv_forward(g, &a, ConvPath::Auto, t, &x, &w, Some(&b), &mut y)?;
                conv_backward_input(g, &a, ConvPath::Auto, t, &dy, &w, &mut dx)?;
                conv_backward_weight(g, &a, ConvPath::Auto, t, &x, &dy, &mut dw)?;
                conv_backward_bias(g, &a, &dy, &mut db)
            });
            rows.push(row(
                &format!("{name} fwd+bwd tf32"),
                fb,
                Work::Flops(3.0 * flops),
                tfb.map(|t| (t, "tf32")),
            ));
            Ok(())
        })();
        if let Err(err) = r {
            rows.push(row_err(&name, Work::Flops(flops), None, err));
        }
    }
}

/// PyTorch tf32 (cuDNN) conv3x3 forward ms by channel count, PERFORMANCE.md (H200).
const TORCH_TF32_CONV_FWD: [(usize, f64); 4] =
    [(64, 0.184), (128, 0.131), (256, 0.092), (512, 0.105)];

/// One large square matmul in f32 and tf32, against PyTorch's matmul at the ceilings
/// PERFORMANCE.md measured on the H200 (8192³: fp32 51 TFLOP/s, tf32 408 TFLOP/s).
fn matmul_rows(g: &Gpu, rows: &mut Vec<Row>) {
    const N: usize = 8192;
    let flops = 2.0 * (N as f64).powi(3);
    let r = (|| -> Result<()> {
        let a = rand_dev(g, N * N, 30)?;
        let b = rand_dev(g, N * N, 31)?;
        let mut c = g.zeros(N * N)?;
        for (prec, torch_tflops) in [(Precision::F32, 51.0), (Precision::Tf32, 408.0)] {
            let ms = time(g, || {
                let p = MatmulArgs {
                    m: N as i64,
                    n: N as i64,
                    k: N as i64,
                    batch: 1,
                    lda: N as i64,
                    ldb: N as i64,
                    ldc: N as i64,
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
            let torch_ms = flops / (torch_tflops * 1e12) * 1e3;
            let label = if prec == Precision::F32 {
                "fp32"
            } else {
                "tf32"
            };
            rows.push(row(
                &format!("matmul {N}³ {prec}"),
                ms,
                Work::Flops(flops),
                Some((torch_ms, label)),
            ));
        }
        Ok(())
    })();
    if let Err(err) = r {
        rows.push(row_err("matmul 8192³", Work::Flops(flops), None, err));
    }
}

fn prec_of(p: &'static str, fwd: bool) -> &'static str {
    match (p, fwd) {
        ("tf32", _) => "tf32",
        (_, true) => "fp32",
        _ => "tf32",
    }
}

fn row(case: &str, r: Result<f64>, work: Work, torch: Option<(f64, &'static str)>) -> Row {
    match r {
        Ok(ms) => Row {
            case: case.into(),
            ms: Some(ms),
            work,
            torch,
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
        error: Some(err.to_string()),
    }
}

fn print_table(card: &str, rows: &[Row]) {
    println!("\n## CUDA kernel benchmark (f32 SIMT), {card}\n");
    println!("Median of {RUNS} CUDA-event timed runs after {WARMUP} warm-ups. Ceilings: H200 fp32 SIMT 51 TFLOP/s, HBM 4.2 TB/s.");
    println!("PyTorch figures from PERFORMANCE.md, H200, not the same run.\n");
    println!("| case | ms | TFLOP/s or GB/s | fraction of H200 ceiling | PyTorch eager ms (PERFORMANCE.md) | PyTorch/ours |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let torch = r
            .torch
            .map_or("—".to_string(), |(t, p)| format!("{t:.3} ({p})"));
        let Some(ms) = r.ms else {
            let err = r.error.as_deref().unwrap_or("failed");
            println!(
                "| {} | FAILED: {} | | | {torch} | |",
                r.case,
                err.replace('|', "/")
            );
            continue;
        };
        let (rate, frac) = match r.work {
            Work::Flops(f) => (
                format!("{:.2} TFLOP/s", f / (ms * 1e-3) / 1e12),
                f / (ms * 1e-3) / PEAK_FLOPS,
            ),
            Work::Bytes(b) => (
                format!("{:.0} GB/s", b / (ms * 1e-3) / 1e9),
                b / (ms * 1e-3) / PEAK_BYTES,
            ),
        };
        let ratio = r
            .torch
            .map_or("—".to_string(), |(t, _)| format!("{:.2}", t / ms));
        println!(
            "| {} | {ms:.3} | {rate} | {frac:.2} | {torch} | {ratio} |",
            r.case
        );
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
    let mut rows = Vec::new();
    corr_rows(&g, &mut rows);
    norm_rows(&g, &mut rows);
    conv_rows(&g, &mut rows);
    matmul_rows(&g, &mut rows);
    print_table(&card, &rows);
}

//! CPU throughput of the two GEMM-bound primitives: conv3×3 64→64 at 64×64 and a 1024³ matmul.
//! Prints a markdown table; with `TORCH_CPU_JSON=path` (written by tools/bench_torch_cpu.py on the
//! same machine) it adds PyTorch's numbers and the ratio ours/PyTorch beside each row.
//!
//! Run: `cargo bench --bench cpu_ops` (add `--no-default-features` to skip CUDA/FFmpeg).

use engine::backend::{for_device, Conv2dParams};
use engine::{Device, Tensor};
use std::time::Instant;

struct Case {
    name: &'static str,
    flops: f64,
    run: Box<dyn Fn()>,
}

/// Median wall time in seconds over `reps` runs after two warm-ups.
fn median_secs(f: &dyn Fn(), reps: usize) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn cases() -> Vec<Case> {
    let be = for_device(Device::Cpu).expect("the CPU backend is always present");
    let mut out = Vec::new();
    for batch in [1usize, 4] {
        let x = Tensor::randn([batch, 64, 64, 64], 0.0, 1.0, 1);
        let w = Tensor::randn([64, 64, 3, 3], 0.0, 0.05, 2);
        let b = Tensor::randn([64], 0.0, 0.05, 3);
        let p = Conv2dParams {
            padding: (1, 1),
            ..Default::default()
        };
        let macs = (batch * 64 * 64 * 64 * 64 * 9) as f64;
        let (x2, w2, b2) = (x.clone(), w.clone(), b.clone());
        out.push(Case {
            name: if batch == 1 {
                "conv3x3 64->64 @64x64 fwd, batch 1"
            } else {
                "conv3x3 64->64 @64x64 fwd, batch 4"
            },
            flops: 2.0 * macs,
            run: Box::new(move || {
                be.conv2d(&x2, &w2, Some(&b2), p).expect("conv2d");
            }),
        });
        if batch == 4 {
            let y = be.conv2d(&x, &w, Some(&b), p).expect("conv2d");
            out.push(Case {
                name: "conv3x3 64->64 @64x64 fwd+bwd (dx, dw, db), batch 4",
                flops: 6.0 * macs,
                run: Box::new(move || {
                    be.conv2d(&x, &w, Some(&b), p).expect("conv2d");
                    be.conv2d_backward_input(&y, &w, x.dims(), p).expect("dx");
                    be.conv2d_backward_weight(&x, &y, w.dims(), p).expect("dw");
                    be.conv2d_backward_bias(&y).expect("db");
                }),
            });
        }
    }
    let a = Tensor::randn([1024, 1024], 0.0, 1.0, 4);
    let bm = Tensor::randn([1024, 1024], 0.0, 1.0, 5);
    out.push(Case {
        name: "matmul 1024x1024x1024",
        flops: 2.0 * 1024f64.powi(3),
        run: Box::new(move || {
            be.matmul(&a, &bm, false, false).expect("matmul");
        }),
    });
    out
}

fn torch_numbers() -> Option<serde_json::Value> {
    let path = std::env::var("TORCH_CPU_JSON").ok()?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| eprintln!("{path}: {e}"))
        .ok()?;
    serde_json::from_str(&text)
        .map_err(|e| eprintln!("{path}: {e}"))
        .ok()
}

fn main() {
    let torch = torch_numbers();
    let threads = rayon::current_num_threads();
    println!("CPU, {threads} threads, median of 10\n");
    println!("| case | engine ms | engine GFLOP/s | PyTorch ms | PyTorch GFLOP/s | PyTorch/engine (above 1: engine faster) |");
    println!("|---|---|---|---|---|---|");
    for c in cases() {
        let s = median_secs(&*c.run, 10);
        let ours = c.flops / s / 1e9;
        let theirs = torch.as_ref().and_then(|t| t[c.name].as_f64());
        match theirs {
            Some(ts) => println!(
                "| {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} |",
                c.name,
                s * 1e3,
                ours,
                ts * 1e3,
                c.flops / ts / 1e9,
                ts / s
            ),
            None => println!("| {} | {:.2} | {:.1} | – | – | – |", c.name, s * 1e3, ours),
        }
    }
}

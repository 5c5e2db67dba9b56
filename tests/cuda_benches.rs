//! The two GPU benchmarks (benches/cuda_kernels.rs, benches/cuda_train_step.rs) at their smoke
//! sizes: every row must run without an error, so a launcher or buffer mistake in a benchmark
//! shows here, not in the lent GPU's few minutes. The benchmark sources are compiled in as
//! modules; their `main` is not called. Ignored without a GPU; on the emulated driver below.
#![cfg(feature = "cuda")]

mod common;

#[allow(dead_code)]
#[path = "../benches/cuda_kernels.rs"]
mod cuda_kernels;
#[allow(dead_code)]
#[path = "../benches/cuda_train_step.rs"]
mod cuda_train_step;

use common::gpu_ok;
use engine::backend::cuda::launch::Gpu;
use engine::backend::Precision;

#[test]
#[ignore]
fn kernel_benchmark_runs_at_smoke_sizes() {
    if !gpu_ok() {
        return;
    }
    let g = Gpu::new().expect("gpu");
    let sizes = cuda_kernels::Sizes::smoke();
    let report = cuda_kernels::run(&g, &sizes);
    cuda_kernels::print_table("smoke sizes", &sizes, &report, None);
    // corr_warp: fwd, one fwd+bwd per slab, bf16 fwd and fwd+bwd; norms: fwd and fwd+bwd, and
    // four SPADE rows where asked; convs: four rows; matmul: two.
    let spade = sizes.norms.iter().filter(|n| n.1).count();
    let want = 1
        + sizes.corr_slabs.len()
        + 2
        + 2 * sizes.norms.len()
        + 4 * spade
        + 4 * sizes.convs.len()
        + 2;
    assert_eq!(report.rows.len(), want, "rows of the kernel benchmark");
    for r in &report.rows {
        assert!(r.error.is_none(), "{}: {:?}", r.case, r.error);
        let ms = r.ms.expect("a timing");
        assert!(ms.is_finite() && ms >= 0.0, "{}: {ms} ms", r.case);
    }
    let peak = report
        .peak
        .as_ref()
        .expect("the bf16 corr_warp's peak memory");
    assert!(peak.pooled_mib > 0.0 && peak.outside_mib > 0.0);
}

#[test]
#[ignore]
fn train_step_benchmark_runs_at_smoke_sizes() {
    if !gpu_ok() {
        return;
    }
    let setup = cuda_train_step::Setup::smoke();
    for p in Precision::ALL {
        let t = cuda_train_step::measure(p, &setup).unwrap_or_else(|e| panic!("{p}: {e}"));
        println!("{p}: {t:?}");
        for v in [t.train_ms, t.infer_ms, t.peak_gib] {
            assert!(v.is_finite() && v > 0.0, "{p}: {t:?}");
        }
        // The profiled iteration: convolutions and the correspondence among its kernels.
        assert!(t.profile.len() > 10, "{p}: {:?}", t.profile);
        assert!(t.profile.iter().any(|k| k.kernel.starts_with("conv2d")));
        assert!(t.profile.iter().any(|k| k.kernel.starts_with("corr_warp")));
        assert!(t.profile.iter().all(|k| k.launches > 0 && k.ms >= 0.0));
    }
}

/// PyTorch's same-run rows come from torch_baseline.py's JSON: rows with a time are read (with
/// their peak-memory note), error rows are left out, and a file that is not such a list is an
/// error naming it.
#[test]
fn same_run_pytorch_rows_are_read_from_its_json() {
    let text = r#"[
 {"name": "corr_warp eager B=4 C=256 V=3 bfloat16 tf32=False fwd+bwd", "ms": 1.78, "tflops": 9.3, "note": "peak 640 MiB"},
 {"name": "ceiling matmul 8192^3 float32 tf32=True", "ms": 2.69, "tflops": 408.0},
 {"name": "sdpa", "error": "RuntimeError('no kernel')"}
]"#;
    let t = cuda_kernels::shared::torch_run::TorchRun::parse("t.json", text).unwrap();
    assert_eq!(t.rows.len(), 2);
    let corr = "corr_warp eager B=4 C=256 V=3 bfloat16 tf32=False fwd+bwd";
    assert_eq!(t.rows[corr].0, 1.78);
    assert_eq!(t.peak_mib(corr), Some(640.0));
    assert_eq!(t.peak_mib("ceiling matmul 8192^3 float32 tf32=True"), None);
    for bad in ["{", r#"{"name": "x"}"#] {
        let e = cuda_kernels::shared::torch_run::TorchRun::parse("t.json", bad)
            .err()
            .unwrap();
        assert!(e.starts_with("t.json: "), "{e}");
    }
}

/// The train-step benchmark's parent reads each child's timing line, its error line, or, when
/// the child printed neither (a panic), the last line of its stderr.
#[test]
fn train_step_children_report_a_timing_or_why_not() {
    let out = "setting up\ntiming 812.5 97.25 41.5\nkernel conv2d_igemm_f32 120 301.5\n";
    let t = cuda_train_step::parse_child(out, "").unwrap();
    assert_eq!((t.train_ms, t.infer_ms, t.peak_gib), (812.5, 97.25, 41.5));
    let k = engine::backend::cuda::launch::KernelTime {
        kernel: "conv2d_igemm_f32".into(),
        launches: 120,
        ms: 301.5,
    };
    assert_eq!(t.profile, vec![k]);
    let e = cuda_train_step::parse_child("error cuda alloc failed: out of GPU memory\n", "");
    assert_eq!(e.unwrap_err(), "cuda alloc failed: out of GPU memory");
    let stderr =
        "thread 'main' panicked at src/x.rs:1:2:\nbad shape\nnote: run with RUST_BACKTRACE\n";
    let e = cuda_train_step::parse_child("", stderr).unwrap_err();
    assert!(e.ends_with("panicked at src/x.rs:1:2: bad shape"), "{e}");
    let e = cuda_train_step::parse_child("", "killed\n").unwrap_err();
    assert!(e.ends_with(": killed"), "{e}");
    assert!(cuda_train_step::parse_child("timing 1 2\n", "").is_err());
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 400, &[]);
}

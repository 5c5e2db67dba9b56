//! What the GPU benchmarks share (not a benchmark of its own: cargo only takes benches/*.rs).

pub mod torch_run;

/// True when `ENGINE_BENCH_SMOKE=1` or `--smoke` asks for the small shapes: a rehearsal on the
/// emulated driver, where timings mean nothing.
pub fn smoke_requested() -> bool {
    std::env::var("ENGINE_BENCH_SMOKE").is_ok_and(|v| v == "1")
        || std::env::args().any(|a| a == "--smoke")
}

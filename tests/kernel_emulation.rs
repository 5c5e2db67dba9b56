//! Runs the CPU emulation of the CUDA igemm conv / matmul kernels and of the bf16 tensor-core
//! corr_warp kernels (tools/kernel_emu/run.sh): the real kernels/conv.cu, matmul.cu and
//! corr_warp_bf16.cu compiled as C++, a block's threads as fibers, and the warp collectives
//! (mma.sync tf32 / bf16, ldmatrix, __shfl_xor_sync) and cvt.rn.bf16x2 emulated from the PTX ISA,
//! checked against double-precision references on awkward shapes (the bf16 ones in the launch
//! sequence of src/backend/cuda/launch/corr_warp/bf16.rs). A third driver (main_ops.cpp) runs
//! kernels/{elementwise,layout,reduce,pool,resize,unfold,loss,adam}.cu with the grids, blocks and
//! arguments of their launchers (2-D blocks for the tiled transpose). It catches indexing,
//! fragment-layout, barrier and bounds bugs without a GPU; `KERNEL_EMU_DRIVERS` picks drivers.
//!
//! Without a working C++ compiler ($CXX, else clang++, c++ or g++) the test prints why and passes,
//! unless `ENGINE_REQUIRE_CXX=1`.

mod common;

use std::process::Command;

#[test]
fn igemm_and_bf16_corr_kernels_pass_under_cpu_emulation() {
    let Some(cxx) = common::emulated::cxx_or_skip("kernel_emulation") else {
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg("tools/kernel_emu/run.sh")
        .env("CXX", &cxx)
        .current_dir(root)
        .output()
        .expect("run bash tools/kernel_emu/run.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every check line on failure; the compiler and the summary otherwise.
    assert!(
        out.status.success(),
        "kernel emulation failed ({}):\n{text}",
        out.status
    );
    let lines: Vec<&str> = text.lines().collect();
    eprintln!(
        "{}\n{}",
        lines.first().unwrap_or(&""),
        lines.last().unwrap_or(&"")
    );
}

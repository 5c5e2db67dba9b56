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

use std::path::Path;
use std::process::{Command, Stdio};

/// True when `cxx` compiles a file with the headers the emulator needs.
fn compiles(cxx: &str, dir: &Path) -> bool {
    let src = dir.join("probe.cpp");
    let probe = "#include <functional>\n#include <ucontext.h>\n#include <vector>\nint main() {}\n";
    if std::fs::write(&src, probe).is_err() {
        return false;
    }
    Command::new(cxx)
        .args(["-std=c++17", "-fsyntax-only"])
        .arg(&src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The first working C++ compiler, or why there is none.
fn find_cxx() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("engine_kernel_emu_probe_{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let candidates: Vec<String> = match std::env::var("CXX") {
        Ok(c) if !c.is_empty() => vec![c],
        _ => ["clang++", "c++", "g++"].map(String::from).to_vec(),
    };
    let found = candidates.iter().find(|c| compiles(c, &dir)).cloned();
    let _ = std::fs::remove_dir_all(&dir);
    found.ok_or_else(|| {
        format!(
            "no C++ compiler that builds against the C++ standard library among {candidates:?} \
             (install clang or g++, which bring libstdc++ headers, or set CXX)"
        )
    })
}

#[test]
fn igemm_and_bf16_corr_kernels_pass_under_cpu_emulation() {
    let cxx = match find_cxx() {
        Ok(c) => c,
        Err(why) => {
            if std::env::var("ENGINE_REQUIRE_CXX").as_deref() == Ok("1") {
                panic!("ENGINE_REQUIRE_CXX=1 but {why}");
            }
            eprintln!("SKIPPED kernel_emulation: {why}");
            return;
        }
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

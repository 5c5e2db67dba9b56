//! Compiles every kernel file with NVRTC for sm_90 and sm_80 (no GPU needed) and checks that each
//! expected `extern "C"` symbol is a `.entry` of the PTX. The compile also asserts every
//! parameter struct's size, field sizes and field order (hence offsets: neither side has padding)
//! and every launch constant against `src/backend/cuda/params.rs`, and this test fails on any
//! register spill on sm_90.
//!
//! Without NVRTC the test prints why and passes, unless `ENGINE_REQUIRE_NVRTC=1` (CI sets it
//! through tools/check_kernels.sh). With `ENGINE_PTX_DIR=<dir>` the PTX of every file and arch is
//! written there (`<file>.<arch>.ptx`) for `ptxas -v`; the NVRTC ptxas report (registers,
//! spills, shared memory) is printed with `--nocapture`.
#![cfg(feature = "cuda")]

use engine::backend::cuda::compile::{
    compile, entry_points, nvrtc_present, nvrtc_version, ptxas_report, KernelResources,
};
use engine::backend::cuda::kernels::{KernelFile, KERNEL_FILES};
use engine::backend::cuda::params::UnaryArgs;

const ARCHS: [&str; 2] = ["sm_90", "sm_80"];

/// True when the test should run; false (after saying why) when it may be skipped.
fn nvrtc_or_skip() -> bool {
    if nvrtc_present() {
        return true;
    }
    let why = "NVRTC (libnvrtc.so.13) not found: install nvidia-cuda-nvrtc==13.0.88 and put \
               site-packages/nvidia/cu13/lib on LD_LIBRARY_PATH (tools/check_kernels.sh does both)";
    if std::env::var("ENGINE_REQUIRE_NVRTC").as_deref() == Ok("1") {
        panic!("ENGINE_REQUIRE_NVRTC=1 but {why}");
    }
    eprintln!("SKIPPED kernels_compile: {why}");
    false
}

/// One line per kernel: registers, shared memory, stack, spills.
fn print_report(file: &str, kernels: &[KernelResources]) {
    for k in kernels {
        eprintln!(
            "    {file:<16} {:<40} {:>4} regs {:>6} B smem {:>4} B stack {:>4}/{:<4} B spill st/ld",
            k.name, k.registers, k.shared_bytes, k.stack_bytes, k.spill_stores, k.spill_loads
        );
    }
}

#[test]
fn every_kernel_compiles_for_sm90_and_sm80() {
    if !nvrtc_or_skip() {
        return;
    }
    eprintln!("NVRTC {:?}", nvrtc_version());
    let ptx_dir = std::env::var_os("ENGINE_PTX_DIR").map(std::path::PathBuf::from);
    let (mut failures, mut spills) = (Vec::new(), Vec::new());
    for arch in ARCHS {
        for f in KERNEL_FILES {
            // The ptxas report only for the arch CI reports on, to keep the output short.
            let extra: &[&str] = if arch == "sm_90" {
                &["--ptxas-options=-v"]
            } else {
                &[]
            };
            let out = match compile(f, arch, extra) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{arch}: {e}"));
                    continue;
                }
            };
            let entries = entry_points(&out.ptx);
            let missing: Vec<&str> = f
                .symbols
                .iter()
                .copied()
                .filter(|s| !entries.iter().any(|e| e == s))
                .collect();
            let unlisted: Vec<&String> = entries
                .iter()
                .filter(|e| !f.symbols.contains(&e.as_str()))
                .collect();
            if !missing.is_empty() || !unlisted.is_empty() {
                failures.push(format!(
                    "{arch} {}: missing entries {missing:?}, entries not listed in kernels.rs {unlisted:?}",
                    f.name
                ));
            }
            eprintln!(
                "{arch} {}: {} kernels, {} bytes of PTX",
                f.name,
                entries.len(),
                out.ptx.len()
            );
            if arch == "sm_90" {
                let report = ptxas_report(&out.log);
                print_report(f.name, &report);
                for k in report.iter().filter(|k| k.spill_stores + k.spill_loads > 0) {
                    spills.push(format!("{} {}: {:?}", f.name, k.name, k));
                }
            }
            if let Some(dir) = &ptx_dir {
                let path = dir.join(format!("{}.{arch}.ptx", f.name.trim_end_matches(".cu")));
                std::fs::write(&path, &out.ptx)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} kernel compile failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_broken_kernel_names_its_file_and_shows_the_log() {
    if !nvrtc_or_skip() {
        return;
    }
    let broken = KernelFile {
        name: "broken.cu",
        source: "#include \"common.cuh\"\nextern \"C\" __global__ void broken_f32() { undeclared_name = 1; }\n",
        symbols: &["broken_f32"],
        structs: &[],
        consts: &[],
    };
    let err = compile(&broken, "sm_90", &[])
        .expect_err("must not compile")
        .to_string();
    assert!(err.contains("kernels/broken.cu"), "{err}");
    assert!(
        err.contains("undeclared_name"),
        "the NVRTC log is missing: {err}"
    );
}

#[test]
fn a_struct_that_drifts_from_its_rust_mirror_fails_to_compile() {
    if !nvrtc_or_skip() {
        return;
    }
    // Same size as the Rust UnaryArgs, fields swapped.
    let drifted = KernelFile {
        name: "drifted.cu",
        source: "#include \"common.cuh\"\nstruct UnaryArgs { i64 n; float scalar; int op; };\n\
                 extern \"C\" __global__ void drifted_f32(const UnaryArgs a, float* y) { y[0] = a.scalar; }\n",
        symbols: &["drifted_f32"],
        structs: &[&UnaryArgs::LAYOUT],
        consts: &[],
    };
    let err = compile(&drifted, "sm_90", &[])
        .expect_err("must not compile")
        .to_string();
    assert!(err.contains("UnaryArgs: field order differs"), "{err}");
}

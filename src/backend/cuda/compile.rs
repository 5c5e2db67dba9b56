//! NVRTC compilation of the embedded kernel files.
//!
//! `common.cuh` and the other `kernels::HEADERS` are handed to NVRTC as in-memory headers, so
//! `#include "common.cuh"` works with
//! nothing on disk. Every compile also appends the layout checks of the file's parameter structs
//! (see `KernelFile::layout_checks`): a `.cu` struct that drifts from its Rust mirror is a
//! compile error, not a silent garbage launch. An NVRTC failure is an `Error::File` naming the
//! kernel file, the options and the full log.

use super::kernels::{KernelFile, HEADERS};
use crate::error::{Error, Result};
use cudarc::nvrtc::{result, sys};
use std::ffi::{c_char, CStr, CString};

/// What one successful compile produced.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// PTX text (what the driver JIT-loads, and what `ptxas` reports on).
    pub ptx: String,
    /// NVRTC's log: warnings, and the ptxas resource report when `-Xptxas -v` was passed.
    pub log: String,
    /// The options NVRTC ran with.
    pub options: Vec<String>,
}

/// Whether libnvrtc can be loaded. Must be checked before any other NVRTC call: cudarc panics
/// when the library is missing.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library; calls nothing inside it.
    unsafe { sys::is_culib_present() }
}

/// NVRTC's (major, minor) version, or None when the library is absent.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_present() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; both are valid out-pointers.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    r.result().ok().map(|_| (major, minor))
}

/// The options every kernel is compiled with for `arch` (e.g. "sm_90"), then `extra`.
pub fn options(arch: &str, extra: &[&str]) -> Vec<String> {
    let mut o = vec![
        format!("--gpu-architecture={arch}"),
        "-lineinfo".to_string(),
        "--std=c++17".to_string(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    o
}

/// Compiles `file` for `arch` ("sm_80", "sm_90", ...) with the standard options plus `extra`
/// (e.g. "--ptxas-options=-v").
pub fn compile(file: &KernelFile, arch: &str, extra: &[&str]) -> Result<Compiled> {
    let path = format!("kernels/{}", file.name);
    if !nvrtc_present() {
        return Err(Error::file(
            path,
            "NVRTC (libnvrtc.so.13) was not found; put its lib folder on LD_LIBRARY_PATH",
        ));
    }
    let fail = |what: &str, detail: String| Error::file(&path, format!("{what}: {detail}"));
    let source = format!("{}\n{}", file.source, file.layout_checks());
    let src = cstring(&source).map_err(|e| fail("source", e))?;
    let name = cstring(file.name).map_err(|e| fail("name", e))?;
    let mut owned = Vec::with_capacity(2 * HEADERS.len());
    for (hname, text) in HEADERS {
        owned.push(cstring(text).map_err(|e| fail(hname, e))?);
        owned.push(cstring(hname).map_err(|e| fail(hname, e))?);
    }
    let headers: Vec<*const c_char> = owned.iter().step_by(2).map(|c| c.as_ptr()).collect();
    let include_names: Vec<*const c_char> = owned
        .iter()
        .skip(1)
        .step_by(2)
        .map(|c| c.as_ptr())
        .collect();
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer refers to a NUL-terminated string alive until the program is
    // destroyed below; both arrays hold HEADERS.len() entries.
    unsafe {
        sys::nvrtcCreateProgram(
            &mut prog,
            src.as_ptr(),
            name.as_ptr(),
            headers.len() as i32,
            headers.as_ptr(),
            include_names.as_ptr(),
        )
    }
    .result()
    .map_err(|e| fail("nvrtcCreateProgram", format!("{e:?}")))?;
    let opts = options(arch, extra);
    let out = compile_created(prog, &opts).map_err(|(what, detail)| fail(what, detail));
    // SAFETY: `prog` was created above and is destroyed exactly once.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// Compiles a created program and collects its log and PTX; errors carry the log.
fn compile_created(
    prog: sys::nvrtcProgram,
    opts: &[String],
) -> std::result::Result<Compiled, (&'static str, String)> {
    // SAFETY (all three calls): `prog` is a live program created by the caller.
    let status = unsafe { result::compile_program(prog, opts) };
    let log = unsafe { result::get_program_log(prog) }
        .map(|l| chars_to_string(&l))
        .unwrap_or_else(|e| format!("(no log: {e:?})"));
    if let Err(e) = status {
        let detail = format!(
            "NVRTC failed ({e:?}) with options {}\n{log}",
            opts.join(" ")
        );
        return Err(("compile", detail));
    }
    let ptx = unsafe { result::get_ptx(prog) }
        .map(|p| chars_to_string(&p))
        .map_err(|e| ("nvrtcGetPTX", format!("{e:?}")))?;
    Ok(Compiled {
        ptx,
        log,
        options: opts.to_vec(),
    })
}

fn cstring(s: &str) -> std::result::Result<CString, String> {
    CString::new(s).map_err(|_| "contains a NUL byte".to_string())
}

/// NVRTC's NUL-terminated buffers as a String (lossy: logs may quote arbitrary bytes).
fn chars_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The names of the kernels (`.entry` directives) a PTX module defines.
pub fn entry_points(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix(".visible .entry ")?;
            let end = rest.find('(').unwrap_or(rest.len());
            Some(rest[..end].trim().to_string())
        })
        .collect()
}

/// What ptxas reported for one kernel (`--ptxas-options=-v`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub name: String,
    pub registers: u32,
    pub stack_bytes: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    pub shared_bytes: u32,
}

/// Parses the ptxas section of an NVRTC log into one entry per kernel.
pub fn ptxas_report(log: &str) -> Vec<KernelResources> {
    // The number just before `unit` in `text` ("... 24 bytes stack frame" -> 24).
    fn before(text: &str, unit: &str) -> u32 {
        text.find(unit)
            .and_then(|at| text[..at].split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
    let mut out: Vec<KernelResources> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            out.push(KernelResources {
                name,
                ..Default::default()
            });
        } else if let Some(k) = out.last_mut() {
            if line.contains("bytes stack frame") {
                k.stack_bytes = before(line, "bytes stack frame");
                k.spill_stores = before(line, "bytes spill stores");
                k.spill_loads = before(line, "bytes spill loads");
            } else if line.contains("registers") {
                k.registers = before(line, "registers");
                k.shared_bytes = before(line, "bytes smem");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_reads_visible_entries() {
        let ptx = ".version 9.0\n.visible .entry foo_f32(\n\t.param .align 8 .b8 foo_f32_param_0[16]\n)\n\
                   .entry hidden(\n.visible .entry bar_f32()\n";
        assert_eq!(entry_points(ptx), vec!["foo_f32", "bar_f32"]);
    }

    #[test]
    fn ptxas_report_reads_registers_spills_and_shared_memory() {
        let log = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'a_f32' for 'sm_90'\n\
            ptxas info    : Function properties for a_f32\n\
            ptxas         .     24 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 96 registers, used 1 barriers, 24 bytes cumulative stack size, 4288 bytes smem\n\
            ptxas info    : Compiling entry function 'b_f32' for 'sm_90'\n\
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Used 32 registers, used 0 barriers\n";
        let r = ptxas_report(log);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            KernelResources {
                name: "a_f32".into(),
                registers: 96,
                stack_bytes: 24,
                spill_stores: 8,
                spill_loads: 12,
                shared_bytes: 4288
            }
        );
        assert_eq!(
            (r[1].registers, r[1].shared_bytes, r[1].spill_stores),
            (32, 0, 0)
        );
    }

    #[test]
    fn options_name_arch_lineinfo_and_std() {
        let o = options("sm_90", &["-DX=1"]);
        assert_eq!(
            o,
            vec![
                "--gpu-architecture=sm_90",
                "-lineinfo",
                "--std=c++17",
                "-DX=1"
            ]
        );
    }
}

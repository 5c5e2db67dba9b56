//! The GPU tests without a GPU: a test binary re-runs some of its own `#[ignore]`d GPU tests in a
//! child process whose `libcuda.so` is the emulated driver of tools/kernel_emu/driver (the driver
//! API over host memory, every kernel's real source run by the CPU emulation, NaN-filled
//! allocations with guard zones). The Rust side — cudarc, the launchers, the pool, the CUDA
//! `Backend`, autograd and training on the device — runs unchanged; NVRTC is the real one.
//!
//! Skips (printing why) without a C++ compiler or NVRTC, unless `ENGINE_REQUIRE_CXX=1` /
//! `ENGINE_REQUIRE_NVRTC=1` (CI sets both). The child gets `ENGINE_REQUIRE_GPU=1`, so a test
//! that finds no device fails instead of skipping, `ENGINE_POOL_POISON=1` (pooled buffers come
//! NaN-filled, also when reused), and `ENGINE_EMULATED_GPU=1`, which the few cases too large to
//! emulate (the corr_warp at its real size) read to step aside.

use std::path::Path;
use std::process::{Command, Stdio};
#[cfg(feature = "cuda")]
use std::{
    io::Read,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Set in the child: the tests run on the emulated driver.
pub const EMULATED_ENV: &str = "ENGINE_EMULATED_GPU";

/// True inside a child started by [`rerun_ignored`].
pub fn emulated() -> bool {
    std::env::var(EMULATED_ENV).is_ok_and(|v| v == "1")
}

/// Multiply-adds above which a case is left to a real GPU when emulated (the emulator runs
/// about 10⁷ per second on one core).
pub const EMULATION_WORK_LIMIT: f64 = 5e7;

/// True, after printing why, when running on the emulated driver and `case` needs more than
/// [`EMULATION_WORK_LIMIT`] multiply-adds: the caller skips it (a real GPU runs it).
pub fn too_large_to_emulate(case: &str, work: f64) -> bool {
    let skip = emulated() && work > EMULATION_WORK_LIMIT;
    if skip {
        println!("{case}: skipped on the emulated driver ({work:.1e} multiply-adds; GPU only)");
    }
    skip
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

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

/// The first working C++ compiler ($CXX, else clang++, c++, g++), or why there is none.
pub fn find_cxx() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("engine_cxx_probe_{}", std::process::id()));
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

/// A compiler, or None after printing why the caller skips (a panic where CI requires one).
pub fn cxx_or_skip(what: &str) -> Option<String> {
    match find_cxx() {
        Ok(c) => Some(c),
        Err(why) => {
            assert!(
                !required("ENGINE_REQUIRE_CXX"),
                "ENGINE_REQUIRE_CXX=1 but {why}"
            );
            eprintln!("SKIPPED {what}: {why}");
            None
        }
    }
}

#[cfg(feature = "cuda")]
/// A hash of the names and bytes of every file under `dirs`, in sorted order (the PTX cache's
/// FNV-1a).
fn tree_hash(dirs: &[PathBuf]) -> u64 {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for d in dirs {
        walk(d, &mut files);
    }
    files.sort();
    let named: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                f.to_string_lossy().into_owned(),
                std::fs::read(f).unwrap_or_default(),
            )
        })
        .collect();
    let parts: Vec<&[u8]> = named
        .iter()
        .flat_map(|(n, b)| [n.as_bytes(), b.as_slice()])
        .collect();
    engine::backend::cuda::ptx_cache::fnv1a(&parts)
}

#[cfg(feature = "cuda")]
/// The folder holding the emulated libcuda.so, built once per source state (kernels/ and
/// tools/kernel_emu/) under the target directory; later test binaries reuse it.
fn driver_dir(cxx: &str) -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let hash = tree_hash(&[root.join("kernels"), root.join("tools/kernel_emu")]);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("emulated_cuda")
            .join(format!("{hash:016x}"));
        if dir.join("libcuda.so").is_file() {
            return Ok(dir);
        }
        let out = Command::new("bash")
            .arg(root.join("tools/kernel_emu/driver/build.sh"))
            .arg(&dir)
            .env("CXX", cxx)
            .output()
            .map_err(|e| format!("cannot run tools/kernel_emu/driver/build.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the emulated driver failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(dir)
    })
    .clone()
}

#[cfg(feature = "cuda")]
/// Runs `cmd` to completion or until `budget`, returning (success, output).
fn run_with_budget(mut cmd: Command, budget: Duration) -> (bool, String) {
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot start {cmd:?}: {e}")),
    };
    // Both pipes drained on threads so a chatty child never blocks on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > budget => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(s) => (s.success(), text),
        None => (
            false,
            format!("{text}\n(stopped after its budget of {budget:?})"),
        ),
    }
}

#[cfg(feature = "cuda")]
/// The `#[ignore]`d tests of this binary, from its own `--list --ignored`.
fn ignored_tests(exe: &Path) -> Vec<String> {
    let out = Command::new(exe)
        .args(["--list", "--ignored"])
        .output()
        .expect("list this test binary's ignored tests");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect()
}

#[cfg(feature = "cuda")]
/// Re-runs every `#[ignore]`d test of this binary but those in `skip` on the emulated driver,
/// each in its own child process within `budget_s` seconds (two at a time), and fails with the
/// output of any child that fails. `env` is added to every child's environment.
pub fn rerun_ignored(skip: &[&str], budget_s: u64, env: &[(&str, &str)]) {
    if emulated() {
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let tests: Vec<String> = ignored_tests(&exe)
        .into_iter()
        .filter(|t| !skip.contains(&t.as_str()))
        .collect();
    assert!(!tests.is_empty(), "no #[ignore]d test left to emulate");
    rerun(&tests, true, budget_s, env);
}

#[cfg(feature = "cuda")]
/// [`rerun_ignored`] for the named tests of this binary that are not ignored (they choose the
/// GPU through `env`, e.g. `ENGINE_TEST_DEVICE=cuda`).
pub fn rerun_named(tests: &[&str], budget_s: u64, env: &[(&str, &str)]) {
    if emulated() {
        return;
    }
    let tests: Vec<String> = tests.iter().map(|t| t.to_string()).collect();
    rerun(&tests, false, budget_s, env);
}

#[cfg(feature = "cuda")]
fn rerun(tests: &[String], ignored: bool, budget_s: u64, env: &[(&str, &str)]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("tools/kernel_emu/driver/build.sh").is_file() {
        // A binary carried away from its source tree (to the GPU machine): nothing to build from.
        eprintln!(
            "SKIPPED the GPU tests on the emulated driver: no source tree at {}",
            root.display()
        );
        return;
    }
    let Some(cxx) = cxx_or_skip("the GPU tests on the emulated driver") else {
        return;
    };
    if !engine::backend::cuda::compile::nvrtc_present() {
        assert!(
            !required("ENGINE_REQUIRE_NVRTC"),
            "ENGINE_REQUIRE_NVRTC=1 but NVRTC (libnvrtc.so.13) cannot be loaded"
        );
        eprintln!("SKIPPED the GPU tests on the emulated driver: NVRTC not found");
        return;
    }
    let dir = driver_dir(&cxx).unwrap_or_else(|e| panic!("{e}"));
    let exe = std::env::current_exe().expect("the test binary's path");
    let lib_path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", dir.display()),
        _ => dir.display().to_string(),
    };
    let run_one = |name: &str| -> Option<String> {
        let mut cmd = Command::new(&exe);
        if ignored {
            cmd.arg("--ignored");
        }
        cmd.args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env("LD_LIBRARY_PATH", &lib_path)
            .env("ENGINE_REQUIRE_GPU", "1")
            .env("ENGINE_POOL_POISON", "1")
            .env(EMULATED_ENV, "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let (ok, text) = run_with_budget(cmd, Duration::from_secs(budget_s));
        let passed = ok && text.contains("test result: ok. 1 passed");
        let cases = text.lines().filter(|l| l.ends_with("PASS")).count();
        eprintln!(
            "emulated driver: {name}: {} ({cases} case lines PASS, {:.1} s)",
            if passed { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        (!passed).then(|| format!("---- {name} on the emulated driver ----\n{text}"))
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(name) = tests.get(i) else { break };
                if let Some(f) = run_one(name) {
                    failed.lock().unwrap().push(f);
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

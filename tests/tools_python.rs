//! The Python tools' own unit tests (the weight converters' pickle, protobuf and safetensors
//! readers on tiny generated files; the device run's results collector), run from `cargo test`
//! so that one command tests everything. Skipped with a printed reason when python3 (or, for
//! the weight converters, NumPy) is missing.

use std::process::Command;

#[test]
fn python_tool_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let has_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_numpy {
        eprintln!("skipped: python3 with NumPy not found (pip install numpy)");
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tools/weights/tests"])
        .current_dir(root)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python tool tests failed:\n{text}");
    eprintln!(
        "{}",
        text.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
}

/// tools/record_device_run.py (plain Python, no NumPy) on a made-up device-run folder.
#[test]
fn device_run_record_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = match Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tools/tests"])
        .current_dir(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: python3 not found ({e})");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "device run record tests failed:\n{text}"
    );
    assert!(
        text.contains("Ran ") && !text.contains("Ran 0 tests"),
        "{text}"
    );
}

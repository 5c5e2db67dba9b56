//! The Python tools' own unit tests (the weight converters' pickle, protobuf and safetensors
//! readers on tiny generated files; the device run's results collector), run from `cargo test`
//! so that one command tests everything. Skipped with a printed reason when python3 (or, for
//! the weight converters, NumPy) is missing.

use std::process::Command;

/// `python3 -m unittest discover -s DIR` in the source tree: (passed, stdout and stderr), or
/// None when python3 cannot be started.
fn unittest(dir: &str) -> Option<(bool, String)> {
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", dir])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn python_tool_tests_pass() {
    let has_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_numpy {
        eprintln!("skipped: python3 with NumPy not found (pip install numpy)");
        return;
    }
    let (ok, text) = unittest("tools/weights/tests").expect("run python3");
    assert!(ok, "python tool tests failed:\n{text}");
    eprintln!(
        "{}",
        text.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
}

/// tools/record_device_run.py (plain Python, no NumPy) on a made-up device-run folder.
#[test]
fn device_run_record_tests_pass() {
    let Some((ok, text)) = unittest("tools/tests") else {
        eprintln!("skipped: python3 not found");
        return;
    };
    assert!(ok, "device run record tests failed:\n{text}");
    assert!(
        text.contains("Ran ") && !text.contains("Ran 0 tests"),
        "{text}"
    );
}

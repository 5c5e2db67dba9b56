//! The fetched real weights (`python3 tools/weights/fetch.py` writes them into weights/, which
//! git ignores) and the max-abs comparisons their tests share.

use std::path::PathBuf;

/// `weights/<name>` for each name, or `None` after printing which one is missing, so the test
/// skips on a machine that has not fetched them.
pub fn fetched(names: &[&str]) -> Option<Vec<PathBuf>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights");
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if let Some(p) = paths.iter().find(|p| !p.is_file()) {
        eprintln!(
            "skipped: {} missing (run python3 tools/weights/fetch.py)",
            p.display()
        );
        return None;
    }
    Some(paths)
}

/// max |x|.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// max |a − b| over equal-length slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

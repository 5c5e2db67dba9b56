//! The PTX disk cache: NVRTC output kept under `$XDG_CACHE_HOME/engine/ptx` (or
//! `~/.cache/engine/ptx`), so only the first process on a machine pays for the compiles.
//!
//! The key covers everything the PTX depends on: the kernel file, the headers, the generated
//! layout checks, the NVRTC options (which name the arch) and the NVRTC version. Each file
//! starts with a header line that repeats the key and carries the length and a checksum of the
//! PTX; a file that does not match (truncated, edited, another key) is ignored and rewritten.
//! Writes go to a temporary file in the same folder and are renamed into place, so readers
//! never see half a file. `ENGINE_PTX_CACHE=0` turns the cache off.

use super::compile::{self, Compiled};
use super::kernels::{KernelFile, HEADERS};
use crate::error::Result;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &str = "// engine-ptx-cache v1";

/// 64-bit FNV-1a: stable across Rust versions and machines (std's hasher is not promised to be).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The cache key of `file` compiled with `options` by NVRTC `nvrtc`: a readable prefix and a
/// hash of every input (used as the file name, with `.ptx`).
pub fn key(file: &KernelFile, arch: &str, nvrtc: (i32, i32), options: &[String]) -> String {
    let opts = options.join("\u{1f}");
    let version = format!("{}.{}", nvrtc.0, nvrtc.1);
    let checks = file.layout_checks();
    let mut parts: Vec<&[u8]> = vec![file.name.as_bytes(), file.source.as_bytes()];
    for (name, text) in HEADERS {
        parts.push(name.as_bytes());
        parts.push(text.as_bytes());
    }
    parts.extend([
        checks.as_bytes(),
        opts.as_bytes(),
        arch.as_bytes(),
        version.as_bytes(),
    ]);
    let h = fnv1a(&parts);
    let stem = file.name.trim_end_matches(".cu");
    format!("{stem}-{arch}-nvrtc{version}-{h:016x}")
}

/// The cache folder, or None when the cache is off or there is no home folder.
pub fn cache_dir() -> Option<PathBuf> {
    if std::env::var("ENGINE_PTX_CACHE").is_ok_and(|v| v == "0") {
        return None;
    }
    let nonempty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
    let base = match nonempty("XDG_CACHE_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(nonempty("HOME")?).join(".cache"),
    };
    Some(base.join("engine").join("ptx"))
}

/// The file's text: the header line, then the PTX.
fn encode(key: &str, ptx: &str) -> String {
    let sum = fnv1a(&[ptx.as_bytes()]);
    format!("{MAGIC} key={key} len={} fnv={sum:016x}\n{ptx}", ptx.len())
}

/// The PTX of a cache file's text, or None unless the header names `key` and the length and
/// checksum match.
fn decode(key: &str, text: &str) -> Option<String> {
    let (header, ptx) = text.split_once('\n')?;
    let mut fields = header.strip_prefix(MAGIC)?.split_whitespace();
    if fields.next()? != format!("key={key}") {
        return None;
    }
    let len: usize = fields.next()?.strip_prefix("len=")?.parse().ok()?;
    let sum = u64::from_str_radix(fields.next()?.strip_prefix("fnv=")?, 16).ok()?;
    if fields.next().is_some() || ptx.len() != len || fnv1a(&[ptx.as_bytes()]) != sum {
        return None;
    }
    Some(ptx.to_string())
}

/// The cached PTX for `key` in `dir`, or None if absent or not intact.
pub fn load(dir: &Path, key: &str) -> Option<String> {
    let bytes = std::fs::read(dir.join(format!("{key}.ptx"))).ok()?;
    decode(key, std::str::from_utf8(&bytes).ok()?)
}

/// Writes the PTX for `key` into `dir` atomically: a uniquely named temporary file in the same
/// folder, flushed, then renamed over the final name.
pub fn store(dir: &Path, key: &str, ptx: &str) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{key}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(encode(key, ptx).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{key}.ptx")))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The PTX of `file` for `arch`: from the disk cache when an intact entry exists, else compiled
/// by NVRTC and stored (a cache that cannot be written only costs the next process a compile).
pub fn compile_cached(file: &KernelFile, arch: &str) -> Result<String> {
    let dir = cache_dir();
    let version = compile::nvrtc_version();
    let key = version.map(|v| key(file, arch, v, &compile::options(arch, &[])));
    if let (Some(dir), Some(key)) = (&dir, &key) {
        if let Some(ptx) = load(dir, key) {
            return Ok(ptx);
        }
    }
    let Compiled { ptx, .. } = compile::compile(file, arch, &[])?;
    if let (Some(dir), Some(key)) = (&dir, &key) {
        let _ = store(dir, key, &ptx);
    }
    Ok(ptx)
}

#[cfg(test)]
mod tests {
    use super::super::kernels::KERNEL_FILES;
    use super::*;

    /// A fresh folder under the system temp dir, removed at the end of the test.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("engine-ptx-cache-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PTX: &str = "//\n.version 9.0\n.target sm_90\n.visible .entry foo_f32()\n{\n\tret;\n}\n";

    #[test]
    fn key_changes_with_every_input_and_is_stable() {
        let f = &KERNEL_FILES[0];
        let g = &KERNEL_FILES[1];
        let o90 = compile::options("sm_90", &[]);
        let k = key(f, "sm_90", (13, 0), &o90);
        assert_eq!(k, key(f, "sm_90", (13, 0), &o90), "deterministic");
        assert!(k.starts_with("elementwise-sm_90-nvrtc13.0-"), "{k}");
        let others = [
            key(g, "sm_90", (13, 0), &o90),
            key(f, "sm_80", (13, 0), &o90),
            key(f, "sm_90", (13, 1), &o90),
            key(f, "sm_90", (13, 0), &compile::options("sm_90", &["-G"])),
        ];
        for o in &others {
            assert_ne!(&k, o);
        }
        // FNV-1a reference values (the empty input and "a"), then the separator.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        let names: std::collections::HashSet<String> = KERNEL_FILES
            .iter()
            .map(|f| key(f, "sm_90", (13, 0), &o90))
            .collect();
        assert_eq!(names.len(), KERNEL_FILES.len());
    }

    #[test]
    fn store_then_load_round_trips_and_leaves_no_temporary_files() {
        let t = TempDir::new("roundtrip");
        let dir = t.0.join("nested/ptx");
        assert_eq!(load(&dir, "k1"), None);
        store(&dir, "k1", PTX).unwrap();
        assert_eq!(load(&dir, "k1").as_deref(), Some(PTX));
        assert_eq!(load(&dir, "k2"), None);
        // Overwriting replaces the entry.
        store(&dir, "k1", "other").unwrap();
        assert_eq!(load(&dir, "k1").as_deref(), Some("other"));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["k1.ptx".to_string()]);
    }

    #[test]
    fn corrupt_or_foreign_files_are_ignored() {
        let t = TempDir::new("corrupt");
        store(&t.0, "k", PTX).unwrap();
        let path = t.0.join("k.ptx");
        let good = std::fs::read_to_string(&path).unwrap();
        let truncated = good[..good.len() - 5].to_string();
        let flipped = good.replacen("ret;", "rex;", 1);
        let other_key = good.replacen("key=k ", "key=j ", 1);
        let longer = format!("{good}junk");
        for bad in [
            truncated,
            flipped,
            other_key,
            longer,
            String::new(),
            "garbage".into(),
            PTX.into(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(load(&t.0, "k"), None, "{bad:?}");
        }
        std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
        assert_eq!(load(&t.0, "k"), None);
        // The next store repairs it.
        store(&t.0, "k", PTX).unwrap();
        assert_eq!(load(&t.0, "k").as_deref(), Some(PTX));
    }

    #[test]
    fn concurrent_writers_leave_one_intact_file() {
        let t = TempDir::new("race");
        let texts: Vec<String> = (0..8).map(|i| format!("{PTX}// writer {i}\n")).collect();
        std::thread::scope(|s| {
            for text in &texts {
                let dir = &t.0;
                s.spawn(move || {
                    for _ in 0..20 {
                        store(dir, "k", text).unwrap();
                        let got = load(dir, "k").expect("always an intact file");
                        assert!(got.starts_with(PTX));
                    }
                });
            }
        });
        let got = load(&t.0, "k").unwrap();
        assert!(texts.contains(&got));
        assert_eq!(std::fs::read_dir(&t.0).unwrap().count(), 1);
    }

    #[test]
    fn cache_dir_follows_xdg_then_home() {
        // Only reads the environment; the values are this process's own.
        match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
            _ if std::env::var("ENGINE_PTX_CACHE").is_ok_and(|v| v == "0") => {
                assert_eq!(cache_dir(), None)
            }
            (Some(x), _) if !x.is_empty() => {
                assert_eq!(cache_dir(), Some(PathBuf::from(x).join("engine/ptx")))
            }
            (_, Some(h)) if !h.is_empty() => {
                assert_eq!(
                    cache_dir(),
                    Some(PathBuf::from(h).join(".cache/engine/ptx"))
                )
            }
            _ => assert_eq!(cache_dir(), None),
        }
    }
}

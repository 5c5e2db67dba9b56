//! Writing a file so that its final name only ever holds a complete file: write under a hidden
//! temporary name in the same folder (so the rename cannot cross file systems), then sync and
//! rename over the target. Dropped before `commit`, the temporary file is removed and an existing
//! target is untouched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

pub(crate) struct PartialFile {
    target: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates the empty temporary file beside `target`: `.NAME.partial-PID-N.EXT` (the same
    /// extension, for tools that pick a format from it). Fails with the folder named when the
    /// folder is missing or not writable.
    pub fn create(target: &Path) -> Result<PartialFile> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::file(target, "not a UTF-8 file name"))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let ext = target
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| format!(".{e}"));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(
            ".{name}.partial-{}-{n}{}",
            std::process::id(),
            ext.unwrap_or_default()
        );
        let path = dir.join(tmp_name);
        std::fs::File::create(&path).map_err(|e| {
            Error::file(
                target,
                format!("cannot write into the folder {} ({e})", dir.display()),
            )
        })?;
        Ok(PartialFile {
            target: target.to_path_buf(),
            path,
            committed: false,
        })
    }

    /// The temporary file's path, to write to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the written file to disk and renames it over the target.
    pub fn commit(&mut self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&self.path, &self.target).map_err(io)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_frames::TempDir;

    #[test]
    fn commit_replaces_and_drop_cleans_up() {
        let dir = TempDir::new("partial_file");
        let target = dir.path().join("out.mp4");
        std::fs::write(&target, "old").unwrap();
        let p = PartialFile::create(&target).unwrap();
        assert!(p.path().to_string_lossy().ends_with(".mp4"));
        std::fs::write(p.path(), "half").unwrap();
        drop(p);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut p = PartialFile::create(&target).unwrap();
        std::fs::write(p.path(), "new").unwrap();
        p.commit().unwrap();
        drop(p);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = PartialFile::create(&dir.path().join("missing/out.mp4"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot write into the folder") && err.contains("missing"),
            "{err}"
        );
    }
}

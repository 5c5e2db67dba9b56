//! The layout of a training run folder and the atomic replacement of its checkpoint.
//!
//! ```text
//! RUN/ckpt/          the latest complete checkpoint (state.json is written last)
//! RUN/ckpt.partial/  a checkpoint being written (removed and rewritten on the next save)
//! RUN/ckpt.prev/     the previous checkpoint, only between the two renames of a save
//! RUN/losses.csv  RUN/losses.png  RUN/samples/iter_NNNNNNN.png
//! ```
//!
//! A save writes every file into `ckpt.partial/`, renames `ckpt/` to `ckpt.prev/`, renames
//! `ckpt.partial/` to `ckpt/` and removes `ckpt.prev/`. A crash at any point leaves either `ckpt/`
//! or `ckpt.prev/` complete, and `latest` finds it, so no finished checkpoint is ever lost.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The file that marks a checkpoint folder complete (written last).
pub const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("ckpt")
    }
    fn partial(&self) -> PathBuf {
        self.root.join("ckpt.partial")
    }
    fn previous(&self) -> PathBuf {
        self.root.join("ckpt.prev")
    }
    pub fn losses_csv(&self) -> PathBuf {
        self.root.join("losses.csv")
    }
    pub fn losses_png(&self) -> PathBuf {
        self.root.join("losses.png")
    }
    pub fn kernel_profile(&self) -> PathBuf {
        self.root.join("kernel_profile.md")
    }
    pub fn samples(&self) -> PathBuf {
        self.root.join("samples")
    }

    /// Creates the run folder (and `samples/`), failing with the path when it cannot.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(self.samples()).map_err(Error::io_at(&self.samples()))
    }

    /// The newest complete checkpoint folder, if any.
    pub fn latest(&self) -> Option<PathBuf> {
        [self.checkpoint(), self.previous()]
            .into_iter()
            .find(|d| d.join(STATE_FILE).is_file())
    }

    /// An empty `ckpt.partial/` to write the next checkpoint into.
    pub fn begin_save(&self) -> Result<PathBuf> {
        let partial = self.partial();
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(Error::io_at(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(Error::io_at(&partial))?;
        Ok(partial)
    }

    /// Makes `ckpt.partial/` (which must hold `state.json`) the current checkpoint.
    pub fn commit_save(&self) -> Result<PathBuf> {
        let (partial, current, previous) = (self.partial(), self.checkpoint(), self.previous());
        if !partial.join(STATE_FILE).is_file() {
            return Err(Error::file(
                &partial,
                "checkpoint folder has no state.json; refusing to make it current",
            ));
        }
        if current.join(STATE_FILE).is_file() {
            if previous.exists() {
                std::fs::remove_dir_all(&previous).map_err(Error::io_at(&previous))?;
            }
            std::fs::rename(&current, &previous).map_err(Error::io_at(&current))?;
        } else if current.exists() {
            // An incomplete `ckpt/` cannot be the newest complete one: drop it.
            std::fs::remove_dir_all(&current).map_err(Error::io_at(&current))?;
        }
        std::fs::rename(&partial, &current).map_err(Error::io_at(&partial))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(Error::io_at(&previous))?;
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_frames::TempDir;

    fn write_state(dir: &Path, text: &str) {
        std::fs::write(dir.join(STATE_FILE), text).unwrap();
    }

    #[test]
    fn save_replaces_checkpoint_and_latest_finds_it() {
        let tmp = TempDir::new("run_dir_save");
        let run = RunDir::new(tmp.path().join("run"));
        run.create().unwrap();
        assert!(run.latest().is_none());
        let p = run.begin_save().unwrap();
        write_state(&p, "1");
        run.commit_save().unwrap();
        let p = run.begin_save().unwrap();
        write_state(&p, "2");
        let cur = run.commit_save().unwrap();
        assert_eq!(run.latest().unwrap(), cur);
        assert_eq!(std::fs::read_to_string(cur.join(STATE_FILE)).unwrap(), "2");
        assert!(!run.previous().exists() && !run.partial().exists());
    }

    #[test]
    fn interrupted_save_keeps_the_last_complete_checkpoint() {
        let tmp = TempDir::new("run_dir_crash");
        let run = RunDir::new(tmp.path().join("run"));
        run.create().unwrap();
        let p = run.begin_save().unwrap();
        write_state(&p, "1");
        run.commit_save().unwrap();
        // A crash while writing: partial has no state.json.
        run.begin_save().unwrap();
        assert!(run.commit_save().is_err());
        assert_eq!(run.latest().unwrap(), run.checkpoint());
        // A crash between the two renames: only ckpt.prev is complete.
        std::fs::rename(run.checkpoint(), run.previous()).unwrap();
        assert_eq!(run.latest().unwrap(), run.previous());
        let p = run.begin_save().unwrap();
        write_state(&p, "2");
        run.commit_save().unwrap();
        assert_eq!(run.latest().unwrap(), run.checkpoint());
    }
}

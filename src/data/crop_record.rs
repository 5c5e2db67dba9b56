//! `crop.json`: what `engine extract` did to a video, so model-size frames and poses can be
//! mapped back to the source (`pose::transform::from_model`) and the frame rate kept.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pose::CropBox;
use crate::video::FrameRate;

/// The file name `engine extract` writes next to the frames.
pub const CROP_FILE: &str = "crop.json";

/// The crop of an extracted clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropRecord {
    /// The video or frame folder the frames came from.
    pub source: String,
    /// [width, height] of the source frames.
    pub source_size: [u32; 2],
    /// The source region that became the frames.
    pub crop: CropBox,
    /// Side of the square model-size frames.
    pub size: u32,
    /// Source frame rate as [num, den]; null for a frame folder (no rate stored).
    pub fps: Option<[u32; 2]>,
    /// The same rate in frames per second, for people reading the file.
    pub fps_value: Option<f64>,
    pub frames: usize,
}

impl CropRecord {
    pub fn frame_rate(&self) -> Option<FrameRate> {
        self.fps.and_then(|[n, d]| FrameRate::new(n, d).ok())
    }

    /// Writes the record as pretty JSON to `path` (through a temporary file and a rename, so a
    /// failed write leaves no half file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::file(path, format!("cannot encode the crop record: {e}")))?;
        let tmp = path.with_extension("json.partial");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Io { path: p, source }
        };
        std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    pub fn load(path: &Path) -> Result<CropRecord> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::file(path, format!("not a crop record: {e}")))
    }
}

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
    /// The source region that became the frames. It may extend past the source frame (a
    /// negative corner or a far edge past `source_size`): that part was filled with
    /// `pose::transform::CROP_FILL`. Records from before signed corners load unchanged.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::checkpoint::TargetInfo;
    use crate::video::test_frames::TempDir;

    #[test]
    fn old_records_with_unsigned_corners_still_load() {
        // A crop.json written before the crop corner became signed.
        let dir = TempDir::new("crop_record_old");
        let path = dir.path().join(CROP_FILE);
        let old = r#"{
  "source": "dance.mp4",
  "source_size": [1920, 1080],
  "crop": {"x": 420, "y": 0, "w": 1080, "h": 1080},
  "size": 256,
  "fps": [30000, 1001],
  "fps_value": 29.97002997002997,
  "frames": 12
}"#;
        std::fs::write(&path, old).unwrap();
        let r = CropRecord::load(&path).unwrap();
        let want = CropBox {
            x: 420,
            y: 0,
            w: 1080,
            h: 1080,
        };
        assert_eq!(r.crop, want);
        assert_eq!(r.frame_rate(), FrameRate::new(30000, 1001).ok());
        // The run checkpoint's target description carries the same box.
        let info: TargetInfo = serde_json::from_str(
            r#"{"video": "v.mp4", "poses": "p", "crop": {"x": 420, "y": 0, "w": 1080,
                "h": 1080}, "source_size": [1920, 1080], "fps": 25.0, "frames": 3}"#,
        )
        .unwrap();
        assert_eq!(info.crop, want);
    }

    #[test]
    fn a_padded_crop_round_trips() {
        let dir = TempDir::new("crop_record_padded");
        let path = dir.path().join(CROP_FILE);
        let r = CropRecord {
            source: "portrait.mp4".into(),
            source_size: [1080, 1920],
            crop: CropBox {
                x: -360,
                y: -40,
                w: 1800,
                h: 1800,
            },
            size: 256,
            fps: None,
            fps_value: None,
            frames: 2,
        };
        r.save(&path).unwrap();
        assert_eq!(CropRecord::load(&path).unwrap(), r);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"x\": -360"), "{text}");
        std::fs::write(&path, text.replace("\"w\": 1800", "\"w\": -1")).unwrap();
        assert!(CropRecord::load(&path).is_err());
    }
}

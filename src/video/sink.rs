//! Where written frames go (transfer output, pose overlays): an encoded video (a path with a video extension, `video` feature)
//! or a folder of PNG frames (anything else). Both refuse to replace existing output unless asked,
//! and a video appears only when complete (the encoder writes a partial file and renames it).

use super::{FolderWriter, Frame, FrameRate, ImageFormat};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "mkv", "mov", "avi", "webm"];

pub enum Sink {
    #[cfg(feature = "video")]
    Video(crate::video::encode::VideoEncoder),
    Folder(FolderWriter),
}

/// Whether `path` names a video file (by extension).
pub fn is_video_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

impl Sink {
    /// Opens `path` for `width`×`height` frames at `fps`.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        fps: FrameRate,
        overwrite: bool,
    ) -> Result<Sink> {
        if is_video_path(path) {
            if path.exists() && !overwrite {
                return Err(Error::file(
                    path,
                    "already exists; pass --overwrite to replace it",
                ));
            }
            return Self::video(path, width, height, fps);
        }
        Ok(Sink::Folder(FolderWriter::create(
            path,
            ImageFormat::Png,
            overwrite,
        )?))
    }

    #[cfg(feature = "video")]
    fn video(path: &Path, width: u32, height: u32, fps: FrameRate) -> Result<Sink> {
        let opts = crate::video::encode::EncodeOptions::default();
        Ok(Sink::Video(crate::video::encode::VideoEncoder::create(
            path, width, height, fps, &opts,
        )?))
    }

    #[cfg(not(feature = "video"))]
    fn video(path: &Path, _: u32, _: u32, _: FrameRate) -> Result<Sink> {
        Err(Error::file(
            path,
            "writing video files needs the `video` feature (FFmpeg); rebuild with \
             `--features video`, or give a folder path to write PNG frames",
        ))
    }

    pub fn push(&mut self, frame: &Frame) -> Result<()> {
        match self {
            #[cfg(feature = "video")]
            Sink::Video(v) => v.push(frame),
            Sink::Folder(f) => f.push(frame).map(|_| ()),
        }
    }

    /// Finishes the output: (path, frames written, what wrote them).
    pub fn finish(self) -> Result<(PathBuf, usize, String)> {
        match self {
            #[cfg(feature = "video")]
            Sink::Video(v) => {
                let s = v.finish()?;
                Ok((
                    s.path,
                    s.frames,
                    format!("{} {}x{}", s.codec, s.width, s.height),
                ))
            }
            Sink::Folder(f) => Ok((f.dir().to_path_buf(), f.count(), "png frames".into())),
        }
    }
}

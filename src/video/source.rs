//! One entry point for frames: `open_frames` takes a video file or a folder of PNG/JPEG frames.

use std::path::Path;

use super::folder::FolderReader;
use super::frame::Frame;
use super::info::VideoInfo;
use crate::error::{Error, Result};

enum Inner {
    Folder(FolderReader),
    #[cfg(feature = "video")]
    Video(Box<super::decode::VideoDecoder>),
}

/// Frames from a video file or a frame folder, in order, as `Result<Frame>`s.
pub struct FrameSource {
    info: VideoInfo,
    inner: Inner,
}

impl FrameSource {
    /// Size, frame rate (videos only) and frame count (when known).
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }
    /// True for a frame folder, false for a video file.
    pub fn is_folder(&self) -> bool {
        matches!(self.inner, Inner::Folder(_))
    }
}

/// Opens `path`: a folder is read as numbered PNG/JPEG frames, anything else as a video file
/// (which needs the `video` feature).
pub fn open_frames(path: impl AsRef<Path>) -> Result<FrameSource> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        let reader = FolderReader::open(path)?;
        return Ok(FrameSource {
            info: reader.info(),
            inner: Inner::Folder(reader),
        });
    }
    open_video(path)
}

#[cfg(feature = "video")]
fn open_video(path: &Path) -> Result<FrameSource> {
    let decoder = super::decode::VideoDecoder::open(path)?;
    Ok(FrameSource {
        info: decoder.info().clone(),
        inner: Inner::Video(Box::new(decoder)),
    })
}

#[cfg(not(feature = "video"))]
fn open_video(path: &Path) -> Result<FrameSource> {
    Err(Error::file(
        path,
        "this build cannot read video files: rebuild with `cargo build --features video` \
         (needs FFmpeg's libav* development packages), or pass a folder of PNG/JPEG frames",
    ))
}

impl Iterator for FrameSource {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        match &mut self.inner {
            Inner::Folder(r) => r.next(),
            #[cfg(feature = "video")]
            Inner::Video(d) => d.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::folder::{FolderWriter, ImageFormat};
    use crate::video::test_frames::{moving_squares, TempDir};

    #[test]
    fn opens_a_frame_folder() {
        let dir = TempDir::new("source_folder");
        let frames = moving_squares(10, 6, 3);
        let mut w = FolderWriter::create(dir.path(), ImageFormat::Png, false).unwrap();
        frames.iter().for_each(|f| drop(w.push(f).unwrap()));
        let src = open_frames(dir.path()).unwrap();
        assert!(src.is_folder());
        assert_eq!(src.info().frame_count, Some(3));
        assert_eq!(src.collect::<Result<Vec<_>>>().unwrap(), frames);
    }

    #[test]
    fn missing_path_is_an_io_error_naming_it() {
        let err = open_frames("/nonexistent/engine/clip.mp4").err().unwrap();
        assert!(matches!(err, Error::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/engine/clip.mp4"),
            "{err}"
        );
    }

    #[cfg(not(feature = "video"))]
    #[test]
    fn video_path_without_the_feature_says_how_to_enable_it() {
        let dir = TempDir::new("source_nofeature");
        let p = dir.path().join("clip.mp4");
        std::fs::write(&p, b"anything").unwrap();
        let err = open_frames(&p).err().unwrap().to_string();
        assert!(
            err.contains("--features video") && err.contains("clip.mp4"),
            "{err}"
        );
    }

    #[cfg(feature = "video")]
    #[test]
    fn opens_a_video_file() {
        use crate::video::{EncodeOptions, FrameRate, VideoEncoder};
        let dir = TempDir::new("source_video");
        let p = dir.path().join("clip.mp4");
        let rate = FrameRate::new(12, 1).unwrap();
        let mut enc = VideoEncoder::create(&p, 32, 24, rate, &EncodeOptions::default()).unwrap();
        moving_squares(32, 24, 5)
            .iter()
            .for_each(|f| enc.push(f).unwrap());
        enc.finish().unwrap();
        let src = open_frames(&p).unwrap();
        assert!(!src.is_folder());
        assert_eq!((src.info().width, src.info().height), (32, 24));
        assert_eq!(src.info().frame_rate, Some(rate));
        assert_eq!(src.count(), 5);
    }
}

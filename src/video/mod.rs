//! Frames in and out: decoding videos to RGB frames and encoding frames back (FFmpeg, behind the
//! `video` feature), folders of PNG/JPEG frames (always available), and the frame geometry the
//! pipeline needs (crop, resize, conversion to and from [-1, 1] tensors).

pub mod folder;
pub mod frame;
pub mod info;
pub mod resize;
pub mod sink;
pub mod source;

#[cfg(feature = "video")]
pub mod decode;
#[cfg(feature = "video")]
pub mod encode;
#[cfg(feature = "video")]
mod ffmpeg_io;
#[cfg(feature = "video")]
mod partial_file;

#[cfg(test)]
pub(crate) mod test_frames;

pub use folder::{list_frame_files, write_png_atomic, FolderReader, FolderWriter, ImageFormat};
pub use frame::Frame;
pub use info::{FrameRate, VideoInfo};
pub use sink::{is_video_path, Sink};
pub use source::{open_frames, FrameSource};

#[cfg(feature = "video")]
pub use decode::VideoDecoder;
#[cfg(feature = "video")]
pub use encode::{EncodeOptions, EncodeSummary, VideoCodec, VideoEncoder};

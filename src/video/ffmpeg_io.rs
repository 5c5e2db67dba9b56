//! What the decoder and encoder share: FFmpeg's one-time set-up, file names as FFmpeg URLs, and
//! the YUV↔RGB colour conversion settings.

use std::path::Path;
use std::sync::OnceLock;

use ffmpeg::software::scaling;
use ffmpeg::util::color;
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};

/// Initialises FFmpeg once per process and keeps its console output to real errors.
pub(crate) fn init() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        Ok(())
    })
    .clone()
    .map_err(|e| Error::invalid("video", format!("FFmpeg failed to initialise: {e}")))
}

/// The path as an FFmpeg URL. The `file:` prefix keeps names with a colon from being read as a
/// protocol; ffmpeg-next needs UTF-8 without NUL bytes (it would panic otherwise).
pub(crate) fn url(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(s) if !s.contains('\0') => Ok(format!("file:{s}")),
        _ => Err(Error::file(
            path,
            "FFmpeg needs a UTF-8 file name without NUL bytes",
        )),
    }
}

/// swscale's coefficient table for a YUV colour space (BT.601 when unknown, as FFmpeg does).
fn coefficients(space: color::Space) -> i32 {
    use ffmpeg::ffi;
    match space {
        color::Space::BT709 => ffi::SWS_CS_ITU709,
        color::Space::FCC => ffi::SWS_CS_FCC,
        color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        color::Space::BT2020NCL | color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        _ => ffi::SWS_CS_DEFAULT,
    }
}

/// Tells a YUV→RGB scaler which matrix and range the source uses (swscale assumes BT.601
/// limited range otherwise, which shifts the colours of HD BT.709 video).
pub(crate) fn set_source_colorspace(
    scaler: &mut scaling::Context,
    space: color::Space,
    range: color::Range,
) {
    let full = i32::from(range == color::Range::JPEG);
    // SAFETY: the scaler is a live context; the tables are static arrays owned by swscale;
    // brightness 0 and unit contrast/saturation (16.16 fixed point) are swscale's defaults.
    unsafe {
        let src = ffmpeg::ffi::sws_getCoefficients(coefficients(space));
        let dst = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT);
        ffmpeg::ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            src,
            full,
            dst,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

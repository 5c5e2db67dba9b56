//! Decoding any FFmpeg-readable video file into RGB `Frame`s, one per `next()`.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, decoder, media, threading, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::ffmpeg_io::{init, set_source_colorspace, url};
use super::frame::Frame;
use super::info::{FrameRate, VideoInfo};
use crate::error::{Error, Result};

/// Consecutive unreadable packets tolerated before a file is declared broken.
const MAX_BAD_PACKETS: usize = 100;

/// An open video file: its best video stream decoded and converted to RGB frames of the size
/// the stream declares.
pub struct VideoDecoder {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    decoder: decoder::Video,
    stream: usize,
    info: VideoInfo,
    /// The scaler and the (format, width, height) of the decoded frames it was made for.
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    decoded: ffmpeg::frame::Video,
    rgb: ffmpeg::frame::Video,
    eof_sent: bool,
    finished: bool,
    frames_out: usize,
    skipped_packets: usize,
}

fn rate_of(r: Rational) -> Option<FrameRate> {
    let (n, d) = (
        u32::try_from(r.numerator()).ok()?,
        u32::try_from(r.denominator()).ok()?,
    );
    FrameRate::new(n, d).ok()
}

impl VideoDecoder {
    /// Opens `path` and its decoder; the errors name the path and say what is wrong with it.
    pub fn open(path: impl AsRef<Path>) -> Result<VideoDecoder> {
        let path = path.as_ref().to_path_buf();
        let meta = std::fs::metadata(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            return Err(Error::file(&path, "is a folder, not a video file"));
        }
        init()?;
        let input = ffmpeg::format::input(&url(&path)?).map_err(|e| {
            Error::file(
                &path,
                format!("not a readable video file, or truncated ({e})"),
            )
        })?;
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| Error::file(&path, "the file has no video stream"))?;
        let index = stream.index();
        let frame_rate = rate_of(stream.avg_frame_rate()).or_else(|| rate_of(stream.rate()));
        let frame_count = usize::try_from(stream.frames()).ok().filter(|&n| n > 0);
        let mut ctx = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::file(&path, format!("unusable video stream parameters ({e})")))?;
        // 0 threads lets FFmpeg use every core; frame threading is what H.264 decoders scale with.
        ctx.set_threading(threading::Config::kind(threading::Type::Frame));
        let codec_id = ctx.id();
        let decoder = ctx.decoder().video().map_err(|e| {
            Error::file(
                &path,
                format!("no usable decoder for the {codec_id:?} video stream ({e})"),
            )
        })?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 {
            return Err(Error::file(
                &path,
                "the video stream does not declare a frame size",
            ));
        }
        let info = VideoInfo {
            width,
            height,
            frame_rate,
            frame_count,
        };
        Ok(VideoDecoder {
            path,
            input,
            decoder,
            stream: index,
            info,
            scaler: None,
            decoded: ffmpeg::frame::Video::empty(),
            rgb: ffmpeg::frame::Video::empty(),
            eof_sent: false,
            finished: false,
            frames_out: 0,
            skipped_packets: 0,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Frames returned so far.
    pub fn frames_decoded(&self) -> usize {
        self.frames_out
    }
    /// Packets skipped because the demuxer or decoder found them corrupt.
    pub fn skipped_packets(&self) -> usize {
        self.skipped_packets
    }

    /// Sends the next packet of the video stream to the decoder, or the end-of-stream signal.
    fn feed(&mut self) -> Result<()> {
        if self.eof_sent {
            return Err(Error::file(
                &self.path,
                "the decoder asked for data after the end of the stream",
            ));
        }
        let mut packet = Packet::empty();
        let mut bad = 0;
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() != self.stream => continue,
                Ok(()) => match self.decoder.send_packet(&packet) {
                    Ok(()) => return Ok(()),
                    // A corrupt packet costs a frame, not the video (FFmpeg's own tools do the same).
                    Err(ffmpeg::Error::InvalidData) => self.skipped_packets += 1,
                    Err(e) => return Err(self.decode_error(e)),
                },
                Err(ffmpeg::Error::Eof) => {
                    self.eof_sent = true;
                    return self.decoder.send_eof().map_err(|e| self.decode_error(e));
                }
                Err(ffmpeg::Error::InvalidData) if bad < MAX_BAD_PACKETS => {
                    bad += 1;
                    self.skipped_packets += 1;
                }
                Err(e) => return Err(self.decode_error(e)),
            }
        }
    }

    fn decode_error(&self, e: ffmpeg::Error) -> Error {
        Error::file(
            &self.path,
            format!("decoding failed after {} frames ({e})", self.frames_out),
        )
    }

    /// The decoded frame as RGB at the stream's declared size (a mid-stream size change is
    /// rescaled to it, so every frame of a video has one size).
    fn convert(&mut self) -> Result<Frame> {
        let key = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        if self.scaler.as_ref().map(|s| s.1) != Some(key) {
            let flags = scaling::Flags::BILINEAR
                | scaling::Flags::ACCURATE_RND
                | scaling::Flags::FULL_CHR_H_INT;
            let mut s = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::RGB24,
                self.info.width,
                self.info.height,
                flags,
            )
            .map_err(|e| {
                Error::file(
                    &self.path,
                    format!(
                        "cannot convert {:?} {}×{} frames to RGB ({e})",
                        key.0, key.1, key.2
                    ),
                )
            })?;
            set_source_colorspace(
                &mut s,
                self.decoded.color_space(),
                self.decoded.color_range(),
            );
            self.scaler = Some((s, key));
            self.rgb = ffmpeg::frame::Video::empty();
        }
        let Some((scaler, _)) = self.scaler.as_mut() else {
            return Err(Error::file(&self.path, "internal: no scaler"));
        };
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| self.decode_error(e))?;
        // FFmpeg pads rows to its alignment: copy row by row.
        let (w, h) = (self.info.width as usize, self.info.height as usize);
        let stride = self.rgb.stride(0);
        let src = self.rgb.data(0);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            data.extend_from_slice(&src[y * stride..y * stride + w * 3]);
        }
        Frame::new(self.info.width, self.info.height, data)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let frame = self.convert()?;
                    self.frames_out += 1;
                    return Ok(Some(frame));
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    self.feed()?
                }
                Err(ffmpeg::Error::Eof) if self.frames_out == 0 => {
                    return Err(Error::file(
                        &self.path,
                        "no frames could be decoded from the video stream",
                    ));
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(e) => return Err(self.decode_error(e)),
            }
        }
    }
}

impl Iterator for VideoDecoder {
    type Item = Result<Frame>;

    /// The next frame; after an error or the last frame, `None`.
    fn next(&mut self) -> Option<Result<Frame>> {
        if self.finished {
            return None;
        }
        let res = self.next_frame();
        if !matches!(res, Ok(Some(_))) {
            self.finished = true;
        }
        res.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::encode::{open_stream, EncodeOptions, VideoEncoder};
    use crate::video::test_frames::{moving_squares, TempDir};
    use std::time::Instant;

    fn write_clip(path: &Path, w: u32, h: u32, n: usize) {
        let mut enc = VideoEncoder::create(
            path,
            w,
            h,
            FrameRate::new(25, 1).unwrap(),
            &EncodeOptions::default(),
        )
        .unwrap();
        moving_squares(w, h, n)
            .iter()
            .for_each(|f| enc.push(f).unwrap());
        enc.finish().unwrap();
    }

    /// Opening or decoding fails, and the message names the file.
    fn decode_error(path: &Path) -> String {
        let res = VideoDecoder::open(path).and_then(|d| d.collect::<Result<Vec<Frame>>>());
        let msg = res.expect_err("decoding should fail").to_string();
        assert!(
            msg.contains(&*path.to_string_lossy()),
            "error does not name the file: {msg}"
        );
        msg
    }

    #[test]
    fn missing_file() {
        let err = VideoDecoder::open("/nonexistent/dir/none.mp4")
            .err()
            .unwrap();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("none.mp4"));
    }

    #[test]
    fn folder_is_not_a_video() {
        let dir = TempDir::new("decode_folder");
        assert!(decode_error(dir.path()).contains("folder"));
    }

    #[test]
    fn text_file_named_mp4() {
        let dir = TempDir::new("decode_text");
        let p = dir.path().join("notes.mp4");
        std::fs::write(&p, "this is a text file, not a video\n".repeat(50)).unwrap();
        let msg = decode_error(&p);
        println!("text file: {msg}");
    }

    #[test]
    fn truncated_mp4() {
        let dir = TempDir::new("decode_truncated");
        let good = dir.path().join("good.mp4");
        write_clip(&good, 64, 48, 20);
        let bytes = std::fs::read(&good).unwrap();
        assert!(bytes.len() > 1024);
        let cut = dir.path().join("cut.mp4");
        std::fs::write(&cut, &bytes[..1024]).unwrap();
        let msg = decode_error(&cut);
        println!("truncated: {msg}");
    }

    #[test]
    fn audio_only_file_has_no_video_stream() {
        // A hand-written 8 kHz mono 16-bit WAV of 0.1 s of silence.
        let samples = 800u32;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + 2 * samples).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        for v in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
            wav.extend_from_slice(&v.to_le_bytes());
        }
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(2 * samples).to_le_bytes());
        wav.resize(wav.len() + 2 * samples as usize, 0);
        let dir = TempDir::new("decode_audio");
        let p = dir.path().join("silence.wav");
        std::fs::write(&p, wav).unwrap();
        assert!(decode_error(&p).contains("no video stream"));
    }

    #[test]
    fn video_stream_without_frames() {
        // AVI declares its streams even when empty (the mp4 muxer drops an empty track, and an
        // empty Matroska file fails to open, which the truncated-file test covers).
        let dir = TempDir::new("decode_empty");
        let p = dir.path().join("empty.avi");
        {
            init().unwrap();
            let mut out = ffmpeg::format::output(&url(&p).unwrap()).unwrap();
            let codec = ffmpeg::encoder::find(codec::Id::MPEG4).unwrap();
            open_stream(
                &mut out,
                codec,
                (16, 16),
                Rational::new(25, 1),
                &EncodeOptions::default(),
            )
            .unwrap();
            out.write_header().unwrap();
            out.write_trailer().unwrap();
        }
        let msg = decode_error(&p);
        assert!(msg.contains("no frames"), "{msg}");
    }

    /// The trial clip (never committed): decodes fully, and reports decode and encode speed.
    #[test]
    fn trial_video_decodes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/video/dancer_a.mp4");
        if !path.is_file() {
            println!("skipped: trial video {} is absent", path.display());
            return;
        }
        let t0 = Instant::now();
        let dec = VideoDecoder::open(&path).unwrap();
        let info = dec.info().clone();
        let frames: Vec<Frame> = dec.collect::<Result<_>>().unwrap();
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "dancer_a: {}×{}, {:?}, {:?} declared, {} decoded in {dt:.2} s = {:.1} fps",
            info.width,
            info.height,
            info.frame_rate,
            info.frame_count,
            frames.len(),
            frames.len() as f64 / dt
        );
        assert!(!frames.is_empty());
        assert!(frames.iter().all(|f| f.size() == (info.width, info.height)));
        assert_eq!((info.width, info.height), (692, 1108));
        if let Some(n) = info.frame_count {
            assert_eq!(frames.len(), n);
        }
        // Encode speed on the same frames, into a temporary file deleted at once.
        let dir = TempDir::new("trial_encode");
        let rate = info.frame_rate.unwrap_or(FrameRate { num: 25, den: 1 });
        for preset in ["medium", "veryfast"] {
            let opts = EncodeOptions {
                preset: preset.into(),
                ..EncodeOptions::default()
            };
            let t1 = Instant::now();
            let mut enc = VideoEncoder::create(
                dir.path().join("t.mp4"),
                info.width,
                info.height,
                rate,
                &opts,
            )
            .unwrap();
            frames.iter().for_each(|f| enc.push(f).unwrap());
            let s = enc.finish().unwrap();
            let dt = t1.elapsed().as_secs_f64();
            println!(
                "encode {} preset {preset}: {} frames in {dt:.2} s = {:.1} fps",
                s.codec,
                s.frames,
                s.frames as f64 / dt
            );
        }
        let t2 = Instant::now();
        let square: Vec<Frame> = frames
            .iter()
            .map(|f| f.centre_square().and_then(|s| s.resize(256, 256)))
            .collect::<Result<_>>()
            .unwrap();
        let dt = t2.elapsed().as_secs_f64();
        println!(
            "centre square + resize to 256²: {:.1} fps",
            square.len() as f64 / dt
        );
    }
}

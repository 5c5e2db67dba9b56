//! Encoding frames to a video file: H.264 (libx264, yuv420p) in the container the file name
//! asks for (`.mp4` normally), MPEG-4 Part 2 when no H.264 encoder exists. The file is written
//! under a temporary name in the same folder and renamed on `finish`, so a failed or abandoned
//! encode never replaces an existing output.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, color, encoder, threading, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::ffmpeg_io::{init, url};
use super::frame::Frame;
use super::info::FrameRate;
use super::partial_file::PartialFile;
use crate::error::{Error, Result};

/// Which encoder to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// libx264 when FFmpeg has it, else MPEG-4 Part 2.
    Auto,
    H264,
    Mpeg4,
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub codec: VideoCodec,
    /// x264 constant rate factor (0 lossless … 51; 18 is visually near-lossless).
    pub crf: u8,
    /// x264 preset (`ultrafast` … `veryslow`).
    pub preset: String,
    /// MPEG-4 Part 2 fixed quantiser (2 best … 31).
    pub mpeg4_qscale: u8,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            codec: VideoCodec::Auto,
            crf: 18,
            preset: "medium".into(),
            mpeg4_qscale: 3,
        }
    }
}

/// What `finish` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeSummary {
    pub path: PathBuf,
    pub frames: usize,
    /// The FFmpeg encoder used (`libx264`, `mpeg4`).
    pub codec: String,
    /// The encoded size: the frame size rounded up to even numbers.
    pub width: u32,
    pub height: u32,
}

/// An encode in progress: `create`, `push` each frame, `finish`.
pub struct VideoEncoder {
    path: PathBuf,
    output: ffmpeg::format::context::Output,
    encoder: encoder::Video,
    stream: usize,
    scaler: scaling::Context,
    rgb: ffmpeg::frame::Video,
    yuv: ffmpeg::frame::Video,
    /// Frame size accepted by `push`, and the even size that is encoded.
    size: (u32, u32),
    coded: (u32, u32),
    enc_tb: Rational,
    stream_tb: Rational,
    frames: i64,
    codec_name: String,
    /// MPEG-4's fixed quantiser as a lambda, set on each frame (0 for x264).
    frame_quality: i32,
    // Last, so FFmpeg's file handle closes before the file is removed.
    tmp: PartialFile,
}

/// Checks an encode request before touching the disk; returns the even coded size and the rate.
fn check_request(
    path: &Path,
    width: u32,
    height: u32,
    rate: FrameRate,
) -> Result<((u32, u32), Rational)> {
    const OP: &str = "VideoEncoder::create";
    let coded = match (width.checked_add(width & 1), height.checked_add(height & 1)) {
        (Some(w), Some(h)) if width > 0 && height > 0 && w <= 16384 && h <= 16384 => (w, h),
        _ => {
            return Err(Error::invalid(
                OP,
                format!("frame size {width}×{height} is empty or over 16384"),
            ))
        }
    };
    let rate = match (i32::try_from(rate.num), i32::try_from(rate.den)) {
        (Ok(n), Ok(d)) if n > 0 && d > 0 => Rational::new(n, d),
        _ => {
            return Err(Error::invalid(
                OP,
                format!("frame rate {rate} is out of range"),
            ))
        }
    };
    if path.is_dir() {
        return Err(Error::file(
            path,
            "is a folder; give a file name such as out.mp4",
        ));
    }
    if path.extension().is_none() {
        return Err(Error::file(
            path,
            "the output name needs a video extension such as .mp4",
        ));
    }
    Ok((coded, rate))
}

/// The encoder for `choice`: libx264 by name (other H.264 encoders may need hardware).
fn find_codec(choice: VideoCodec, path: &Path) -> Result<ffmpeg::Codec> {
    let x264 = || encoder::find_by_name("libx264").or_else(|| encoder::find(codec::Id::H264));
    let mpeg4 = || encoder::find(codec::Id::MPEG4);
    let found = match choice {
        VideoCodec::Auto => x264().or_else(mpeg4),
        VideoCodec::H264 => x264(),
        VideoCodec::Mpeg4 => mpeg4(),
    };
    found.ok_or_else(|| Error::file(path, format!("this FFmpeg has no {choice:?} video encoder")))
}

impl VideoEncoder {
    /// Starts writing `width`×`height` frames at `rate` to `path`. Odd sizes are padded to even
    /// ones (yuv420p needs them) by repeating the last column/row; the summary says the size.
    pub fn create(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        rate: FrameRate,
        options: &EncodeOptions,
    ) -> Result<VideoEncoder> {
        let path = path.as_ref().to_path_buf();
        let (coded, rate) = check_request(&path, width, height, rate)?;
        let tmp = PartialFile::create(&path)?;
        init()?;
        let mut output = ffmpeg::format::output(&url(tmp.path())?).map_err(|e| {
            Error::file(
                &path,
                format!("FFmpeg cannot write this kind of file ({e})"),
            )
        })?;
        let codec = find_codec(options.codec, &path)?;
        let (encoder, stream, frame_quality) =
            open_stream(&mut output, codec, coded, rate, options).map_err(|e| {
                Error::file(
                    &path,
                    format!("cannot start the {} encoder ({e})", codec.name()),
                )
            })?;
        output
            .write_header()
            .map_err(|e| Error::file(&path, format!("cannot write the header ({e})")))?;
        // The muxer may change the stream's time base while writing the header.
        let stream_tb = output
            .stream(stream)
            .map(|s| s.time_base())
            .ok_or_else(|| Error::file(&path, "the output stream vanished"))?;
        let flags = scaling::Flags::BILINEAR | scaling::Flags::ACCURATE_RND;
        let scaler = scaling::Context::get(
            Pixel::RGB24,
            coded.0,
            coded.1,
            Pixel::YUV420P,
            coded.0,
            coded.1,
            flags,
        )
        .map_err(|e| Error::file(&path, format!("cannot set up RGB to YUV conversion ({e})")))?;
        Ok(VideoEncoder {
            path,
            enc_tb: encoder.time_base(),
            codec_name: codec.name().to_string(),
            encoder,
            output,
            stream,
            scaler,
            rgb: ffmpeg::frame::Video::new(Pixel::RGB24, coded.0, coded.1),
            yuv: ffmpeg::frame::Video::new(Pixel::YUV420P, coded.0, coded.1),
            size: (width, height),
            coded,
            stream_tb,
            frames: 0,
            frame_quality,
            tmp,
        })
    }

    /// The encoded size (frame size rounded up to even).
    pub fn coded_size(&self) -> (u32, u32) {
        self.coded
    }
    /// The encoder in use (`libx264`, `mpeg4`).
    pub fn codec_name(&self) -> &str {
        &self.codec_name
    }

    /// Encodes the next frame; it must have the size given to `create`.
    pub fn push(&mut self, frame: &Frame) -> Result<()> {
        if frame.size() != self.size {
            return Err(Error::shape(
                "VideoEncoder::push",
                format!(
                    "frame {}×{} for a {}×{} video",
                    frame.width(),
                    frame.height(),
                    self.size.0,
                    self.size.1
                ),
            ));
        }
        fill_padded(&mut self.rgb, frame);
        // SAFETY: the frame is a live, allocated AVFrame; making it writable copies its buffers if
        // the encoder still holds a reference to them (it may queue frames).
        let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(self.yuv.as_mut_ptr()) };
        if ret < 0 {
            return Err(self.encode_error(ffmpeg::Error::from(ret)));
        }
        self.scaler
            .run(&self.rgb, &mut self.yuv)
            .map_err(|e| self.encode_error(e))?;
        self.yuv.set_pts(Some(self.frames));
        if self.frame_quality > 0 {
            // SAFETY: plain field write on a live AVFrame.
            unsafe { (*self.yuv.as_mut_ptr()).quality = self.frame_quality };
        }
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| self.encode_error(e))?;
        self.frames += 1;
        self.write_packets()
    }

    fn encode_error(&self, e: ffmpeg::Error) -> Error {
        Error::file(
            &self.path,
            format!("encoding failed at frame {} ({e})", self.frames),
        )
    }

    /// Moves every packet the encoder has ready into the file.
    fn write_packets(&mut self) -> Result<()> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(self.stream);
                    if packet.duration() == 0 {
                        packet.set_duration(1);
                    }
                    packet.rescale_ts(self.enc_tb, self.stream_tb);
                    packet
                        .write_interleaved(&mut self.output)
                        .map_err(|e| self.encode_error(e))?;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    return Ok(())
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(self.encode_error(e)),
            }
        }
    }

    /// Flushes the encoder, completes the file and moves it to its final name.
    pub fn finish(mut self) -> Result<EncodeSummary> {
        if self.frames == 0 {
            return Err(Error::file(
                &self.path,
                "no frames were given to encode; nothing written",
            ));
        }
        self.encoder.send_eof().map_err(|e| self.encode_error(e))?;
        self.write_packets()?;
        self.output
            .write_trailer()
            .map_err(|e| self.encode_error(e))?;
        // Close FFmpeg's handle now to see write errors (a full disk) before the rename.
        // SAFETY: `pb` is the AVIOContext opened by `format::output`; closep nulls it, so the
        // context's own drop later closes nothing.
        let ret = unsafe { ffmpeg::ffi::avio_closep(&mut (*self.output.as_mut_ptr()).pb) };
        if ret < 0 {
            return Err(self.encode_error(ffmpeg::Error::from(ret)));
        }
        self.tmp.commit()?;
        Ok(EncodeSummary {
            path: self.path.clone(),
            frames: self.frames as usize,
            codec: self.codec_name.clone(),
            width: self.coded.0,
            height: self.coded.1,
        })
    }
}

/// Adds the video stream and opens its encoder; returns the encoder, the stream index and the
/// per-frame quality (MPEG-4's fixed quantiser as a lambda, else 0).
pub(super) fn open_stream(
    output: &mut ffmpeg::format::context::Output,
    codec: ffmpeg::Codec,
    (w, h): (u32, u32),
    rate: Rational,
    options: &EncodeOptions,
) -> std::result::Result<(encoder::Video, usize, i32), ffmpeg::Error> {
    let global_header = output
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let mut stream = output.add_stream(codec)?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(rate.invert());
    enc.set_frame_rate(Some(rate));
    // swscale's RGB→YUV default is BT.601 limited range: say so, so players decode it back alike.
    enc.set_colorspace(color::Space::SMPTE170M);
    enc.set_color_range(color::Range::MPEG);
    let mut flags = codec::Flags::empty();
    if global_header {
        // mp4 keeps the codec headers in the container, not in the stream.
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    let mut dict = Dictionary::new();
    let mut quality = 0;
    // 0 threads = one per core; x264 threads over frames, FFmpeg's MPEG-4 over slices.
    if codec.id() == codec::Id::H264 {
        enc.set_threading(threading::Config::kind(threading::Type::Frame));
        dict.set("preset", &options.preset);
        dict.set("crf", &options.crf.to_string());
    } else {
        enc.set_threading(threading::Config::kind(threading::Type::Slice));
        flags |= codec::Flags::QSCALE;
        quality = options.mpeg4_qscale.clamp(2, 31) as i32 * ffmpeg::ffi::FF_QP2LAMBDA;
        enc.set_global_quality(quality);
    }
    enc.set_flags(flags);
    let opened = enc.open_as_with(codec, dict)?;
    stream.set_parameters(&opened);
    stream.set_time_base(rate.invert());
    stream.set_avg_frame_rate(rate);
    Ok((opened, stream.index(), quality))
}

/// Copies `frame` into the top-left of the (possibly one pixel larger) RGB buffer, repeating
/// the last column and row into the padding. The buffer's rows are padded by FFmpeg.
fn fill_padded(dst: &mut ffmpeg::frame::Video, frame: &Frame) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = (dst.width() as usize, dst.height() as usize);
    let stride = dst.stride(0);
    let data = dst.data_mut(0);
    for y in 0..ch {
        let src = frame.row(y.min(h - 1) as u32);
        let row = &mut data[y * stride..y * stride + cw * 3];
        row[..w * 3].copy_from_slice(src);
        for x in w..cw {
            row[x * 3..x * 3 + 3].copy_from_slice(&src[(w - 1) * 3..w * 3]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::CropBox;
    use crate::video::decode::VideoDecoder;
    use crate::video::test_frames::{moving_squares, psnr, TempDir};

    fn encode(
        path: &Path,
        frames: &[Frame],
        rate: FrameRate,
        opts: &EncodeOptions,
    ) -> EncodeSummary {
        let (w, h) = frames[0].size();
        let mut enc = VideoEncoder::create(path, w, h, rate, opts).unwrap();
        frames.iter().for_each(|f| enc.push(f).unwrap());
        enc.finish().unwrap()
    }

    fn decode(path: &Path) -> (crate::video::VideoInfo, Vec<Frame>) {
        let dec = VideoDecoder::open(path).unwrap();
        let info = dec.info().clone();
        (info, dec.collect::<Result<_>>().unwrap())
    }

    /// Entries of `dir` other than `keep` (temporary files left behind would show here).
    fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    }

    fn round_trip(codec: VideoCodec, rate: FrameRate, want_codec: &str) {
        let dir = TempDir::new("encode_round_trip");
        let p = dir.path().join("clip.mp4");
        let frames = moving_squares(96, 64, 30);
        let opts = EncodeOptions {
            codec,
            ..EncodeOptions::default()
        };
        let s = encode(&p, &frames, rate, &opts);
        assert_eq!(
            (s.frames, s.width, s.height, s.codec.as_str()),
            (30, 96, 64, want_codec)
        );
        let (info, back) = decode(&p);
        assert_eq!((info.width, info.height), (96, 64));
        assert_eq!(back.len(), frames.len());
        let got = info.frame_rate.expect("frame rate").as_f64();
        assert!(
            (got - rate.as_f64()).abs() < 1e-3,
            "frame rate {got} for {rate}"
        );
        let worst = frames
            .iter()
            .zip(&back)
            .map(|(a, b)| psnr(a, b))
            .fold(f64::INFINITY, f64::min);
        println!("{want_codec} at {rate}: worst frame PSNR {worst:.1} dB");
        assert!(worst > 30.0, "{want_codec}: worst PSNR {worst:.1} dB");
        assert_eq!(leftovers(dir.path(), &["clip.mp4"]), Vec::<String>::new());
    }

    #[test]
    fn h264_round_trip() {
        round_trip(VideoCodec::Auto, FrameRate::new(25, 1).unwrap(), "libx264");
    }

    #[test]
    fn h264_keeps_ntsc_rate() {
        round_trip(
            VideoCodec::H264,
            FrameRate::new(30000, 1001).unwrap(),
            "libx264",
        );
    }

    #[test]
    fn mpeg4_fallback_round_trip() {
        round_trip(VideoCodec::Mpeg4, FrameRate::new(16, 1).unwrap(), "mpeg4");
    }

    #[test]
    fn odd_size_is_padded_to_even() {
        let dir = TempDir::new("encode_odd");
        let p = dir.path().join("odd.mp4");
        let frames = moving_squares(33, 17, 6);
        let s = encode(
            &p,
            &frames,
            FrameRate::new(10, 1).unwrap(),
            &EncodeOptions::default(),
        );
        assert_eq!((s.width, s.height), (34, 18));
        let (info, back) = decode(&p);
        assert_eq!((info.width, info.height, back.len()), (34, 18, 6));
        let inner = CropBox {
            x: 0,
            y: 0,
            w: 33,
            h: 17,
        };
        for (a, b) in frames.iter().zip(&back) {
            let p = psnr(a, &b.crop(&inner).unwrap());
            assert!(p > 30.0, "odd-size PSNR {p:.1}");
        }
        // A frame of another size than announced is refused.
        let mut enc = VideoEncoder::create(
            &p,
            33,
            17,
            FrameRate::new(10, 1).unwrap(),
            &EncodeOptions::default(),
        )
        .unwrap();
        let err = enc.push(&frames[0].resize(32, 17).unwrap()).err().unwrap();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
    }

    #[test]
    fn failed_or_abandoned_encode_keeps_the_old_output() {
        let dir = TempDir::new("encode_atomic");
        let p = dir.path().join("out.mp4");
        std::fs::write(&p, "old output").unwrap();
        let frames = moving_squares(32, 32, 3);
        let rate = FrameRate::new(25, 1).unwrap();
        // Abandoned after some frames.
        let mut enc = VideoEncoder::create(&p, 32, 32, rate, &EncodeOptions::default()).unwrap();
        enc.push(&frames[0]).unwrap();
        drop(enc);
        // Finished with no frames.
        let enc = VideoEncoder::create(&p, 32, 32, rate, &EncodeOptions::default()).unwrap();
        let err = enc.finish().err().unwrap().to_string();
        assert!(err.contains("no frames"), "{err}");
        // An unknown x264 preset.
        let bad = EncodeOptions {
            preset: "warp-speed".into(),
            codec: VideoCodec::H264,
            ..EncodeOptions::default()
        };
        let err = VideoEncoder::create(&p, 32, 32, rate, &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("libx264") && err.contains("out.mp4"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old output");
        assert_eq!(leftovers(dir.path(), &["out.mp4"]), Vec::<String>::new());
        // A finished encode replaces it.
        encode(&p, &frames, rate, &EncodeOptions::default());
        assert_eq!(decode(&p).1.len(), 3);
        assert_eq!(leftovers(dir.path(), &["out.mp4"]), Vec::<String>::new());
    }

    #[test]
    fn unwritable_or_bad_output_paths() {
        let dir = TempDir::new("encode_paths");
        let rate = FrameRate::new(25, 1).unwrap();
        let opts = EncodeOptions::default();
        let create = |p: &Path| {
            VideoEncoder::create(p, 16, 16, rate, &opts)
                .err()
                .map(|e| e.to_string())
        };
        let missing = create(&dir.path().join("no/such/folder/out.mp4")).expect("missing folder");
        assert!(
            missing.contains("cannot write into the folder") && missing.contains("out.mp4"),
            "{missing}"
        );
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let under_file = create(&dir.path().join("file/out.mp4")).expect("parent is a file");
        assert!(
            under_file.contains("cannot write into the folder"),
            "{under_file}"
        );
        assert!(create(dir.path())
            .expect("a folder")
            .contains("is a folder"));
        assert!(create(&dir.path().join("noext"))
            .expect("no extension")
            .contains("extension"));
        assert!(create(&dir.path().join("out.notaformat"))
            .expect("unknown format")
            .contains("cannot write this kind"));
        assert!(VideoEncoder::create(dir.path().join("z.mp4"), 0, 16, rate, &opts).is_err());
        // A folder nobody may create files in, root included.
        #[cfg(target_os = "linux")]
        {
            let err = create(Path::new("/proc/engine_out.mp4")).expect("/proc");
            assert!(err.contains("cannot write into the folder /proc"), "{err}");
        }
        // A read-only folder (root may write anyway: then there is nothing to check).
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(ro.join("probe"), "x").is_ok() {
            println!(
                "read-only folder check skipped: running with permission to write anyway (root)"
            );
        } else {
            let err = create(&ro.join("out.mp4")).expect("read-only folder");
            assert!(
                err.contains("cannot write into the folder") && err.contains("ermission"),
                "{err}"
            );
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

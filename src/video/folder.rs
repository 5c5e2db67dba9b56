//! Frame folders: a video as numbered PNG/JPEG files (`frame_000001.png`, …). Reading takes every
//! PNG/JPEG file of the folder in natural order (`f2` before `f10`), so folders written by other
//! tools work too; writing numbers frames from 1.

use std::cmp::Ordering;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageReader};

use super::frame::Frame;
use super::info::VideoInfo;
use crate::error::{Error, Result};

/// The file format of written frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    /// JPEG with a quality of 1..=100.
    Jpeg {
        quality: u8,
    },
}

impl ImageFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg { .. } => "jpg",
        }
    }
}

/// The name of the `index`-th frame (counted from 1): `frame_000001.png`.
pub fn frame_file_name(index: usize, format: ImageFormat) -> String {
    format!("frame_{index:06}.{}", format.extension())
}

fn is_image_file(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// Whether a name is one this module writes (`frame_` + digits + an image extension).
fn is_written_frame_name(path: &Path) -> bool {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    is_image_file(path)
        && stem
            .strip_prefix("frame_")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Compares names the way people number files: runs of digits by value, the rest by character.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let trim = |d: &[u8]| -> usize {
                    d.iter()
                        .take_while(|&&c| c == b'0')
                        .count()
                        .min(d.len() - 1)
                };
                let (ta, tb) = (&da[trim(da)..], &db[trim(db)..]);
                // Longer (zero-stripped) runs are larger numbers; then digit by digit; then
                // fewer leading zeros first so the order is total.
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then_with(|| na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[na..], &b[nb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

/// The PNG/JPEG files of `dir` in natural order of their names.
pub fn list_frame_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        if path.is_file() && is_image_file(&path) {
            files.push(path);
        }
    }
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    files.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    Ok(files)
}

fn read_image(path: &Path) -> Result<Frame> {
    let decoded = ImageReader::open(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .decode()
        .map_err(|e| Error::file(path, format!("cannot decode the image: {e}")))?
        .into_rgb8();
    let (w, h) = decoded.dimensions();
    Frame::new(w, h, decoded.into_raw()).map_err(|e| Error::file(path, e.to_string()))
}

/// Reads a frame folder lazily, one image per `next()`. Every frame must have the first
/// frame's size.
pub struct FolderReader {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    width: u32,
    height: u32,
}

impl FolderReader {
    pub fn open(dir: impl AsRef<Path>) -> Result<FolderReader> {
        let dir = dir.as_ref().to_path_buf();
        let files = list_frame_files(&dir)?;
        let first = files
            .first()
            .ok_or_else(|| Error::file(&dir, "the folder holds no PNG or JPEG frames"))?;
        let (width, height) = image::image_dimensions(first)
            .map_err(|e| Error::file(first, format!("cannot read the image header: {e}")))?;
        Ok(FolderReader {
            dir,
            files,
            next: 0,
            width,
            height,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn info(&self) -> VideoInfo {
        VideoInfo {
            width: self.width,
            height: self.height,
            frame_rate: None,
            frame_count: Some(self.files.len()),
        }
    }

    /// The `index`-th frame (from 0), checked against the folder's frame size.
    pub fn read(&self, index: usize) -> Result<Frame> {
        let path = self.files.get(index).ok_or_else(|| {
            Error::file(
                &self.dir,
                format!(
                    "frame {index} requested, the folder has {}",
                    self.files.len()
                ),
            )
        })?;
        let frame = read_image(path)?;
        if frame.size() != (self.width, self.height) {
            return Err(Error::file(
                path,
                format!(
                    "frame is {}×{}, the folder's first frame is {}×{}",
                    frame.width(),
                    frame.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        Ok(frame)
    }
}

impl Iterator for FolderReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        if self.next >= self.files.len() {
            return None;
        }
        self.next += 1;
        Some(self.read(self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.files.len() - self.next;
        (left, Some(left))
    }
}

/// Writes frames as `frame_000001.png`, `frame_000002.png`, … into a folder.
pub struct FolderWriter {
    dir: PathBuf,
    format: ImageFormat,
    count: usize,
}

impl FolderWriter {
    /// Creates the folder if needed. A folder that already holds frames of this naming is refused
    /// (a shorter new video would otherwise mix with the old frames) unless `overwrite`, which
    /// deletes those frame files (and only those) first.
    pub fn create(
        dir: impl AsRef<Path>,
        format: ImageFormat,
        overwrite: bool,
    ) -> Result<FolderWriter> {
        let dir = dir.as_ref().to_path_buf();
        if let ImageFormat::Jpeg { quality } = format {
            if !(1..=100).contains(&quality) {
                return Err(Error::invalid(
                    "FolderWriter",
                    format!("JPEG quality {quality} is not in 1..=100"),
                ));
            }
        }
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let old: Vec<PathBuf> = list_frame_files(&dir)?
            .into_iter()
            .filter(|p| is_written_frame_name(p))
            .collect();
        if !old.is_empty() && !overwrite {
            return Err(Error::file(
                &dir,
                format!(
                    "the folder already holds {} frame files; choose an empty folder or overwrite",
                    old.len()
                ),
            ));
        }
        for p in old {
            fs::remove_file(&p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(FolderWriter {
            dir,
            format,
            count: 0,
        })
    }

    /// Writes the next frame and returns its path.
    pub fn push(&mut self, frame: &Frame) -> Result<PathBuf> {
        let path = self.dir.join(frame_file_name(self.count + 1, self.format));
        write_image(&path, frame, self.format)?;
        self.count += 1;
        Ok(path)
    }

    /// Frames written so far.
    pub fn count(&self) -> usize {
        self.count
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `frame` as a PNG at `path` through a `.partial` file renamed into place, so nobody
/// (a person watching a run folder, a crash) ever sees half an image.
pub fn write_png_atomic(path: &Path, frame: &Frame) -> Result<()> {
    let tmp = path.with_extension("png.partial");
    write_image(&tmp, frame, ImageFormat::Png)?;
    fs::rename(&tmp, path).map_err(Error::io_at(path))
}

/// Writes one frame as an image file in `format`.
pub fn write_image(path: &Path, frame: &Frame, format: ImageFormat) -> Result<()> {
    let file = fs::File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = BufWriter::new(file);
    let (w, h) = frame.size();
    let res = match format {
        ImageFormat::Png => {
            PngEncoder::new(&mut out).write_image(frame.data(), w, h, ExtendedColorType::Rgb8)
        }
        ImageFormat::Jpeg { quality } => JpegEncoder::new_with_quality(&mut out, quality)
            .write_image(frame.data(), w, h, ExtendedColorType::Rgb8),
    };
    res.map_err(|e| Error::file(path, format!("cannot write the image: {e}")))?;
    out.into_inner()
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_frames::{moving_squares, psnr, TempDir};

    #[test]
    fn natural_order() {
        let mut names = vec![
            "f10.png", "f2.png", "f1.png", "f02.png", "a.png", "f1b.png", "f100.png", "F3.png",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "F3.png", "a.png", "f1.png", "f1b.png", "f2.png", "f02.png", "f10.png", "f100.png"
            ]
        );
        assert_eq!(natural_cmp("x0", "x00"), Ordering::Less);
        assert_eq!(natural_cmp("x007", "x7"), Ordering::Greater);
        assert_eq!(natural_cmp("12", "12"), Ordering::Equal);
    }

    #[test]
    fn png_round_trip_is_exact() {
        let dir = TempDir::new("folder_png");
        let frames = moving_squares(13, 9, 4);
        let mut w = FolderWriter::create(dir.path().join("out"), ImageFormat::Png, false).unwrap();
        for f in &frames {
            w.push(f).unwrap();
        }
        assert_eq!(w.count(), 4);
        assert!(dir.path().join("out/frame_000001.png").is_file());
        let r = FolderReader::open(dir.path().join("out")).unwrap();
        assert_eq!(
            r.info(),
            VideoInfo {
                width: 13,
                height: 9,
                frame_rate: None,
                frame_count: Some(4)
            }
        );
        let back: Vec<Frame> = r.collect::<Result<_>>().unwrap();
        assert_eq!(back, frames);
    }

    #[test]
    fn jpeg_round_trip_is_close() {
        let dir = TempDir::new("folder_jpeg");
        let frames = moving_squares(64, 48, 2);
        let mut w =
            FolderWriter::create(dir.path(), ImageFormat::Jpeg { quality: 95 }, false).unwrap();
        for f in &frames {
            w.push(f).unwrap();
        }
        let back: Vec<Frame> = FolderReader::open(dir.path())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        for (a, b) in frames.iter().zip(&back) {
            let p = psnr(a, b);
            assert!(p > 30.0, "JPEG q95 PSNR {p:.1} dB");
        }
    }

    #[test]
    fn reads_other_tools_names_in_natural_order() {
        let dir = TempDir::new("folder_natural");
        let frames = moving_squares(8, 6, 11);
        for (i, f) in frames.iter().enumerate() {
            write_image(
                &dir.path().join(format!("img{}.PNG", i + 1)),
                f,
                ImageFormat::Png,
            )
            .unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
        let back: Vec<Frame> = FolderReader::open(dir.path())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, frames);
    }

    #[test]
    fn refuses_to_mix_with_existing_frames_unless_overwrite() {
        let dir = TempDir::new("folder_overwrite");
        let frames = moving_squares(8, 8, 3);
        let mut w = FolderWriter::create(dir.path(), ImageFormat::Png, false).unwrap();
        frames.iter().for_each(|f| drop(w.push(f).unwrap()));
        fs::write(dir.path().join("keep.png.txt"), "x").unwrap();
        let err = FolderWriter::create(dir.path(), ImageFormat::Png, false)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("already holds 3 frame files"),
            "{err}"
        );
        let mut w = FolderWriter::create(dir.path(), ImageFormat::Png, true).unwrap();
        w.push(&frames[2]).unwrap();
        let back: Vec<Frame> = FolderReader::open(dir.path())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, vec![frames[2].clone()]);
        assert!(dir.path().join("keep.png.txt").exists());
    }

    #[test]
    fn folder_errors_name_the_path() {
        let dir = TempDir::new("folder_errors");
        let empty = FolderReader::open(dir.path()).err().unwrap();
        assert!(
            empty.to_string().contains("no PNG or JPEG frames"),
            "{empty}"
        );
        let missing = FolderReader::open(dir.path().join("nope")).err().unwrap();
        assert!(matches!(missing, Error::Io { .. }), "{missing}");
        fs::write(dir.path().join("frame_000001.png"), "not a png").unwrap();
        let bad = FolderReader::open(dir.path()).err().unwrap();
        assert!(bad.to_string().contains("frame_000001.png"), "{bad}");
        // A frame of another size than the first.
        let d2 = dir.path().join("sizes");
        let mut w = FolderWriter::create(&d2, ImageFormat::Png, false).unwrap();
        w.push(&Frame::filled(4, 4, [1, 2, 3]).unwrap()).unwrap();
        w.push(&Frame::filled(5, 4, [1, 2, 3]).unwrap()).unwrap();
        let res: Result<Vec<Frame>> = FolderReader::open(&d2).unwrap().collect();
        let msg = res.err().unwrap().to_string();
        assert!(
            msg.contains("frame_000002.png") && msg.contains("5×4"),
            "{msg}"
        );
        assert!(FolderWriter::create(&d2, ImageFormat::Jpeg { quality: 0 }, true).is_err());
        // A folder path below a regular file cannot be created.
        let under_file = dir.path().join("frame_000001.png").join("sub");
        assert!(FolderWriter::create(under_file, ImageFormat::Png, false).is_err());
    }
}

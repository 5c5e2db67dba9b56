//! Safetensors files: atomic writes of named f32 tensors with string metadata, full reads into
//! tensors (F32, F16, BF16 and F64 are converted to f32), and header-only reads. Every error
//! names the file, and the tensor where one is involved.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The `__metadata__` map of a safetensors file.
pub type Metadata = BTreeMap<String, String>;

/// Safetensors' own limit on the JSON header.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What the header says about one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The safetensors dtype name, e.g. "F32".
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// A parsed header: the metadata and, by name, each tensor's dtype and shape.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub metadata: Metadata,
    pub tensors: BTreeMap<String, TensorInfo>,
}

/// Borrowed f32 values serialised as little-endian bytes.
struct F32View<'a> {
    shape: &'a [usize],
    values: Cow<'a, [f32]>,
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(&self.values))
        } else {
            Cow::Owned(self.values.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
    }
    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `tensors` and `metadata` to `path` atomically: a temp file in the same folder is
/// written, fsynced and renamed over `path` (then the folder is fsynced), so a crash or an error
/// leaves either the old file or the new one, never a partial file.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)], metadata: &Metadata) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in tensors {
        if name.is_empty() || name == "__metadata__" || !seen.insert(name.as_str()) {
            return Err(Error::file(
                path,
                format!("invalid or duplicate tensor name `{name}`"),
            ));
        }
    }
    // Host copies only for tensors that are not already on the CPU.
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = match t.cpu_data() {
            Ok(d) => Cow::Borrowed(d),
            Err(_) => Cow::Owned(t.to_vec()?),
        };
        views.push((
            name.as_str(),
            F32View {
                shape: t.dims(),
                values,
            },
        ));
    }
    let info: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let info = Some(info);
    write_atomic(path, |tmp| {
        safetensors::serialize_to_file(views, &info, tmp).map_err(|e| match e {
            SafeTensorError::IoError(source) => io_err(tmp, source),
            e => Error::file(path, format!("cannot serialise: {e}")),
        })
    })
}

/// Runs `write` on a fresh temp path beside `path`, fsyncs it and renames it to `path`. The temp
/// file is removed on any error.
pub(crate) fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    let result = write(&tmp)
        .and_then(|()| {
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Makes the rename itself durable; some filesystems cannot fsync a folder, which is harmless.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let why = match e {
            SafeTensorError::HeaderTooSmall
            | SafeTensorError::InvalidHeaderLength
            | SafeTensorError::MetadataIncompleteBuffer => "truncated or not a safetensors file",
            _ => "not a valid safetensors file",
        };
        Error::file(path, format!("{why} ({e})"))
    })
}

/// Converts one stored tensor to f32 values.
fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let v = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` has dtype {other:?}; only F32, F64, F16 and BF16 are read"
                ),
            ))
        }
    };
    Ok(v)
}

/// Every tensor of a safetensors file, as f32 tensors by name, with the file's metadata.
pub fn read_tensor_file(path: &Path) -> Result<(BTreeMap<String, Tensor>, Metadata)> {
    let bytes = read_all(path)?;
    let st = parse(path, &bytes)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| Error::file(path, e.to_string()))?;
    let metadata: Metadata = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let values = to_f32(path, &name, view.dtype(), view.data())?;
        let t = Tensor::from_vec(values, view.shape().to_vec())
            .map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
    }
    Ok((out, metadata))
}

/// Every tensor of a safetensors file, as f32 tensors by name.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    Ok(read_tensor_file(path.as_ref())?.0)
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Reads only the header (metadata, names, dtypes, shapes), checking that the file's length is
/// the one the header implies, so a truncated file is reported here too.
pub fn read_header(path: impl AsRef<Path>) -> Result<Header> {
    let path = path.as_ref();
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let file_len = f.metadata().map_err(|e| io_err(path, e))?.len();
    let truncated = |what: &str| {
        Error::file(
            path,
            format!("truncated or not a safetensors file ({what})"),
        )
    };
    if file_len < 8 {
        return Err(truncated("shorter than the 8-byte header length"));
    }
    let mut len8 = [0u8; 8];
    f.read_exact(&mut len8).map_err(|e| io_err(path, e))?;
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER_BYTES || 8 + n > file_len {
        return Err(truncated(&format!(
            "header length {n} for a file of {file_len} bytes"
        )));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(|e| io_err(path, e))?;
    let bad = |e: String| Error::file(path, format!("not a valid safetensors header: {e}"));
    let mut raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&buf).map_err(|e| bad(e.to_string()))?;
    let metadata: Metadata = match raw.remove("__metadata__") {
        Some(m) => serde_json::from_value(m).map_err(|e| bad(format!("__metadata__: {e}")))?,
        None => Metadata::new(),
    };
    let mut header = Header {
        metadata,
        tensors: BTreeMap::new(),
    };
    let mut data_end = 0u64;
    for (name, value) in raw {
        let info: RawInfo =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        data_end = data_end.max(info.data_offsets.1);
        header.tensors.insert(
            name,
            TensorInfo {
                dtype: info.dtype,
                shape: info.shape,
            },
        );
    }
    if 8 + n + data_end != file_len {
        return Err(truncated(&format!(
            "the header describes {} bytes, the file has {file_len}",
            8 + n + data_end
        )));
    }
    Ok(header)
}

/// Only the metadata of a safetensors file (e.g. to check a checkpoint's config before loading).
pub fn read_metadata(path: impl AsRef<Path>) -> Result<Metadata> {
    Ok(read_header(path)?.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("engine-st-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_with_metadata_and_header() {
        let dir = temp_dir("rt");
        let p = dir.join("t.safetensors");
        let a = Tensor::from_vec(vec![1.5, -2.0, 3.25], [3, 1]).unwrap();
        let s = Tensor::scalar(7.0);
        let meta: Metadata = [("k".to_string(), "v".to_string())].into_iter().collect();
        save_tensors(&p, &[("b.a".into(), a.clone()), ("s".into(), s)], &meta).unwrap();
        let (t, m) = read_tensor_file(&p).unwrap();
        assert_eq!(m, meta);
        assert_eq!(t["b.a"].dims(), &[3, 1]);
        assert_eq!(t["b.a"].to_vec().unwrap(), a.to_vec().unwrap());
        assert_eq!(t["s"].dims(), &[] as &[usize]);
        let h = read_header(&p).unwrap();
        assert_eq!(h.metadata, meta);
        assert_eq!(
            h.tensors["b.a"],
            TensorInfo {
                dtype: "F32".into(),
                shape: vec![3, 1]
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn half_precision_tensors_are_converted() {
        let dir = temp_dir("half");
        let p = dir.join("h.safetensors");
        let vals = [0.5f32, -1.25, 2.0];
        let bytes: Vec<u8> = vals
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect();
        let view = safetensors::tensor::TensorView::new(Dtype::BF16, vec![3], &bytes).unwrap();
        safetensors::serialize_to_file([("x", view)], &None, &p).unwrap();
        let t = load_tensors(&p).unwrap();
        assert_eq!(t["x"].to_vec().unwrap(), vals.to_vec());
        let bytes = [1u8, 2, 3];
        let view = safetensors::tensor::TensorView::new(Dtype::U8, vec![3], &bytes).unwrap();
        safetensors::serialize_to_file([("y", view)], &None, &p).unwrap();
        let e = load_tensors(&p).unwrap_err();
        assert!(
            matches!(&e, Error::File { detail, .. } if detail.contains("`y`") && detail.contains("U8"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_and_bad_names_are_typed_errors() {
        let dir = temp_dir("bad");
        let p = dir.join("g.safetensors");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(load_tensors(&p), Err(Error::File { .. })));
        assert!(matches!(read_metadata(&p), Err(Error::File { .. })));
        let mut junk = 16u64.to_le_bytes().to_vec();
        junk.extend_from_slice(b"not json at all!");
        std::fs::write(&p, &junk).unwrap();
        assert!(matches!(load_tensors(&p), Err(Error::File { .. })));
        assert!(matches!(read_metadata(&p), Err(Error::File { .. })));
        assert!(matches!(
            load_tensors(dir.join("missing")),
            Err(Error::Io { .. })
        ));
        let t = Tensor::zeros([1]);
        let dup = [("a".to_string(), t.clone()), ("a".to_string(), t)];
        assert!(matches!(
            save_tensors(&p, &dup, &Metadata::new()),
            Err(Error::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

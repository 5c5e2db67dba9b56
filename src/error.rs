//! Typed errors of the public API: every failure names the op, the shapes or the file involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },

    #[error("{op}: invalid argument: {detail}")]
    Invalid { op: &'static str, detail: String },

    #[error("{op}: tensors are on different devices ({a} vs {b})")]
    DeviceMismatch {
        op: &'static str,
        a: String,
        b: String,
    },

    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable { device: String, reason: String },

    /// A driver call on a device that did open failed: a kernel fault, out of memory, a copy.
    #[error("cuda {what} failed: {detail}")]
    DeviceFault { what: String, detail: String },

    #[error("{op}: not implemented on the {backend} backend")]
    NotImplemented {
        op: &'static str,
        backend: &'static str,
    },

    #[error("autograd: {0}")]
    Autograd(String),

    #[error("parameters: {0}")]
    Params(String),

    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }
    pub fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            detail: detail.into(),
        }
    }

    /// For `map_err`: an I/O error at `path`.
    pub fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

//! Saving and loading a `ParamStore` (parameters and buffers by name) as safetensors, with the
//! metadata `format`, `engine_version` and the caller's `config` JSON. Loading checks everything
//! (missing, unexpected, misshaped tensors) before changing any value, so a failed load leaves the
//! store as it was.

use super::params::ParamStore;
use super::safetensors_io::{read_tensor_file, save_tensors, Metadata};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// The `format` metadata value of checkpoints written here.
pub const FORMAT: &str = "engine-params-1";
/// Metadata keys written by `save`; callers' extra metadata may not use them.
pub const RESERVED_KEYS: [&str; 3] = ["format", "engine_version", "config"];

/// Writes every parameter and buffer of `store` to `path` (atomically, see `save_tensors`), with
/// metadata `format`, `engine_version` and `config` (must be valid JSON).
pub fn save(store: &ParamStore, path: impl AsRef<Path>, config_json: &str) -> Result<()> {
    save_with_metadata(store, path, config_json, &Metadata::new())
}

/// `save` plus extra metadata entries (e.g. a training step); reserved keys are an error.
pub fn save_with_metadata(
    store: &ParamStore,
    path: impl AsRef<Path>,
    config_json: &str,
    extra: &Metadata,
) -> Result<()> {
    let path = path.as_ref();
    serde_json::from_str::<serde_json::Value>(config_json)
        .map_err(|e| Error::file(path, format!("the config to save is not valid JSON: {e}")))?;
    let mut metadata = Metadata::new();
    for (k, v) in extra {
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(Error::file(path, format!("metadata key `{k}` is reserved")));
        }
        metadata.insert(k.clone(), v.clone());
    }
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("engine_version".into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert("config".into(), config_json.into());
    let tensors: Vec<(String, Tensor)> = store
        .entries()
        .into_iter()
        .map(|e| (e.name, e.var.value()))
        .collect();
    save_tensors(path, &tensors, &metadata)
}

/// What `load_with` tolerates besides an exact match.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Store entries absent from the file keep their values.
    pub allow_missing: bool,
    /// Tensors of the file that the store lacks are ignored.
    pub allow_unexpected: bool,
}

/// The outcome of a load.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub metadata: Metadata,
    /// Entries whose values were replaced, in store order.
    pub loaded: Vec<String>,
    /// Store entries absent from the file (only with `allow_missing`).
    pub missing: Vec<String>,
    /// File tensors the store lacks (only with `allow_unexpected`).
    pub unexpected: Vec<String>,
}

/// Loads every entry of `store` from `path`; the file must hold exactly the store's names with
/// the same shapes. Returns the file's metadata.
pub fn load(store: &ParamStore, path: impl AsRef<Path>) -> Result<Metadata> {
    Ok(load_with(store, path, LoadOptions::default())?.metadata)
}

/// Loads `path` into `store` under `opts`. On any error no value of the store is changed.
pub fn load_with(
    store: &ParamStore,
    path: impl AsRef<Path>,
    opts: LoadOptions,
) -> Result<LoadReport> {
    let path = path.as_ref();
    let (mut tensors, metadata) = read_tensor_file(path)?;
    let entries = store.entries();
    let mut report = LoadReport {
        metadata,
        ..LoadReport::default()
    };
    let mut problems = Vec::new();
    let mut updates = Vec::new();
    for e in &entries {
        match tensors.remove(&e.name) {
            None => report.missing.push(e.name.clone()),
            Some(t) if t.dims() != e.var.dims() => problems.push(format!(
                "tensor `{}` has shape {:?} in the file, {:?} in the model",
                e.name,
                t.dims(),
                e.var.dims()
            )),
            Some(t) => updates.push((e, t)),
        }
    }
    report.unexpected = tensors.into_keys().collect();
    if !opts.allow_missing && !report.missing.is_empty() {
        problems.push(format!("missing tensors: {}", name_list(&report.missing)));
    }
    if !opts.allow_unexpected && !report.unexpected.is_empty() {
        problems.push(format!(
            "unexpected tensors: {}",
            name_list(&report.unexpected)
        ));
    }
    if !problems.is_empty() {
        return Err(Error::file(path, problems.join("; ")));
    }
    for (e, t) in updates {
        // Files hold host values; a store already on the GPU gets device copies.
        let t = t.on_device(e.var.device())?;
        e.var
            .set_value(t)
            .map_err(|err| Error::file(path, format!("tensor `{}`: {err}", e.name)))?;
        report.loaded.push(e.name.clone());
    }
    Ok(report)
}

/// The `config` metadata entry of a checkpoint, read from its header only.
pub fn read_config(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut metadata = super::safetensors_io::read_metadata(path)?;
    metadata
        .remove("config")
        .ok_or_else(|| Error::file(path, "no `config` entry in the metadata"))
}

/// `a`, `b`, … (first 20 names, then a count).
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

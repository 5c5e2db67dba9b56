//! Loading the PyTorch fixtures written by tools/make_*_fixtures.py.
//!
//! A fixture file holds tensors `<case>.<name>` and, in its safetensors metadata, one JSON object
//! `{"op": .., "params": {..}}` per case beside the reserved keys (`torch_version`, `seed`,
//! `generator`, `reference_dtype`). A [`Case`] records which of its tensors and params a test
//! read, so a test can prove it consumed everything the generator wrote.

use engine::Tensor;
use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Metadata keys that are not cases.
pub const RESERVED_KEYS: [&str; 4] = ["torch_version", "seed", "generator", "reference_dtype"];

/// `tests/fixtures` of the source tree this test was built from, or, where that is gone (a test
/// binary carried to the GPU machine and run from the repository root there), of the current
/// directory.
pub fn fixtures_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests").join("fixtures")
    }
}

/// One loaded fixture file.
pub struct Fixture {
    pub name: String,
    pub meta: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, Tensor>,
}

impl Fixture {
    /// Loads `tests/fixtures/<stem>.safetensors` (float32 tensors only).
    pub fn load(stem: &str) -> Result<Fixture, String> {
        let path = fixtures_dir().join(format!("{stem}.safetensors"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // read_metadata validates the header and that the offsets tile the data section.
        let (header_len, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| format!("{}: {e:?}", path.display()))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let data = &bytes[8 + header_len..];
        let mut tensors = BTreeMap::new();
        for (name, info) in header.tensors() {
            if info.dtype != Dtype::F32 {
                return Err(format!(
                    "{stem}: tensor {name} is {:?}, expected F32",
                    info.dtype
                ));
            }
            let (start, end) = info.data_offsets;
            let raw = data
                .get(start..end)
                .ok_or_else(|| format!("{stem}: tensor {name} lies outside the file"))?;
            let values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let t = Tensor::from_vec(values, info.shape.clone())
                .map_err(|e| format!("{stem}.{name}: {e}"))?;
            tensors.insert(name, t);
        }
        Ok(Fixture {
            name: stem.to_string(),
            meta,
            tensors,
        })
    }

    /// The case names: every metadata key that is not reserved.
    pub fn case_names(&self) -> Vec<String> {
        self.meta
            .keys()
            .filter(|k| !RESERVED_KEYS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    pub fn case(&self, name: &str) -> Result<Case<'_>, String> {
        let raw = self
            .meta
            .get(name)
            .ok_or_else(|| format!("{}: no case {name}", self.name))?;
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| format!("{}.{name}: bad JSON {raw:?}: {e}", self.name))?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{}.{name}: metadata is not a JSON object", self.name))?;
        let op = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}.{name}: no \"op\"", self.name))?;
        let params = obj
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let extra: Vec<&String> = obj
            .keys()
            .filter(|k| *k != "op" && *k != "params")
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "{}.{name}: unexpected metadata fields {extra:?}",
                self.name
            ));
        }
        Ok(Case {
            fixture: self,
            name: name.to_string(),
            op: op.to_string(),
            params,
            used_tensors: RefCell::new(BTreeSet::new()),
            used_params: RefCell::new(BTreeSet::new()),
        })
    }

    /// Tensor keys whose `<case>.` prefix names no case.
    pub fn orphan_tensors(&self) -> Vec<String> {
        let cases: BTreeSet<String> = self.case_names().into_iter().collect();
        self.tensors
            .keys()
            .filter(|k| !k.split_once('.').is_some_and(|(c, _)| cases.contains(c)))
            .cloned()
            .collect()
    }
}

/// One case of a fixture; reads are recorded so that unread tensors or params can be reported.
pub struct Case<'a> {
    fixture: &'a Fixture,
    pub name: String,
    pub op: String,
    params: Map<String, Value>,
    used_tensors: RefCell<BTreeSet<String>>,
    used_params: RefCell<BTreeSet<String>>,
}

impl<'a> Case<'a> {
    /// `<file>.<case>`, for messages.
    pub fn id(&self) -> String {
        format!("{}.{}", self.fixture.name, self.name)
    }

    pub fn has(&self, key: &str) -> bool {
        self.fixture
            .tensors
            .contains_key(&format!("{}.{key}", self.name))
    }

    /// The tensor `<case>.<key>` (marked as consumed).
    pub fn t(&self, key: &str) -> Result<Tensor, String> {
        let full = format!("{}.{key}", self.name);
        let t = self
            .fixture
            .tensors
            .get(&full)
            .ok_or_else(|| format!("{}: missing tensor {key}", self.id()))?;
        self.used_tensors.borrow_mut().insert(key.to_string());
        Ok(t.clone())
    }

    fn param(&self, key: &str) -> Result<&Value, String> {
        let v = self
            .params
            .get(key)
            .ok_or_else(|| format!("{} ({}): missing param {key:?}", self.id(), self.op))?;
        self.used_params.borrow_mut().insert(key.to_string());
        Ok(v)
    }

    pub fn has_param(&self, key: &str) -> bool {
        self.params.contains_key(key)
    }

    pub fn f32(&self, key: &str) -> Result<f32, String> {
        self.param(key)?
            .as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| format!("{}: param {key} is not a number", self.id()))
    }

    pub fn bool(&self, key: &str) -> Result<bool, String> {
        self.param(key)?
            .as_bool()
            .ok_or_else(|| format!("{}: param {key} is not a bool", self.id()))
    }

    pub fn str(&self, key: &str) -> Result<String, String> {
        self.param(key)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: param {key} is not a string", self.id()))
    }

    pub fn usize(&self, key: &str) -> Result<usize, String> {
        let v = self.param(key)?;
        v.as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| format!("{}: param {key} = {v} is not a count", self.id()))
    }

    pub fn usizes(&self, key: &str) -> Result<Vec<usize>, String> {
        let v = self.param(key)?;
        let arr = v
            .as_array()
            .ok_or_else(|| format!("{}: param {key} = {v} is not a list", self.id()))?;
        arr.iter()
            .map(|x| {
                x.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| format!("{}: param {key} = {v} holds a non-count", self.id()))
            })
            .collect()
    }

    /// A two-element list as a pair (kernel, stride, padding, ...).
    pub fn pair(&self, key: &str) -> Result<(usize, usize), String> {
        match self.usizes(key)?[..] {
            [a, b] => Ok((a, b)),
            ref other => Err(format!(
                "{}: param {key} = {other:?} is not a pair",
                self.id()
            )),
        }
    }

    /// Tensors and params of this case that the test never read.
    pub fn unconsumed(&self) -> Vec<String> {
        let prefix = format!("{}.", self.name);
        let used_t = self.used_tensors.borrow();
        let used_p = self.used_params.borrow();
        let mut out: Vec<String> = self
            .fixture
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|k| !used_t.contains(*k))
            .map(|k| format!("tensor {k}"))
            .collect();
        out.extend(
            self.params
                .keys()
                .filter(|k| !used_p.contains(*k))
                .map(|k| format!("param {k}")),
        );
        out
    }
}

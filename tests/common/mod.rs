//! Shared helpers of the integration tests: loading the PyTorch fixtures written by
//! tools/make_op_fixtures.py, and comparing tensors with a named, explicit tolerance.
//!
//! A fixture file holds tensors `<case>.<name>` and, in its safetensors metadata, one JSON object
//! `{"op": .., "params": {..}}` per case beside the reserved keys (`torch_version`, `seed`,
//! `generator`, `reference_dtype`). A [`Case`] records which of its tensors and params a test
//! read, so a test can prove it consumed everything the generator wrote.
#![allow(dead_code)]

use engine::{Tensor, Var};
use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub mod emulated;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod parity;
pub mod summary;
pub mod weights;

pub type R<T> = Result<T, String>;

/// Relative + absolute tolerance: an element passes when |got − want| ≤ atol + rtol·|want|.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub rtol: f32,
    pub atol: f32,
}

/// Pure data movement (permute, narrow, concat, broadcast, nearest resize): bit-exact.
pub const EXACT: Tol = Tol {
    rtol: 0.0,
    atol: 0.0,
};
/// One rounding or a libm call per element (elementwise ops and their gradients).
pub const STRICT: Tol = Tol {
    rtol: 1e-6,
    atol: 1e-6,
};
/// Short sums of a few rounded terms (broadcast gradients, pooling windows, small reductions).
pub const REDUCE: Tol = Tol {
    rtol: 1e-5,
    atol: 1e-6,
};
/// Dot products and long sums: GEMM, convolution, normalisation statistics, softmax rows.
pub const BALANCED: Tol = Tol {
    rtol: 1e-4,
    atol: 1e-5,
};
/// Ill-conditioned compositions (corr_warp at scale 100: logits up to ±100 through a softmax).
pub const PERMISSIVE: Tol = Tol {
    rtol: 1e-3,
    atol: 1e-4,
};

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

/// How far `got` is from `want`, in the terms a failure message needs.
#[derive(Clone, Debug)]
pub struct Diff {
    pub max_abs: f32,
    pub max_rel: f32,
    /// Largest |err| / (atol + rtol·|want|): ≤ 1 passes.
    pub share: f32,
    /// Flat index of the element with the largest share.
    pub worst: usize,
}

/// Compares shapes and values; Err with a full report on any failure (shape, NaN/Inf, tolerance).
pub fn check_close(name: &str, got: &Tensor, want: &Tensor, tol: Tol) -> Result<Diff, String> {
    if got.dims() != want.dims() {
        return Err(format!(
            "{name}: shape {:?}, expected {:?}",
            got.dims(),
            want.dims()
        ));
    }
    let g = got.to_vec().map_err(|e| format!("{name}: {e}"))?;
    let w = want.to_vec().map_err(|e| format!("{name}: {e}"))?;
    if let Some(i) = g.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "{name}: non-finite value {} at {:?}",
            g[i],
            unravel(i, got.dims())
        ));
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        return Err(format!(
            "{name}: the reference holds {} at {:?}",
            w[i],
            unravel(i, want.dims())
        ));
    }
    let mut d = Diff {
        max_abs: 0.0,
        max_rel: 0.0,
        share: 0.0,
        worst: 0,
    };
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs();
        let allowed = tol.atol + tol.rtol * b.abs();
        let share = if err == 0.0 {
            0.0
        } else if allowed > 0.0 {
            err / allowed
        } else {
            f32::INFINITY
        };
        d.max_abs = d.max_abs.max(err);
        if b != 0.0 {
            d.max_rel = d.max_rel.max(err / b.abs());
        }
        if share > d.share {
            d.share = share;
            d.worst = i;
        }
    }
    if d.share > 1.0 {
        let i = d.worst;
        return Err(format!(
            "{name}: max abs err {:.3e}, max rel err {:.3e}, worst at {:?} (got {}, want {}), {:.2}x the tolerance (rtol {:e}, atol {:e}), shape {:?}",
            d.max_abs,
            d.max_rel,
            unravel(i, want.dims()),
            g[i],
            w[i],
            d.share,
            tol.rtol,
            tol.atol,
            want.dims()
        ));
    }
    Ok(d)
}

/// Panics with the report of [`check_close`] on failure.
pub fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: Tol) {
    if let Err(msg) = check_close(name, got, want, tol) {
        panic!("{msg}");
    }
}

/// Multi-index of a flat row-major position.
pub fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (k, &d) in dims.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

// ---- running a fixture through the autograd API ---------------------------------------------

/// Names the case and op on an engine error.
pub trait Ctx<T> {
    fn ctx(self, c: &Case) -> R<T>;
}

impl<T> Ctx<T> for engine::Result<T> {
    fn ctx(self, c: &Case) -> R<T> {
        self.map_err(|e| format!("{} ({}): {e}", c.id(), c.op))
    }
}

/// Mismatches and tolerance shares collected over one fixture file.
#[derive(Default)]
pub struct Log {
    pub errs: Vec<String>,
    /// (case.tensor, share of the tolerance used) of every comparison that passed.
    pub shares: Vec<(String, f32)>,
}

impl Log {
    /// Compares `got` with the case's tensor `key`.
    pub fn check(&mut self, c: &Case, key: &str, got: &Tensor, tol: Tol) {
        let name = format!("{}.{key}", c.id());
        match c
            .t(key)
            .and_then(|want| check_close(&name, got, &want, tol))
        {
            Ok(d) => self.shares.push((name, d.share)),
            Err(e) => self.errs.push(e),
        }
    }
}

/// Leaves with `requires_grad` for the named inputs of a case.
pub fn leaves(c: &Case, names: &[&str]) -> R<Vec<(String, Var)>> {
    names
        .iter()
        .map(|n| Ok((n.to_string(), Var::leaf(c.t(n)?, true))))
        .collect()
}

/// Compares `y`, seeds backward with `gy`, compares the gradient `d<name>` of every leaf.
pub fn finish(
    c: &Case,
    log: &mut Log,
    y: &Var,
    inputs: &[(String, Var)],
    tol_y: Tol,
    tol_grad: impl Fn(&str) -> Tol,
) -> R<()> {
    log.check(c, "y", &y.value(), tol_y);
    y.backward_with(&c.t("gy")?).ctx(c)?;
    for (name, v) in inputs {
        let g = v
            .grad()
            .ok_or_else(|| format!("{}: no gradient reached input {name}", c.id()))?;
        log.check(c, &format!("d{name}"), &g, tol_grad(name));
    }
    Ok(())
}

/// The fixture file `stem` holds exactly the cases `cases`, no tensor outside them, and the
/// reserved metadata (for tests that read their cases by name rather than through `run_fixture`).
pub fn assert_cases_exactly(fx: &Fixture, stem: &str, cases: &[&str]) {
    for key in RESERVED_KEYS {
        assert!(fx.meta.contains_key(key), "{stem}: metadata lacks {key}");
    }
    let mut names = fx.case_names();
    names.sort();
    let mut want: Vec<String> = cases.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "{stem}: unexpected set of cases");
    assert!(fx.orphan_tensors().is_empty(), "{:?}", fx.orphan_tensors());
}

/// Runs every case of the fixture file `stem` through `run_case`; panics listing every failure.
/// Also fails on metadata without the reserved keys, tensors of no case, and anything a case
/// holds that `run_case` did not read.
pub fn run_fixture(stem: &str, run_case: fn(&Case, &mut Log) -> R<()>) {
    let fx = Fixture::load(stem).unwrap_or_else(|e| panic!("{e}"));
    for key in RESERVED_KEYS {
        assert!(fx.meta.contains_key(key), "{stem}: metadata lacks {key}");
    }
    let names = fx.case_names();
    assert!(!names.is_empty(), "{stem}: no cases");
    let mut log = Log::default();
    let orphans = fx.orphan_tensors();
    if !orphans.is_empty() {
        log.errs
            .push(format!("{stem}: tensors of no case: {orphans:?}"));
    }
    let mut failed = Vec::new();
    for name in &names {
        let before = log.errs.len();
        match fx.case(name) {
            Ok(case) => {
                if let Err(e) = run_case(&case, &mut log) {
                    log.errs.push(e);
                }
                let left = case.unconsumed();
                if !left.is_empty() {
                    log.errs
                        .push(format!("{}: not consumed by the test: {left:?}", case.id()));
                }
            }
            Err(e) => log.errs.push(e),
        }
        if log.errs.len() > before {
            failed.push(name.clone());
        }
    }
    let worst = log.shares.iter().fold(
        ("", 0.0f32),
        |w, (n, s)| if *s > w.1 { (n.as_str(), *s) } else { w },
    );
    println!(
        "{stem}: {} cases, {} comparisons passed; largest share of tolerance {:.3} ({})",
        names.len(),
        log.shares.len(),
        worst.1,
        worst.0
    );
    for (n, s) in &log.shares {
        println!("  {n}: {s:.3}");
    }
    if !log.errs.is_empty() {
        panic!(
            "{stem}: {} of {} cases failed: {failed:?}\n{}",
            failed.len(),
            names.len(),
            log.errs.join("\n")
        );
    }
}

/// Whether the CUDA backend can run here, for the `#[ignore]`d GPU tests: without one they print
/// why and skip, unless ENGINE_REQUIRE_GPU=1 (set on the GPU machine), which makes it a failure.
pub fn gpu_ok() -> bool {
    let require = std::env::var("ENGINE_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match engine::backend::cuda_backend_status() {
        Ok(()) => true,
        Err(reason) => {
            assert!(!require, "ENGINE_REQUIRE_GPU=1 but: {reason}");
            println!("no GPU: skipped ({reason})");
            false
        }
    }
}

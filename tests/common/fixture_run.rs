//! Running every case of a fixture file through the autograd API: compare the output, seed the
//! backward with the fixture's gradient, compare each input's gradient, and fail on anything
//! the generator wrote that the test did not read.

use super::compare::{check_close, Tol};
use super::fixture::{Case, Fixture, RESERVED_KEYS};
use super::R;
use engine::{Tensor, Var};

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

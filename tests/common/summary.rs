//! Comparing a tensor with the summary tools/make_model_fixtures.py stores in place of tensors
//! too big to keep whole (gradients, parameters after Adam, spectral-norm vectors):
//! [sum, L2 norm, max |x|, x[i_0], …, x[i_{n−1}]] with n = min(64, len) and
//! i_k = (k·1000003 + 12345) mod len; and the fingerprint of an initial weight:
//! [sum, sum of squares, x[i_0], …, x[i_{n−1}]] with n = min(8, len).
//! Also `Report`: the per-group log of a model test.
#![allow(dead_code)]

use super::{check_close, Case, Tol};
use engine::Tensor;
use std::collections::BTreeMap;

/// Elements kept per summary / per fingerprint (the generator's SUMMARY_N / FINGERPRINT_N).
pub const SUMMARY_N: usize = 64;
pub const FINGERPRINT_N: usize = 8;

/// The flat indices a summary samples, the same formula as the Python generator.
pub fn sample_indices(len: usize, n: usize) -> Vec<usize> {
    (0..n.min(len) as u64)
        .map(|k| ((k * 1_000_003 + 12_345) % len as u64) as usize)
        .collect()
}

/// Tolerance of a summary comparison, scaled by the reference tensor itself: an element passes
/// when |got − want| ≤ rtol·|want| + frac·max|want|; the norm and max when within
/// rtol·norm (resp. rtol·max) + frac·max; the sum when within √len·(rtol·norm + frac·max).
/// Scaling by the tensor's own magnitude keeps one tolerance meaningful for gradients that differ
/// by orders of magnitude between layers. An all-zero reference must be matched exactly.
#[derive(Clone, Copy, Debug)]
pub struct SumTol {
    pub rtol: f64,
    pub frac: f64,
}

/// How close one comparison came: `share` ≤ 1 passes; `err` is the largest error divided by the
/// reference's max |x| (the number to quote when choosing tolerances).
#[derive(Clone, Copy, Debug, Default)]
pub struct Closeness {
    pub share: f64,
    pub err: f64,
}

impl Closeness {
    pub fn max(self, o: Closeness) -> Closeness {
        Closeness {
            share: self.share.max(o.share),
            err: self.err.max(o.err),
        }
    }
}

/// (sum, L2 norm, max |x|) of `got` in f64, and its values.
fn stats(got: &Tensor) -> Result<(f64, f64, f64, Vec<f32>), String> {
    let v = got.to_vec().map_err(|e| e.to_string())?;
    let (mut s, mut q, mut m) = (0.0f64, 0.0f64, 0.0f64);
    for &x in &v {
        let x = f64::from(x);
        s += x;
        q += x * x;
        m = m.max(x.abs());
    }
    Ok((s, q.sqrt(), m, v))
}

/// The values of a stored summary, in f64.
fn values_f64(t: &Tensor) -> Result<Vec<f64>, String> {
    let v = t.to_vec().map_err(|e| e.to_string())?;
    Ok(v.into_iter().map(f64::from).collect())
}

/// One scalar within `allowed`; NaN never passes.
fn scalar(name: &str, what: &str, got: f64, want: f64, allowed: f64) -> Result<f64, String> {
    let err = (got - want).abs();
    if !got.is_finite() || !want.is_finite() {
        return Err(format!(
            "{name}: {what} is {got}, reference {want} (not finite)"
        ));
    }
    let share = if err == 0.0 {
        0.0
    } else if allowed > 0.0 {
        err / allowed
    } else {
        f64::INFINITY
    };
    if share > 1.0 {
        return Err(format!(
            "{name}: {what} {got:.9e}, reference {want:.9e}: error {err:.3e} > allowed {allowed:.3e}"
        ));
    }
    Ok(share)
}

/// Compares `got` with the stored summary `want` under `tol`.
pub fn check_summary(
    name: &str,
    got: &Tensor,
    want: &Tensor,
    tol: SumTol,
) -> Result<Closeness, String> {
    check_summary_scaled(name, got, want, tol, 0.0)
}

/// `check_summary` with the absolute part of the tolerance taken from max(max |want|, `scale`):
/// for a tensor that is 0 in exact arithmetic, whose f32 value is noise on the scale of a
/// neighbouring tensor.
pub fn check_summary_scaled(
    name: &str,
    got: &Tensor,
    want: &Tensor,
    tol: SumTol,
    scale: f64,
) -> Result<Closeness, String> {
    let w = values_f64(want)?;
    let (s, norm, max, vals) = stats(got)?;
    let idx = sample_indices(vals.len(), SUMMARY_N);
    if w.len() != 3 + idx.len() {
        return Err(format!(
            "{name}: summary of {} values for a tensor of {} elements {:?} (shape changed?)",
            w.len(),
            vals.len(),
            got.dims()
        ));
    }
    let (ws, wn, wm) = (w[0], w[1], w[2]);
    let root = (vals.len() as f64).sqrt();
    let scale = wm.max(scale);
    let floor = tol.frac * scale;
    let mut share = scalar(name, "sum", s, ws, root * (tol.rtol * wn + floor))?;
    share = share.max(scalar(name, "L2 norm", norm, wn, tol.rtol * wn + floor)?);
    share = share.max(scalar(name, "max |x|", max, wm, tol.rtol * wm + floor)?);
    let mut worst = (norm - wn).abs().max((max - wm).abs());
    for (k, (&i, &want_i)) in idx.iter().zip(&w[3..]).enumerate() {
        let got_i = f64::from(vals[i]);
        let what = format!("element {i} (sample {k})");
        share = share.max(scalar(
            name,
            &what,
            got_i,
            want_i,
            tol.rtol * want_i.abs() + floor,
        )?);
        worst = worst.max((got_i - want_i).abs());
    }
    Ok(Closeness {
        share,
        err: if scale > 0.0 { worst / scale } else { worst },
    })
}

/// Whether `t` still has the fingerprint `fp` the fixture was made from: the sampled elements
/// bit-exact, sum and sum of squares to f64 rounding of an f32 accumulation.
pub fn check_fingerprint(name: &str, t: &Tensor, fp: &Tensor) -> Result<(), String> {
    let fp = fp.to_vec().map_err(|e| e.to_string())?;
    let (s, norm, _, vals) = stats(t)?;
    let idx = sample_indices(vals.len(), FINGERPRINT_N);
    if fp.len() != 2 + idx.len() {
        return Err(format!(
            "{name}: fingerprint of {} values for {} elements",
            fp.len(),
            vals.len()
        ));
    }
    let q = norm * norm;
    let close = |a: f64, b: f32, scale: f64| (a - f64::from(b)).abs() <= 1e-6 * scale + 1e-30;
    let abs_sum: f64 = vals.iter().map(|x| f64::from(x.abs())).sum();
    let elems_ok = idx.iter().zip(&fp[2..]).all(|(&i, &e)| vals[i] == e);
    if !close(s, fp[0], abs_sum) || !close(q, fp[1], q) || !elems_ok {
        return Err(format!(
            "{name}: initial value differs from the fixture's (sum {s} vs {}, sum of squares {q} vs {})",
            fp[0], fp[1]
        ));
    }
    Ok(())
}

/// Tolerance of a parameter update Δ = p_after − p_init after `steps` Adam steps at rate `lr`.
/// Adam divides each gradient element by its own running magnitude, so an element whose gradient
/// is near 0 (or below eps) turns a tiny gradient error into a visible update error, and over
/// several steps the f32 and f64 trajectories drift apart (PyTorch's own float32 run drifts from
/// its float64 run by as much). So: every sampled element within `atol_lr`·lr + 1e-3·|Δ|, except
/// at most `outliers` samples, which must stay within `hard_lr`·lr; ‖Δ‖ within `norm_rtol`; the
/// sum within `norm_rtol`·√len·‖Δ‖.
#[derive(Clone, Copy, Debug)]
pub struct StepTol {
    pub lr: f64,
    pub atol_lr: f64,
    pub outliers: usize,
    pub hard_lr: f64,
    pub norm_rtol: f64,
}

/// Compares Δ = `after` − `init` with the stored summary of the reference's Δ. `err` of the
/// result is the largest sampled element error in units of lr.
pub fn check_update(
    name: &str,
    after: &Tensor,
    init: &Tensor,
    want: &Tensor,
    tol: StepTol,
) -> Result<Closeness, String> {
    let a = after.to_vec().map_err(|e| e.to_string())?;
    let i = init.to_vec().map_err(|e| e.to_string())?;
    let delta: Vec<f32> = a.iter().zip(&i).map(|(x, y)| x - y).collect();
    let delta = Tensor::from_vec(delta, after.dims().to_vec()).map_err(|e| e.to_string())?;
    let w = values_f64(want)?;
    let (s, norm, _, vals) = stats(&delta)?;
    let idx = sample_indices(vals.len(), SUMMARY_N);
    if w.len() != 3 + idx.len() {
        return Err(format!(
            "{name}: summary of {} values for {} elements",
            w.len(),
            vals.len()
        ));
    }
    let (ws, wn) = (w[0], w[1]);
    let floor = tol.atol_lr * tol.lr;
    let root = (vals.len() as f64).sqrt();
    // Where outliers are allowed, one element whose gradient is near 0 may take Adam's step the
    // other way (2 lr): the sum and the norm must allow for that too (without it a second f32
    // trajectory, the CUDA backend's, failed a 16-element bias's sum by 4% with no outlier).
    let flip = if tol.outliers > 0 { 2.0 * tol.lr } else { 0.0 };
    let mut share = scalar(
        name,
        "sum of the update",
        s,
        ws,
        tol.norm_rtol * root * wn + floor + flip,
    )?;
    share = share.max(scalar(
        name,
        "norm of the update",
        norm,
        wn,
        tol.norm_rtol * wn + floor + flip,
    )?);
    let (mut outliers, mut worst) = (Vec::new(), 0.0f64);
    for (&k, &want_k) in idx.iter().zip(&w[3..]) {
        let got_k = f64::from(vals[k]);
        let err = (got_k - want_k).abs();
        if !got_k.is_finite() {
            return Err(format!("{name}: update element {k} is {got_k}"));
        }
        worst = worst.max(err / tol.lr);
        let allowed = floor + 1e-3 * want_k.abs();
        if err > allowed {
            outliers.push(format!("{k}: {got_k:.4e} vs {want_k:.4e}"));
            if err > tol.hard_lr * tol.lr {
                return Err(format!(
                    "{name}: update element {k} {got_k:.6e}, reference {want_k:.6e}: error {:.3} lr > {} lr",
                    err / tol.lr,
                    tol.hard_lr
                ));
            }
        } else if allowed > 0.0 {
            share = share.max(err / allowed);
        }
    }
    if outliers.len() > tol.outliers {
        return Err(format!(
            "{name}: {} sampled update elements off by more than {} lr (at most {} allowed): {}",
            outliers.len(),
            tol.atol_lr,
            tol.outliers,
            outliers.join(", ")
        ));
    }
    Ok(Closeness { share, err: worst })
}

/// Per group of comparisons: the closest call and how many passed; failures are collected.
#[derive(Default)]
pub struct Report {
    pub groups: BTreeMap<&'static str, (Closeness, usize, String)>,
    pub errs: Vec<String>,
}

impl Report {
    pub fn record(&mut self, group: &'static str, name: &str, r: Result<Closeness, String>) {
        match r {
            Ok(c) => {
                let g = self.groups.entry(group).or_default();
                if c.share >= g.0.share {
                    g.2 = name.to_string();
                }
                g.0 = g.0.max(c);
                g.1 += 1;
            }
            Err(e) => self.errs.push(format!("[{group}] {e}")),
        }
    }

    /// A full tensor against the case's `key`.
    pub fn full(&mut self, group: &'static str, c: &Case, key: &str, got: &Tensor, tol: Tol) {
        let r = c.t(key).and_then(|want| {
            let d = check_close(&format!("{}.{key}", c.id()), got, &want, tol)?;
            let scale = want
                .to_vec()
                .map_err(|e| e.to_string())?
                .iter()
                .fold(0.0f32, |m, x| m.max(x.abs()));
            Ok(Closeness {
                share: f64::from(d.share),
                err: f64::from(d.max_abs / scale.max(f32::MIN_POSITIVE)),
            })
        });
        self.record(group, key, r);
    }

    /// A tensor against the stored summary `key`.
    pub fn summary(&mut self, group: &'static str, c: &Case, key: &str, got: &Tensor, tol: SumTol) {
        let r = c
            .t(key)
            .and_then(|want| check_summary(&format!("{}.{key}", c.id()), got, &want, tol));
        self.record(group, key, r);
    }

    pub fn finish(self, what: &str, c: &Case) {
        println!("{what}: per group, largest share of the tolerance and largest error / max|ref|");
        for (g, (cl, n, worst)) in &self.groups {
            println!(
                "  {g:<12} {n:>4} tensors  share {:.3}  err {:.2e}  (closest: {worst})",
                cl.share, cl.err
            );
        }
        let mut errs = self.errs;
        let left = c.unconsumed();
        if !left.is_empty() {
            errs.push(format!("{}: not consumed by the test: {left:?}", c.id()));
        }
        assert!(
            errs.is_empty(),
            "{what}: {} failures\n{}",
            errs.len(),
            errs.join("\n")
        );
    }
}

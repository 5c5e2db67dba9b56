//! Comparing tensors with a named, explicit tolerance; NaN and Inf never pass.

use engine::Tensor;

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

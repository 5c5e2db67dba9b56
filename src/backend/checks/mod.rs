//! The shape and argument checks of every primitive, shared by both backends: each takes shapes
//! (and the op's parameters), returns the typed error the op reports (naming the op and the
//! shapes) or the layout the op derives from them (conv geometry, norm layout, matmul batch
//! layout, broadcast strides, ...), and touches no data, so a backend runs it before it reads,
//! allocates or launches anything.

use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

mod image;
pub(crate) use image::*;

/// `d` as four dims, or a shape error naming `what` was expected.
pub(crate) fn dims4(op: &'static str, d: &[usize], what: &str) -> Result<[usize; 4]> {
    d.try_into()
        .map_err(|_| Error::shape(op, format!("expected {what}, got {d:?}")))
}

/// The four dims of an NCHW tensor.
pub(crate) fn nchw(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    dims4(op, x.dims(), "an NCHW tensor")
}

/// Errors unless `a` and `b` have the same shape.
pub(crate) fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() == b.dims() {
        return Ok(());
    }
    let detail = format!("{:?} vs {:?}", a.shape(), b.shape());
    Err(Error::shape(op, detail))
}

/// Output dims and source strides of a permute.
pub(crate) fn permute(x: &Tensor, dims: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
    let rank = x.rank();
    let mut seen = vec![false; rank];
    let ok = dims.len() == rank
        && dims
            .iter()
            .all(|&d| d < rank && !std::mem::replace(&mut seen[d], true));
    if !ok {
        let detail = format!(
            "{dims:?} is not a permutation of the axes of {:?}",
            x.shape()
        );
        return Err(Error::invalid("permute", detail));
    }
    let st = x.shape().strides();
    Ok((
        dims.iter().map(|&d| x.dims()[d]).collect(),
        dims.iter().map(|&d| st[d]).collect(),
    ))
}

/// (dims, strides, offset) of a narrow.
pub(crate) fn narrow(
    x: &Tensor,
    axis: usize,
    start: usize,
    len: usize,
) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let axis = x.shape().axis("narrow", axis)?;
    if start
        .checked_add(len)
        .is_none_or(|end| end > x.dims()[axis])
    {
        let detail = format!(
            "start {start} + len {len} exceeds dim {axis} of {:?}",
            x.shape()
        );
        return Err(Error::invalid("narrow", detail));
    }
    let st = x.shape().strides();
    let mut dims = x.dims().to_vec();
    dims[axis] = len;
    Ok((dims, st.clone(), start * st[axis]))
}

/// (output dims, outer, inner) of a concat along `axis`.
pub(crate) fn concat(xs: &[&Tensor], axis: usize) -> Result<(Vec<usize>, usize, usize, usize)> {
    let first = xs
        .first()
        .ok_or_else(|| Error::invalid("concat", "no tensors"))?;
    let axis = first.shape().axis("concat", axis)?;
    let mut total = 0;
    for x in xs {
        let fits = x.rank() == first.rank()
            && x.dims()
                .iter()
                .zip(first.dims())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !fits {
            let detail = format!("{:?} vs {:?} along axis {axis}", first.shape(), x.shape());
            return Err(Error::shape("concat", detail));
        }
        total += x.dims()[axis];
    }
    let mut dims = first.dims().to_vec();
    dims[axis] = total;
    let outer = first.dims()[..axis].iter().product();
    let inner = first.dims()[axis + 1..].iter().product();
    Ok((dims, axis, outer, inner))
}

/// Strides reading dims `from` as dims `to` (NumPy broadcasting, 0 on repeated dims).
pub(crate) fn broadcast_strides(
    op: &'static str,
    from: &[usize],
    to: &[usize],
) -> Result<Vec<usize>> {
    let err = || Error::shape(op, format!("cannot broadcast {from:?} to {to:?}"));
    if from.len() > to.len() {
        return Err(err());
    }
    let lead = to.len() - from.len();
    let src = Shape::new(from).strides();
    let mut out = vec![0; to.len()];
    for (i, (&f, &s)) in from.iter().zip(&src).enumerate() {
        match (f, to[lead + i]) {
            (f, t) if f == t => out[lead + i] = if f == 1 { 0 } else { s },
            (1, _) => {}
            _ => return Err(err()),
        }
    }
    Ok(out)
}

/// The axes of x that `sum_to(x, shape)` reduces.
pub(crate) fn sum_to_mask(x: &Tensor, shape: &[usize]) -> Result<Vec<bool>> {
    let xd = x.dims();
    let detail = || format!("{shape:?} does not broadcast to {:?}", x.shape());
    let err = || Error::shape("sum_to", detail());
    if shape.len() > xd.len() {
        return Err(err());
    }
    let lead = xd.len() - shape.len();
    let mut mask = vec![true; xd.len()];
    for (i, &s) in shape.iter().enumerate() {
        match (s, xd[lead + i]) {
            (s, d) if s == d => mask[lead + i] = false,
            (1, _) => {}
            _ => return Err(err()),
        }
    }
    Ok(mask)
}

/// Flags of the reduced axes: empty `axes` means all; duplicates and out-of-range are errors.
pub(crate) fn axis_mask(op: &'static str, x: &Tensor, axes: &[usize]) -> Result<Vec<bool>> {
    if axes.is_empty() {
        return Ok(vec![true; x.rank()]);
    }
    let mut mask = vec![false; x.rank()];
    for &a in axes {
        let a = x.shape().axis(op, a)?;
        if std::mem::replace(&mut mask[a], true) {
            let detail = format!("axis {a} listed twice in {axes:?}");
            return Err(Error::invalid(op, detail));
        }
    }
    Ok(mask)
}

/// The dims of a reduction over `mask` with `keepdim`: reduced axes become 1.
pub(crate) fn keepdim_dims(dims: &[usize], mask: &[bool]) -> Vec<usize> {
    dims.iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect()
}

/// The dims of a reduction over `mask`: reduced axes become 1 (`keepdim`) or are dropped.
pub(crate) fn reduced_dims(dims: &[usize], mask: &[bool], keepdim: bool) -> Vec<usize> {
    if keepdim {
        return keepdim_dims(dims, mask);
    }
    let kept = dims.iter().zip(mask).filter(|(_, &m)| !m);
    kept.map(|(&d, _)| d).collect()
}

/// (reduced-axis mask, keepdim dims) of a max backward, y and dy checked against them.
pub(crate) fn max_backward(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    axes: &[usize],
) -> Result<(Vec<bool>, Vec<usize>)> {
    const OP: &str = "reduce_max_backward";
    let mask = axis_mask(OP, x, axes)?;
    let kd = keepdim_dims(x.dims(), &mask);
    if y.dims() != kd || dy.dims() != kd {
        let detail = format!(
            "x {:?} over axes {axes:?} needs y and dy of {kd:?}, got {:?} and {:?}",
            x.shape(),
            y.shape(),
            dy.shape()
        );
        return Err(Error::shape(OP, detail));
    }
    Ok((mask, kd))
}

/// (slopes, elements per (n, c) row) of PReLU: one slope, or C = dim 1 of x.
pub(crate) fn prelu_layout(op: &'static str, x: &Tensor, alpha: &Tensor) -> Result<(usize, usize)> {
    if alpha.numel() == 1 {
        return Ok((1, 1));
    }
    match x.dims() {
        [_, c, rest @ ..] if *c == alpha.numel() => Ok((*c, rest.iter().product())),
        _ => {
            let (a, x) = (alpha.shape(), x.shape());
            let detail = format!("alpha {a:?} must have 1 element or C = dim 1 of x {x:?}");
            Err(Error::shape(op, detail))
        }
    }
}

/// The output's batch dims and (m, k, n) of a matmul.
pub(crate) fn matmul(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
) -> Result<(Vec<usize>, [usize; 3])> {
    let err = |why: &str| {
        let (sa, sb) = (a.shape(), b.shape());
        Error::shape(
            "matmul",
            format!("{sa:?} x {sb:?} (trans_a {ta}, trans_b {tb}): {why}"),
        )
    };
    let (ad, bd) = (a.dims(), b.dims());
    let (ra, rb) = (ad.len(), bd.len());
    if ra < 2 || rb < 2 {
        return Err(err("both operands need rank >= 2"));
    }
    // (rows, cols) of op(X) from X's last two dims.
    let op_dims = |d: &[usize], t: bool| {
        let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
        if t {
            (c, r)
        } else {
            (r, c)
        }
    };
    let ((m, k), (kb, n)) = (op_dims(ad, ta), op_dims(bd, tb));
    if k != kb {
        return Err(err(&format!("inner dims {k} vs {kb}")));
    }
    let (ba, bb) = (&ad[..ra - 2], &bd[..rb - 2]);
    match () {
        _ if ba == bb || rb == 2 => Ok((ba.to_vec(), [m, k, n])),
        _ if ra == 2 => Ok((bb.to_vec(), [m, k, n])),
        _ => Err(err("batch dims differ (only a rank-2 operand broadcasts)")),
    }
}

/// Errors unless a loss's operands match and are non-empty (their mean is taken).
pub(crate) fn loss(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    same_shape(op, a, b)?;
    if a.numel() == 0 {
        let detail = format!("the mean of an empty tensor {:?}", a.shape());
        return Err(Error::invalid(op, detail));
    }
    Ok(())
}

/// Errors unless param, grad and the moments match and the step and betas are valid.
pub(crate) fn adam(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    p: &AdamParams,
) -> Result<()> {
    const OP: &str = "adam_step";
    same_shape(OP, param, grad)?;
    same_shape(OP, param, m)?;
    same_shape(OP, param, v)?;
    if p.step == 0 {
        return Err(Error::invalid(OP, "step is 1-based, got 0"));
    }
    if !(0.0..1.0).contains(&p.beta1) || !(0.0..1.0).contains(&p.beta2) {
        let detail = format!("betas must lie in [0, 1), got {} and {}", p.beta1, p.beta2);
        return Err(Error::invalid(OP, detail));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

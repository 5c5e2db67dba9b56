//! The shape and argument checks of every primitive, shared by both backends: each takes shapes
//! (and the op's parameters), returns the typed error the op reports (naming the op and the
//! shapes) or the layout the op derives from them (conv geometry, norm layout, matmul batch
//! layout, broadcast strides, ...), and touches no data, so a backend runs it before it reads,
//! allocates or launches anything.

use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

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

/// Checked conv shapes: x [N, C_in, H, W], w [C_out, C_in/groups, kH, kW], output oh × ow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    pub fn out(&self) -> [usize; 4] {
        [self.x[0], self.w[0], self.oh, self.ow]
    }
}

/// Checks x dims [N, C_in, H, W] against w dims [C_out, C_in/groups, kH, kW] and `p`.
pub(crate) fn conv(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    p: Conv2dParams,
) -> Result<ConvGeom> {
    let [_, c_in, h, wd] = dims4(op, x, "input [N, C_in, H, W]")?;
    let wk = dims4(op, w, "weights [C_out, C_in/groups, kH, kW]")?;
    let [c_out, cg, kh, kw] = wk;
    let g = p.groups;
    if g == 0 || c_out % g != 0 || cg * g != c_in {
        let detail = format!("input {x:?}, weights {w:?} and groups {g} disagree");
        return Err(Error::shape(op, detail));
    }
    let zero = kh == 0 || kw == 0 || p.stride.0 == 0 || p.stride.1 == 0;
    if zero || p.dilation.0 == 0 || p.dilation.1 == 0 {
        let detail = format!("kernel {kh}x{kw}, stride and dilation must be positive: {p:?}");
        return Err(Error::invalid(op, detail));
    }
    if h == 0 || wd == 0 {
        return Err(Error::shape(op, format!("empty {h}x{wd} input planes")));
    }
    if p.pad_mode == PadMode::Reflect && (p.padding.0 >= h || p.padding.1 >= wd) {
        let detail = format!("reflect padding {:?} must be < input {h}x{wd}", p.padding);
        return Err(Error::invalid(op, detail));
    }
    let fit = || Error::shape(op, format!("kernel {w:?}, {p:?}: too big for {x:?}"));
    let (oh, ow) = p.out_size(h, wd, kh, kw).ok_or_else(fit)?;
    Ok(ConvGeom {
        x: dims4(op, x, "")?,
        w: wk,
        oh,
        ow,
    })
}

/// Errors unless the optional bias is [C_out].
pub(crate) fn conv_bias(op: &'static str, g: &ConvGeom, bias: Option<&Tensor>) -> Result<()> {
    match bias {
        Some(b) if b.dims() != [g.w[0]] => {
            let detail = format!("bias {:?} for {} output channels", b.shape(), g.w[0]);
            Err(Error::shape(op, detail))
        }
        _ => Ok(()),
    }
}

/// Errors unless `dy` has the conv's output shape.
pub(crate) fn conv_dy(op: &'static str, g: &ConvGeom, dy: &Tensor) -> Result<()> {
    if dy.dims() == g.out() {
        return Ok(());
    }
    let detail = format!("dy {:?} but the conv gives {:?}", dy.shape(), g.out());
    Err(Error::shape(op, detail))
}

/// Output size of pooling `h × w` planes.
pub(crate) fn pool(
    op: &'static str,
    h: usize,
    w: usize,
    p: Pool2dParams,
) -> Result<(usize, usize)> {
    if h == 0 || w == 0 {
        return Err(Error::shape(op, format!("empty {h}x{w} input planes")));
    }
    if p.padding.0 > p.kernel.0 / 2 || p.padding.1 > p.kernel.1 / 2 {
        let detail = format!(
            "padding {:?} exceeds half the kernel {:?}",
            p.padding, p.kernel
        );
        return Err(Error::invalid(op, detail));
    }
    p.out_size(h, w)
        .ok_or_else(|| Error::shape(op, format!("window {p:?} does not fit an input of {h}x{w}")))
}

/// x shape and pooled size of a pooling backward, dy checked against them.
pub(crate) fn pool_backward(
    op: &'static str,
    dy: &Tensor,
    x_shape: &[usize],
    p: Pool2dParams,
) -> Result<([usize; 4], (usize, usize))> {
    let [n, c, h, w] = dims4(op, x_shape, "an NCHW input shape")?;
    let (oh, ow) = pool(op, h, w, p)?;
    if dy.dims() != [n, c, oh, ow] {
        let detail = format!(
            "dy {:?} for input {x_shape:?} pooled to {oh}x{ow}",
            dy.shape()
        );
        return Err(Error::shape(op, detail));
    }
    Ok(([n, c, h, w], (oh, ow)))
}

/// Errors on empty input or output planes.
pub(crate) fn resize(
    op: &'static str,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<()> {
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        let detail = format!("cannot resize {h}x{w} to {oh}x{ow}: empty planes");
        return Err(Error::shape(op, detail));
    }
    Ok(())
}

/// x shape and dy's spatial size of a resize backward.
pub(crate) fn resize_backward(
    dy: &Tensor,
    x_shape: &[usize],
) -> Result<([usize; 4], (usize, usize))> {
    let op = "resize2d_backward";
    let [n, c, h, w] = dims4(op, x_shape, "an NCHW input shape")?;
    let [dn, dc, oh, ow] = dims4(op, dy.dims(), "an NCHW tensor")?;
    if (dn, dc) != (n, c) {
        let detail = format!("dy {:?} vs input {x_shape:?}", dy.shape());
        return Err(Error::shape(op, detail));
    }
    resize(op, (h, w), (oh, ow))?;
    Ok(([n, c, h, w], (oh, ow)))
}

/// Checks an unfold window and returns the positions (oh, ow) over an `h × w` input.
pub(crate) fn unfold(
    op: &'static str,
    h: usize,
    w: usize,
    p: UnfoldParams,
) -> Result<(usize, usize)> {
    let zero = p.kernel.0 == 0 || p.kernel.1 == 0 || p.stride.0 == 0 || p.stride.1 == 0;
    if zero || p.dilation.0 == 0 || p.dilation.1 == 0 {
        let detail = format!("kernel, stride and dilation must be positive: {p:?}");
        return Err(Error::invalid(op, detail));
    }
    if h == 0 || w == 0 {
        return Err(Error::shape(op, format!("empty {h}x{w} input planes")));
    }
    let cp = Conv2dParams {
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        ..Default::default()
    };
    cp.out_size(h, w, p.kernel.0, p.kernel.1)
        .ok_or_else(|| Error::shape(op, format!("window {p:?} does not fit an input of {h}x{w}")))
}

/// [n, c, h, w] and positions of a fold of `cols` into `out_hw`.
pub(crate) fn fold(
    cols: &Tensor,
    (h, w): (usize, usize),
    p: UnfoldParams,
) -> Result<([usize; 4], (usize, usize))> {
    let rank3 = |_| {
        let detail = format!("expected [N, C·kH·kW, L], got {:?}", cols.shape());
        Error::shape("fold", detail)
    };
    let [n, ckk, l]: [usize; 3] = cols.dims().try_into().map_err(rank3)?;
    let o = unfold("fold", h, w, p)?;
    let (kk, lo) = (p.kernel.0 * p.kernel.1, o.0 * o.1);
    if ckk % kk != 0 || l != lo {
        let detail = format!(
            "cols {:?} do not match a {kk}-element window with {lo} positions over {h}x{w}",
            cols.shape()
        );
        return Err(Error::shape("fold", detail));
    }
    Ok(([n, ckk / kk, h, w], o))
}

/// Where a normalisation reduces: x as (n, c, hw) and the statistics' dims.
#[derive(Clone, Debug)]
pub(crate) struct NormLayout {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub stats_dims: Vec<usize>,
}

/// Checks x for a normalisation of `kind` and returns where it reduces.
pub(crate) fn norm(op: &'static str, x: &Tensor, kind: SpadeNorm) -> Result<NormLayout> {
    let d = x.dims();
    let (l, red, ddof) = match kind {
        SpadeNorm::Pono => {
            let [n, c, h, w] = dims4(op, d, "an NCHW tensor")?;
            let l = NormLayout {
                n,
                c,
                hw: h * w,
                stats_dims: vec![n, 1, h, w],
            };
            (l, c, 1)
        }
        SpadeNorm::Instance if d.len() >= 3 => {
            let hw = d[2..].iter().product();
            let l = NormLayout {
                n: d[0],
                c: d[1],
                hw,
                stats_dims: vec![d[0], d[1]],
            };
            (l, hw, 0)
        }
        SpadeNorm::Instance => {
            let msg = format!(
                "expected [N, C, spatial..] (rank >= 3), got {:?}",
                x.shape()
            );
            return Err(Error::shape(op, msg));
        }
    };
    if red <= ddof {
        let msg = format!(
            "{red} values per statistic is too few, shape {:?}",
            x.shape()
        );
        return Err(Error::invalid(op, msg));
    }
    Ok(l)
}

/// Errors unless a normalisation's eps is finite and >= 0.
pub(crate) fn eps(op: &'static str, eps: f32) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        return Ok(());
    }
    let detail = format!("eps must be finite and >= 0, got {eps}");
    Err(Error::invalid(op, detail))
}

/// Errors unless an optional per-channel parameter is [c].
pub(crate) fn channel_param(op: &'static str, t: Option<&Tensor>, c: usize) -> Result<()> {
    match t {
        Some(t) if t.dims() != [c] => {
            let detail = format!("weight and bias must be [{c}], got {:?}", t.shape());
            Err(Error::shape(op, detail))
        }
        _ => Ok(()),
    }
}

/// A normalisation backward's layout, with dy and the statistics checked against x.
pub(crate) fn norm_saved(
    op: &'static str,
    kind: SpadeNorm,
    x: &Tensor,
    st: &NormStats,
    dy: &Tensor,
) -> Result<NormLayout> {
    let l = norm(op, x, kind)?;
    same_shape(op, x, dy)?;
    for (name, t) in [("mean", &st.mean), ("rstd", &st.rstd)] {
        if t.dims() != l.stats_dims.as_slice() {
            let msg = format!(
                "stats.{name} must be {:?}, got {:?}",
                l.stats_dims,
                t.shape()
            );
            return Err(Error::shape(op, msg));
        }
    }
    Ok(l)
}

/// [b, c, n, m, v] of a corr_warp.
pub(crate) fn corr_warp(
    op: &'static str,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: CorrWarpParams,
) -> Result<[usize; 5]> {
    let what = || {
        format!(
            "q [B,C,N] {:?}, k [B,C,M] {:?}, v [B,M,V] {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        )
    };
    let d3 = |t: &Tensor| <[usize; 3]>::try_from(t.dims()).ok();
    let (Some([b, c, n]), Some([kb, kc, m]), Some([vb, vm, vv])) = (d3(q), d3(k), d3(v)) else {
        let detail = format!("expected rank-3 tensors: {}", what());
        return Err(Error::shape(op, detail));
    };
    if kb != b || vb != b || kc != c || vm != m {
        return Err(Error::shape(op, format!("sizes disagree: {}", what())));
    }
    if c == 0 || m == 0 || vv == 0 {
        let detail = format!("C, M and V must be non-zero: {}", what());
        return Err(Error::invalid(op, detail));
    }
    if !p.scale.is_finite() || (p.normalize && !(p.eps.is_finite() && p.eps >= 0.0)) {
        let detail = format!("scale must be finite and eps >= 0, got {p:?}");
        return Err(Error::invalid(op, detail));
    }
    Ok([b, c, n, m, vv])
}

/// Errors unless `dout` is [B, N, V] for a corr_warp of dims `[b, c, n, m, v]`.
pub(crate) fn corr_warp_dout(op: &'static str, d: [usize; 5], dout: &Tensor) -> Result<()> {
    let [b, _, n, _, v] = d;
    if dout.dims() == [b, n, v] {
        return Ok(());
    }
    let msg = format!(
        "dout must be [B,N,V] = {:?}, got {:?}",
        [b, n, v],
        dout.shape()
    );
    Err(Error::shape(op, msg))
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
#[path = "checks_tests.rs"]
mod tests;

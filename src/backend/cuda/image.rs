//! The CUDA backend's image ops: conv, pooling, resizing, unfold / fold, normalisation,
//! softmax and corr_warp.

use super::backend::{dev, gpu, produce, zeros};
use super::launch::{self, ConvPath, CorrDims, StatsRef};
use super::params::{ConvArgs, MatmulArgs};
use super::pool::DeviceBuf;
use crate::backend::checks;
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

/// The kernels' ConvArgs for checked shapes.
fn conv_args(
    g: &checks::ConvGeom,
    p: &Conv2dParams,
    has_bias: bool,
    op: &'static str,
) -> Result<ConvArgs> {
    launch::conv_args(g.x, g.w, p, has_bias).ok_or_else(|| Error::shape(op, "empty conv output"))
}

/// Depthwise / channel-free groups go to the direct kernels (as the launchers decide too).
fn conv_path(g: &checks::ConvGeom) -> ConvPath {
    if g.w[1] == 0 {
        ConvPath::Direct
    } else {
        ConvPath::Auto
    }
}

pub(super) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: Conv2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let g = checks::conv(OP, x.dims(), w.dims(), p)?;
    checks::conv_bias(OP, &g, bias)?;
    let (xs, ws) = (dev(OP, x)?, dev(OP, w)?);
    let bs = bias.map(|b| dev(OP, b)).transpose()?;
    if numel(&g.out()) == 0 {
        return zeros(&g.out());
    }
    let a = conv_args(&g, &p, bs.is_some(), OP)?;
    produce(g.out().to_vec(), |gp, y| {
        launch::conv_forward(gp, &a, conv_path(&g), precision(), xs, ws, bs, y)
    })
}

pub(super) fn conv2d_backward_input(
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    p: Conv2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_input";
    let g = checks::conv(OP, x_shape, w.dims(), p)?;
    checks::conv_dy(OP, &g, dy)?;
    let (gs, ws) = (dev(OP, dy)?, dev(OP, w)?);
    if numel(&g.out()) == 0 || numel(x_shape) == 0 {
        return zeros(x_shape);
    }
    let a = conv_args(&g, &p, false, OP)?;
    produce(x_shape.to_vec(), |gp, dx| {
        launch::conv_backward_input(gp, &a, conv_path(&g), precision(), gs, ws, dx)
    })
}

pub(super) fn conv2d_backward_weight(
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    p: Conv2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let g = checks::conv(OP, x.dims(), w_shape, p)?;
    checks::conv_dy(OP, &g, dy)?;
    let (xs, gs) = (dev(OP, x)?, dev(OP, dy)?);
    if numel(&g.out()) == 0 || numel(w_shape) == 0 {
        return zeros(w_shape);
    }
    let a = conv_args(&g, &p, false, OP)?;
    produce(w_shape.to_vec(), |gp, dw| {
        launch::conv_backward_weight(gp, &a, conv_path(&g), precision(), xs, gs, dw)
    })
}

pub(super) fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_bias";
    let [n, c, h, w] = checks::dims4(OP, dy.dims(), "an NCHW tensor")?;
    let gs = dev(OP, dy)?;
    if n * h * w == 0 {
        return zeros(&[c]);
    }
    let a = ConvArgs {
        n: n as i64,
        c_out: c as i64,
        oh: h as i64,
        ow: w as i64,
        ..Default::default()
    };
    produce(vec![c], |gp, db| launch::conv_backward_bias(gp, &a, gs, db))
}

/// avg_pool2d or max_pool2d (by `op`).
pub(super) fn pool2d(op: &'static str, x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    let [n, c, h, w] = checks::dims4(op, x.dims(), "an NCHW tensor")?;
    let (oh, ow) = checks::pool(op, h, w, p)?;
    let xs = dev(op, x)?;
    let a = launch::pool_args(n * c, (h, w), (oh, ow), &p);
    produce(vec![n, c, oh, ow], |g, y| match op {
        "max_pool2d" => launch::max_pool_forward(g, &a, xs, y),
        _ => launch::avg_pool_forward(g, &a, xs, y),
    })
}

pub(super) fn avg_pool2d_backward(
    dy: &Tensor,
    x_shape: &[usize],
    p: Pool2dParams,
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let ([n, c, h, w], o) = checks::pool_backward(OP, dy, x_shape, p)?;
    let gs = dev(OP, dy)?;
    let a = launch::pool_args(n * c, (h, w), o, &p);
    produce(x_shape.to_vec(), |g, dx| {
        launch::avg_pool_backward(g, &a, gs, dx)
    })
}

pub(super) fn max_pool2d_backward(x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let ([n, c, h, w], o) = checks::pool_backward(OP, dy, x.dims(), p)?;
    let (xs, gs) = (dev(OP, x)?, dev(OP, dy)?);
    let a = launch::pool_args(n * c, (h, w), o, &p);
    produce(x.dims().to_vec(), |g, dx| {
        launch::max_pool_backward(g, &a, xs, gs, dx)
    })
}

pub(super) fn resize2d(x: &Tensor, out_hw: (usize, usize), mode: ResizeMode) -> Result<Tensor> {
    const OP: &str = "resize2d";
    let [n, c, h, w] = checks::dims4(OP, x.dims(), "an NCHW tensor")?;
    checks::resize(OP, (h, w), out_hw)?;
    let xs = dev(OP, x)?;
    let a = launch::resize_args(n * c, (h, w), out_hw, mode);
    produce(vec![n, c, out_hw.0, out_hw.1], |g, y| {
        launch::resize_forward(g, &a, xs, y)
    })
}

pub(super) fn resize2d_backward(
    dy: &Tensor,
    x_shape: &[usize],
    mode: ResizeMode,
) -> Result<Tensor> {
    const OP: &str = "resize2d_backward";
    let ([n, c, h, w], o) = checks::resize_backward(dy, x_shape)?;
    let gs = dev(OP, dy)?;
    let a = launch::resize_args(n * c, (h, w), o, mode);
    produce(x_shape.to_vec(), |g, dx| {
        launch::resize_backward(g, &a, gs, dx)
    })
}

pub(super) fn unfold(x: &Tensor, p: UnfoldParams) -> Result<Tensor> {
    let d = checks::dims4("unfold", x.dims(), "an NCHW tensor")?;
    let o = checks::unfold("unfold", d[2], d[3], p)?;
    let xs = dev("unfold", x)?;
    let a = launch::unfold_args(d, o, &p);
    let dims = vec![d[0], d[1] * p.kernel.0 * p.kernel.1, o.0 * o.1];
    produce(dims, |g, cols| launch::unfold(g, &a, xs, cols))
}

pub(super) fn fold(cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor> {
    let (d, o) = checks::fold(cols, out_hw, p)?;
    let cs = dev("fold", cols)?;
    let a = launch::unfold_args(d, o, &p);
    produce(d.to_vec(), |g, x| launch::fold(g, &a, cs, x))
}

/// NormStats over two pooled device buffers.
fn stats(l: &checks::NormLayout, mean: DeviceBuf, rstd: DeviceBuf) -> Result<NormStats> {
    Ok(NormStats {
        mean: Tensor::from_cuda(mean, l.stats_dims.clone())?,
        rstd: Tensor::from_cuda(rstd, l.stats_dims.clone())?,
    })
}

fn empty_norm(x: &Tensor, l: &checks::NormLayout) -> Result<(Tensor, NormStats)> {
    let st = NormStats {
        mean: zeros(&l.stats_dims)?,
        rstd: zeros(&l.stats_dims)?,
    };
    Ok((zeros(x.dims())?, st))
}

fn stats_ref<'a>(op: &'static str, st: &'a NormStats) -> Result<StatsRef<'a>> {
    Ok(StatsRef {
        mean: dev(op, &st.mean)?,
        rstd: dev(op, &st.rstd)?,
    })
}

pub(super) fn instance_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    const OP: &str = "instance_norm";
    let l = checks::norm(OP, x, SpadeNorm::Instance)?;
    checks::eps(OP, eps)?;
    checks::channel_param(OP, weight, l.c)?;
    checks::channel_param(OP, bias, l.c)?;
    let xs = dev(OP, x)?;
    let (ws, bs) = (
        weight.map(|t| dev(OP, t)).transpose()?,
        bias.map(|t| dev(OP, t)).transpose()?,
    );
    if x.numel() == 0 {
        return empty_norm(x, &l);
    }
    let g = gpu()?;
    let mut y = g.alloc(x.numel())?;
    let st = launch::instance_norm_forward(g, (l.n, l.c, l.hw), eps, xs, ws, bs, &mut y)?;
    Ok((
        Tensor::from_cuda(y, x.dims().to_vec())?,
        stats(&l, st.mean, st.rstd)?,
    ))
}

pub(super) fn instance_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    st: &NormStats,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    const OP: &str = "instance_norm_backward";
    let l = checks::norm_saved(OP, SpadeNorm::Instance, x, st, dy)?;
    checks::channel_param(OP, weight, l.c)?;
    let (xs, gs, sr) = (dev(OP, x)?, dev(OP, dy)?, stats_ref(OP, st)?);
    let ws = weight.map(|t| dev(OP, t)).transpose()?;
    if x.numel() == 0 {
        let z = |on: bool| on.then(|| zeros(&[l.c])).transpose();
        return Ok((zeros(x.dims())?, z(ws.is_some())?, z(ws.is_some())?));
    }
    let g = gpu()?;
    let mut dx = g.alloc(x.numel())?;
    let (dw, db) = launch::instance_norm_backward(g, (l.n, l.c, l.hw), xs, ws, sr, gs, &mut dx)?;
    let dx = Tensor::from_cuda(dx, x.dims().to_vec())?;
    if ws.is_none() {
        return Ok((dx, None, None));
    }
    Ok((
        dx,
        Some(Tensor::from_cuda(dw, vec![l.c])?),
        Some(Tensor::from_cuda(db, vec![l.c])?),
    ))
}

pub(super) fn pono(x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)> {
    let l = checks::norm("pono", x, SpadeNorm::Pono)?;
    checks::eps("pono", eps)?;
    let xs = dev("pono", x)?;
    if x.numel() == 0 {
        return empty_norm(x, &l);
    }
    let g = gpu()?;
    let mut y = g.alloc(x.numel())?;
    let st = launch::pono_forward(g, (l.n, l.c, l.hw), eps, xs, &mut y)?;
    Ok((
        Tensor::from_cuda(y, x.dims().to_vec())?,
        stats(&l, st.mean, st.rstd)?,
    ))
}

pub(super) fn pono_backward(x: &Tensor, st: &NormStats, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "pono_backward";
    let l = checks::norm_saved(OP, SpadeNorm::Pono, x, st, dy)?;
    let (xs, gs, sr) = (dev(OP, x)?, dev(OP, dy)?, stats_ref(OP, st)?);
    produce(x.dims().to_vec(), |g, dx| {
        launch::pono_backward(g, (l.n, l.c, l.hw), xs, sr, gs, dx)
    })
}

pub(super) fn spade_modulate(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    norm: SpadeNorm,
    eps: f32,
) -> Result<(Tensor, NormStats)> {
    const OP: &str = "spade_modulate";
    let l = checks::norm(OP, x, norm)?;
    checks::eps(OP, eps)?;
    checks::same_shape(OP, x, gamma)?;
    checks::same_shape(OP, x, beta)?;
    let (xs, gm, bt) = (dev(OP, x)?, dev(OP, gamma)?, dev(OP, beta)?);
    if x.numel() == 0 {
        return empty_norm(x, &l);
    }
    let g = gpu()?;
    let mut y = g.alloc(x.numel())?;
    let pono = norm == SpadeNorm::Pono;
    let st = launch::spade_forward(g, pono, (l.n, l.c, l.hw), eps, xs, gm, bt, &mut y)?;
    Ok((
        Tensor::from_cuda(y, x.dims().to_vec())?,
        stats(&l, st.mean, st.rstd)?,
    ))
}

pub(super) fn spade_modulate_backward(
    x: &Tensor,
    gamma: &Tensor,
    st: &NormStats,
    norm: SpadeNorm,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "spade_modulate_backward";
    let l = checks::norm_saved(OP, norm, x, st, dy)?;
    checks::same_shape(OP, x, gamma)?;
    let (xs, gm, gs, sr) = (
        dev(OP, x)?,
        dev(OP, gamma)?,
        dev(OP, dy)?,
        stats_ref(OP, st)?,
    );
    if x.numel() == 0 {
        return Ok((zeros(x.dims())?, zeros(x.dims())?, dy.clone()));
    }
    let g = gpu()?;
    let (mut dx, mut dg) = (g.alloc(x.numel())?, g.alloc(x.numel())?);
    let pono = norm == SpadeNorm::Pono;
    launch::spade_backward(g, pono, (l.n, l.c, l.hw), xs, gm, sr, gs, &mut dx, &mut dg)?;
    let d = x.dims().to_vec();
    Ok((
        Tensor::from_cuda(dx, d.clone())?,
        Tensor::from_cuda(dg, d)?,
        dy.clone(),
    ))
}

/// (rows, len) of a softmax over the last axis.
fn rows_of(x: &Tensor) -> (usize, usize) {
    let len = x.dims().last().copied().unwrap_or(1);
    (if len == 0 { 0 } else { x.numel() / len }, len)
}

pub(super) fn softmax(x: &Tensor) -> Result<Tensor> {
    let xs = dev("softmax", x)?;
    let (rows, len) = rows_of(x);
    produce(x.dims().to_vec(), |g, y| {
        launch::softmax_forward(g, rows, len, None, xs, y)
    })
}

pub(super) fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_backward";
    checks::same_shape(OP, y, dy)?;
    let (ys, gs) = (dev(OP, y)?, dev(OP, dy)?);
    let (rows, len) = rows_of(y);
    produce(y.dims().to_vec(), |g, dx| {
        launch::softmax_backward(g, rows, len, None, ys, gs, dx)
    })
}

/// Batched row-major product C = α·op(A)·op(B) with contiguous [batch, ..] operands.
fn bmm(d: (usize, usize, usize, usize), trans: (bool, bool), alpha: f32) -> MatmulArgs {
    let (batch, m, n, k) = d;
    MatmulArgs {
        m: m as i64,
        n: n as i64,
        k: k as i64,
        batch: batch as i64,
        lda: if trans.0 { m } else { k } as i64,
        ldb: if trans.1 { k } else { n } as i64,
        ldc: n as i64,
        stride_a: (m * k) as i64,
        stride_b: (k * n) as i64,
        stride_c: (m * n) as i64,
        trans_a: trans.0 as i32,
        trans_b: trans.1 as i32,
        alpha,
        beta: 0.0,
    }
}

pub(super) fn corr_warp(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: CorrWarpParams,
    return_attn: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "corr_warp";
    let [b, c, n, m, vv] = checks::corr_warp(OP, q, k, v, p)?;
    let (qs, ks, vs) = (dev(OP, q)?, dev(OP, k)?, dev(OP, v)?);
    if b * n == 0 {
        let attn = return_attn.then(|| zeros(&[b, n, m])).transpose()?;
        return Ok((zeros(&[b, n, vv])?, attn));
    }
    let d = CorrDims { b, c, n, m, v: vv };
    let g = gpu()?;
    let saved = launch::corr_prepare(g, d, &p, qs, ks)?;
    let mut out = g.alloc(b * n * vv)?;
    if !return_attn {
        launch::corr_warp_fused(g, d, p.scale, &saved, vs, &mut out, precision())?;
        return Ok((Tensor::from_cuda(out, vec![b, n, vv])?, None));
    }
    // The reference rung, keeping A: S = scale·q̂ᵀk̂, A = softmax(S), out = A·v.
    let mut s = g.alloc(b * n * m)?;
    let mut attn = g.alloc(b * n * m)?;
    let ps = bmm((b, n, m, c), (true, false), p.scale);
    launch::matmul(
        g,
        &ps,
        precision(),
        &saved.qh.as_view(),
        &saved.kh.as_view(),
        &mut s.as_view_mut(),
    )?;
    launch::softmax_forward(g, b * n, m, None, &s, &mut attn)?;
    let po = bmm((b, n, vv, m), (false, false), 1.0);
    launch::matmul(
        g,
        &po,
        precision(),
        &attn.as_view(),
        &vs.as_view(),
        &mut out.as_view_mut(),
    )?;
    Ok((
        Tensor::from_cuda(out, vec![b, n, vv])?,
        Some(Tensor::from_cuda(attn, vec![b, n, m])?),
    ))
}

/// Query rows per backward slab: the two [b, rows, m] score buffers stay under ~256 MiB.
fn slab_rows(b: usize, n: usize, m: usize) -> usize {
    ((1usize << 25) / (b * m).max(1)).clamp(1, n.max(1))
}

pub(super) fn corr_warp_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    p: CorrWarpParams,
    dout: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "corr_warp_backward";
    let d = checks::corr_warp(OP, q, k, v, p)?;
    checks::corr_warp_dout(OP, d, dout)?;
    let [b, c, n, m, vv] = d;
    let (qs, ks, vs, gs) = (dev(OP, q)?, dev(OP, k)?, dev(OP, v)?, dev(OP, dout)?);
    if b * n == 0 {
        return Ok((zeros(q.dims())?, zeros(k.dims())?, zeros(v.dims())?));
    }
    let d = CorrDims { b, c, n, m, v: vv };
    let g = gpu()?;
    let saved = launch::corr_prepare(g, d, &p, qs, ks)?;
    let (dq, dk, dv) =
        launch::corr_warp_backward(g, d, &p, &saved, vs, gs, slab_rows(b, n, m), precision())?;
    Ok((
        Tensor::from_cuda(dq, q.dims().to_vec())?,
        Tensor::from_cuda(dk, k.dims().to_vec())?,
        Tensor::from_cuda(dv, v.dims().to_vec())?,
    ))
}

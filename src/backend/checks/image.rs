//! The checks of the image ops: conv geometry, pooling, resize, unfold/fold, the norms and the
//! correlation (see the module above for the contract every check follows).

use super::{dims4, same_shape};
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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

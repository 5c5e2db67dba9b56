//! The CUDA backend's dense ops: layout, elementwise, reductions, matmul, losses and Adam.

use super::backend::{dev, gpu, produce, zeros};
use super::launch::{self, LossKind};
use super::params::{ConcatArgs, MatmulArgs};
use crate::backend::checks;
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Storage, Tensor};
use cudarc::driver::CudaSlice;
use std::sync::Arc;

/// y = the strided view (dims, strides, offset) of x.
fn gather(
    op: &'static str,
    x: &Tensor,
    dims: Vec<usize>,
    strides: &[usize],
    offset: usize,
) -> Result<Tensor> {
    let xs = dev(op, x)?;
    let d = dims.clone();
    produce(dims, |g, y| launch::gather(g, xs, (&d, strides, offset), y))
}

pub(super) fn permute(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let (od, st) = checks::permute(x, dims)?;
    gather("permute", x, od, &st, 0)
}

pub(super) fn narrow(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (od, st, off) = checks::narrow(x, axis, start, len)?;
    gather("narrow", x, od, &st, off)
}

pub(super) fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    let (dims, axis, outer, inner) = checks::concat(xs, axis)?;
    let srcs = xs
        .iter()
        .map(|x| dev("concat", x))
        .collect::<Result<Vec<_>>>()?;
    let row = dims[axis] * inner;
    produce(dims, |g, y| {
        let mut at = 0;
        for (x, src) in xs.iter().zip(srcs) {
            let width = x.dims()[axis] * inner;
            if width > 0 {
                let a = ConcatArgs {
                    outer: outer as i64,
                    width: width as i64,
                    row: row as i64,
                    at: at as i64,
                };
                launch::concat_slice(g, &a, src, y)?;
            }
            at += width;
        }
        Ok(())
    })
}

pub(super) fn broadcast_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let st = checks::broadcast_strides("broadcast_to", x.dims(), shape)?;
    gather("broadcast_to", x, shape.to_vec(), &st, 0)
}

pub(super) fn sum_to(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let mask = checks::sum_to_mask(x, shape)?;
    reduce_masked("sum_to", ReduceOp::Sum, x, &mask, shape.to_vec())
}

/// Reduces x over the axes in `mask` into a tensor of `out_dims` (the kept dims, in order,
/// plus any 1s). Empty reductions as on the CPU: sum 0, mean NaN, max an error.
fn reduce_masked(
    op: &'static str,
    r: ReduceOp,
    x: &Tensor,
    mask: &[bool],
    out_dims: Vec<usize>,
) -> Result<Tensor> {
    let xs = dev(op, x)?;
    let count: usize = x
        .dims()
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(d, _)| d)
        .product();
    let out_n: usize = out_dims.iter().product();
    if count == 0 {
        return match r {
            ReduceOp::Sum => zeros(&out_dims),
            ReduceOp::Mean => {
                Tensor::from_cuda(gpu()?.upload_buf(&vec![f32::NAN; out_n])?, out_dims)
            }
            ReduceOp::Max if out_n == 0 => zeros(&out_dims),
            ReduceOp::Max => Err(Error::invalid(
                "reduce",
                format!("max over an empty axis of {:?}", x.dims()),
            )),
        };
    }
    let plan = launch::reduce_plan(r, x.dims(), mask)?;
    produce(out_dims, |g, y| launch::reduce(g, &plan, xs, y))
}

pub(super) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let xs = dev("unary", x)?;
    let n = x.numel();
    produce(x.dims().to_vec(), |g, y| launch::unary(g, op, n, xs, y))
}

pub(super) fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "unary_backward";
    checks::same_shape(OP, x, y)?;
    checks::same_shape(OP, x, dy)?;
    let ins = (dev(OP, x)?, dev(OP, y)?, dev(OP, dy)?);
    let n = x.numel();
    produce(x.dims().to_vec(), |g, dx| {
        launch::unary_backward(g, op, n, ins, dx)
    })
}

pub(super) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
    };
    let (ad, bd) = (dev(name, a)?, dev(name, b)?);
    if a.dims() == b.dims() {
        let n = a.numel();
        return produce(a.dims().to_vec(), |g, y| {
            launch::binary_same(g, op, n, ad, bd, y)
        });
    }
    let shape = Shape::broadcast(name, a.shape(), b.shape())?;
    let sa = checks::broadcast_strides(name, a.dims(), shape.dims())?;
    let sb = checks::broadcast_strides(name, b.dims(), shape.dims())?;
    let args = launch::binary_args(op, shape.dims(), &sa, &sb)?;
    produce(shape.dims().to_vec(), |g, y| {
        launch::binary_broadcast(g, &args, ad, bd, y)
    })
}

pub(super) fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let (c, inner) = checks::prelu_layout("prelu", x, alpha)?;
    let (xs, al) = (dev("prelu", x)?, dev("prelu", alpha)?);
    let n = x.numel();
    produce(x.dims().to_vec(), |g, y| {
        launch::prelu_forward(g, (n, c, inner), xs, al, y)
    })
}

pub(super) fn prelu_backward(x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "prelu_backward";
    let (c, inner) = checks::prelu_layout(OP, x, alpha)?;
    checks::same_shape(OP, x, dy)?;
    let (xs, al, gs) = (dev(OP, x)?, dev(OP, alpha)?, dev(OP, dy)?);
    let n = x.numel();
    if n == 0 {
        return Ok((zeros(x.dims())?, zeros(alpha.dims())?));
    }
    let g = gpu()?;
    let (mut dx, mut da) = (g.alloc(n)?, g.alloc(c)?);
    launch::prelu_backward(g, (n, c, inner), xs, al, gs, &mut dx, &mut da)?;
    Ok((
        Tensor::from_cuda(dx, x.dims().to_vec())?,
        Tensor::from_cuda(da, alpha.dims().to_vec())?,
    ))
}

pub(super) fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    let mask = checks::axis_mask("reduce", x, axes)?;
    let dims = checks::reduced_dims(x.dims(), &mask, keepdim);
    reduce_masked("reduce", op, x, &mask, dims)
}

pub(super) fn reduce_max_backward(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    axes: &[usize],
) -> Result<Tensor> {
    const OP: &str = "reduce_max_backward";
    let (mask, _) = checks::max_backward(x, y, dy, axes)?;
    let ins = (dev(OP, x)?, dev(OP, y)?, dev(OP, dy)?);
    if x.numel() == 0 {
        return zeros(x.dims());
    }
    let plan = launch::reduce_plan(ReduceOp::Max, x.dims(), &mask)?;
    produce(x.dims().to_vec(), |g, dx| {
        launch::reduce_max_backward(g, &plan, ins, dx)
    })
}

pub(super) fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    let (batch_dims, [m, k, n]) = checks::matmul(a, b, ta, tb)?;
    let (ad, bd) = (dev("matmul", a)?, dev("matmul", b)?);
    let batch: usize = batch_dims.iter().product();
    let mut dims = batch_dims;
    dims.extend([m, n]);
    if k == 0 {
        return zeros(&dims);
    }
    let p = MatmulArgs {
        m: m as i64,
        n: n as i64,
        k: k as i64,
        batch: batch as i64,
        lda: if ta { m } else { k } as i64,
        ldb: if tb { k } else { n } as i64,
        ldc: n as i64,
        stride_a: if a.rank() == 2 { 0 } else { m * k } as i64,
        stride_b: if b.rank() == 2 { 0 } else { k * n } as i64,
        stride_c: (m * n) as i64,
        trans_a: ta as i32,
        trans_b: tb as i32,
        alpha: 1.0,
        beta: 0.0,
    };
    produce(dims, |g, c| {
        launch::matmul(
            g,
            &p,
            precision(),
            &ad.as_view(),
            &bd.as_view(),
            &mut c.as_view_mut(),
        )
    })
}

fn loss_name(kind: LossKind, backward: bool) -> &'static str {
    match (kind, backward) {
        (LossKind::L1, false) => "l1_loss",
        (LossKind::L1, true) => "l1_loss_backward",
        (LossKind::Mse, false) => "mse_loss",
        (LossKind::Mse, true) => "mse_loss_backward",
    }
}

/// mean f(a − b) as a shape-[] tensor.
pub(super) fn loss(kind: LossKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = loss_name(kind, false);
    checks::loss(op, a, b)?;
    let ins = (dev(op, a)?, dev(op, b)?);
    let n = a.numel();
    produce(vec![], |g, out| launch::loss_forward(g, kind, n, ins, out))
}

/// d/da of the loss times the upstream `dloss` (the scale in f64, as on the CPU).
pub(super) fn loss_backward(kind: LossKind, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    let op = loss_name(kind, true);
    checks::loss(op, a, b)?;
    let ins = (dev(op, a)?, dev(op, b)?);
    let n = a.numel();
    let factor = if kind == LossKind::Mse { 2.0 } else { 1.0 };
    let scale = (factor * dloss as f64 / n as f64) as f32;
    produce(a.dims().to_vec(), |g, dx| {
        launch::loss_backward(g, kind, n, scale, ins, dx)
    })
}

/// The device buffer of `t` for writing in place: its own copy first if another tensor shares it
/// (as `Tensor::data_mut` does on the CPU).
fn unique_mut<'a>(op: &'static str, t: &'a mut Tensor) -> Result<&'a mut CudaSlice<f32>> {
    let n = t.numel();
    match t.storage_mut() {
        Storage::Cuda(arc) => {
            if Arc::get_mut(arc).is_none() {
                *arc = Arc::new(gpu()?.copy_buf(arc, n)?);
            }
            let buf = Arc::get_mut(arc)
                .ok_or_else(|| Error::invalid(op, "device buffer still shared after copying"))?;
            Ok(&mut **buf)
        }
        Storage::Cpu(_) => Err(Error::DeviceMismatch {
            op,
            a: "cuda".into(),
            b: "cpu".into(),
        }),
    }
}

pub(super) fn adam_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    p: AdamParams,
) -> Result<()> {
    const OP: &str = "adam_step";
    checks::adam(param, grad, m, v, &p)?;
    let gs = dev(OP, grad)?;
    let n = param.numel();
    let a = launch::adam_args(n, &p);
    let (ps, ms, vs) = (
        unique_mut(OP, param)?,
        unique_mut(OP, m)?,
        unique_mut(OP, v)?,
    );
    if n == 0 {
        return Ok(());
    }
    launch::adam_step(gpu()?, &a, ps, gs, (ms, vs))
}

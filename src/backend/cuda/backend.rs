//! `CudaBackend`: every primitive of the `Backend` trait on CUDA tensors. Each op checks shapes
//! first (`checks`, the CPU backend's rules), allocates its outputs from the GPU's caching pool
//! and launches the hand-written kernels (`launch`); empty outputs launch nothing. The ops
//! themselves live in `dense` (layout, elementwise, reductions, matmul, losses, Adam) and
//! `image` (conv, pooling, resizing, unfold, normalisation, softmax, corr_warp).

use super::launch::{self, Gpu};
use super::{dense, image};
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::{Storage, Tensor};
use cudarc::driver::CudaSlice;
use std::sync::OnceLock;

pub struct CudaBackend;

/// Ok once the driver, NVRTC and a GPU are present and every kernel file compiled and loaded
/// (through the PTX disk cache), else the reason; decided once per process, on first use.
pub fn ready() -> std::result::Result<(), String> {
    static READY: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            crate::backend::cuda_probe::probe()?;
            let gpu = launch::global().map_err(|e| e.to_string())?;
            gpu.load_all().map_err(|e| e.to_string())
        })
        .clone()
}

pub(super) fn gpu() -> Result<&'static Gpu> {
    launch::global()
}

/// The device buffer of a CUDA tensor, or a device-mismatch error naming `op`.
pub(super) fn dev<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a CudaSlice<f32>> {
    match t.storage() {
        Storage::Cuda(b) => Ok(&***b),
        Storage::Cpu(_) => Err(Error::DeviceMismatch {
            op,
            a: "cuda".into(),
            b: "cpu".into(),
        }),
    }
}

/// A new CUDA tensor of `dims` that `fill` writes in full (not called when it is empty).
pub(super) fn produce(
    dims: Vec<usize>,
    fill: impl FnOnce(&Gpu, &mut CudaSlice<f32>) -> Result<()>,
) -> Result<Tensor> {
    let g = gpu()?;
    let n: usize = dims.iter().product();
    let mut buf = g.alloc(n)?;
    if n > 0 {
        fill(g, &mut buf)?;
    }
    Tensor::from_cuda(buf, dims)
}

/// Zeros of `dims` on the GPU.
pub(super) fn zeros(dims: &[usize]) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    Tensor::from_cuda(gpu()?.alloc_zeros(n)?, dims.to_vec())
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn permute(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
        dense::permute(x, dims)
    }
    fn narrow(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        dense::narrow(x, axis, start, len)
    }
    fn concat(&self, xs: &[&Tensor], axis: usize) -> Result<Tensor> {
        dense::concat(xs, axis)
    }
    fn broadcast_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        dense::broadcast_to(x, shape)
    }
    fn sum_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        dense::sum_to(x, shape)
    }
    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        dense::unary(op, x)
    }
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        dense::unary_backward(op, x, y, dy)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        dense::binary(op, a, b)
    }
    fn prelu(&self, x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
        dense::prelu(x, alpha)
    }
    fn prelu_backward(&self, x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        dense::prelu_backward(x, alpha, dy)
    }
    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        dense::reduce(op, x, axes, keepdim)
    }
    fn reduce_max_backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        axes: &[usize],
    ) -> Result<Tensor> {
        dense::reduce_max_backward(x, y, dy, axes)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        dense::matmul(a, b, trans_a, trans_b)
    }
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        image::conv2d(x, w, bias, p)
    }
    fn conv2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        image::conv2d_backward_input(dy, w, x_shape, p)
    }
    fn conv2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        image::conv2d_backward_weight(x, dy, w_shape, p)
    }
    fn conv2d_backward_bias(&self, dy: &Tensor) -> Result<Tensor> {
        image::conv2d_backward_bias(dy)
    }
    fn avg_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        image::pool2d("avg_pool2d", x, p)
    }
    fn avg_pool2d_backward(
        &self,
        dy: &Tensor,
        x_shape: &[usize],
        p: Pool2dParams,
    ) -> Result<Tensor> {
        image::avg_pool2d_backward(dy, x_shape, p)
    }
    fn max_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        image::pool2d("max_pool2d", x, p)
    }
    fn max_pool2d_backward(&self, x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        image::max_pool2d_backward(x, dy, p)
    }
    fn resize2d(&self, x: &Tensor, out_hw: (usize, usize), mode: ResizeMode) -> Result<Tensor> {
        image::resize2d(x, out_hw, mode)
    }
    fn resize2d_backward(
        &self,
        dy: &Tensor,
        x_shape: &[usize],
        mode: ResizeMode,
    ) -> Result<Tensor> {
        image::resize2d_backward(dy, x_shape, mode)
    }
    fn unfold(&self, x: &Tensor, p: UnfoldParams) -> Result<Tensor> {
        image::unfold(x, p)
    }
    fn fold(&self, cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor> {
        image::fold(cols, out_hw, p)
    }
    fn instance_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<(Tensor, NormStats)> {
        image::instance_norm(x, weight, bias, eps)
    }
    fn instance_norm_backward(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        stats: &NormStats,
        dy: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        image::instance_norm_backward(x, weight, stats, dy)
    }
    fn pono(&self, x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)> {
        image::pono(x, eps)
    }
    fn pono_backward(&self, x: &Tensor, stats: &NormStats, dy: &Tensor) -> Result<Tensor> {
        image::pono_backward(x, stats, dy)
    }
    fn spade_modulate(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        norm: SpadeNorm,
        eps: f32,
    ) -> Result<(Tensor, NormStats)> {
        image::spade_modulate(x, gamma, beta, norm, eps)
    }
    fn spade_modulate_backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        stats: &NormStats,
        norm: SpadeNorm,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        image::spade_modulate_backward(x, gamma, stats, norm, dy)
    }
    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        image::softmax(x)
    }
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        image::softmax_backward(y, dy)
    }
    fn corr_warp(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        return_attn: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        image::corr_warp(q, k, v, p, return_attn)
    }
    fn corr_warp_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        dout: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        image::corr_warp_backward(q, k, v, p, dout)
    }
    fn l1_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        dense::loss(launch::LossKind::L1, a, b)
    }
    fn l1_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
        dense::loss_backward(launch::LossKind::L1, a, b, dloss)
    }
    fn mse_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        dense::loss(launch::LossKind::Mse, a, b)
    }
    fn mse_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
        dense::loss_backward(launch::LossKind::Mse, a, b, dloss)
    }
    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        p: AdamParams,
    ) -> Result<()> {
        dense::adam_step(param, grad, m, v, p)
    }
}

//! The CPU reference backend: f32, row-major, rayon across batch/channels, a GEMM crate under
//! matmul and conv (im2col). Each op family lives in its own file; this file only routes. Shapes
//! and arguments are checked by `backend::checks`, which the CUDA backend shares.

mod adam;
mod conv;
mod corr_warp;
mod elementwise;
mod layout;
mod loss;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod resize;
mod softmax;
mod unfold;

pub use matmul::sgemm;

use super::*;
use crate::error::Result;
use crate::tensor::Tensor;

pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn permute(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
        layout::permute(x, dims)
    }
    fn narrow(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        layout::narrow(x, axis, start, len)
    }
    fn concat(&self, xs: &[&Tensor], axis: usize) -> Result<Tensor> {
        layout::concat(xs, axis)
    }
    fn broadcast_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        layout::broadcast_to(x, shape)
    }
    fn sum_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        layout::sum_to(x, shape)
    }
    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        elementwise::unary(op, x)
    }
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        elementwise::unary_backward(op, x, y, dy)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        elementwise::binary(op, a, b)
    }
    fn prelu(&self, x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
        elementwise::prelu(x, alpha)
    }
    fn prelu_backward(&self, x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        elementwise::prelu_backward(x, alpha, dy)
    }
    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        reduce::reduce(op, x, axes, keepdim)
    }
    fn reduce_max_backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        axes: &[usize],
    ) -> Result<Tensor> {
        reduce::reduce_max_backward(x, y, dy, axes)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        matmul::matmul(a, b, trans_a, trans_b)
    }
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        conv::conv2d(x, w, bias, p)
    }
    fn conv2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        conv::conv2d_backward_input(dy, w, x_shape, p)
    }
    fn conv2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        conv::conv2d_backward_weight(x, dy, w_shape, p)
    }
    fn conv2d_backward_bias(&self, dy: &Tensor) -> Result<Tensor> {
        conv::conv2d_backward_bias(dy)
    }
    fn avg_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        pool::avg_pool2d(x, p)
    }
    fn avg_pool2d_backward(
        &self,
        dy: &Tensor,
        x_shape: &[usize],
        p: Pool2dParams,
    ) -> Result<Tensor> {
        pool::avg_pool2d_backward(dy, x_shape, p)
    }
    fn max_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        pool::max_pool2d(x, p)
    }
    fn max_pool2d_backward(&self, x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor> {
        pool::max_pool2d_backward(x, dy, p)
    }
    fn resize2d(&self, x: &Tensor, out_hw: (usize, usize), mode: ResizeMode) -> Result<Tensor> {
        resize::resize2d(x, out_hw, mode)
    }
    fn resize2d_backward(
        &self,
        dy: &Tensor,
        x_shape: &[usize],
        mode: ResizeMode,
    ) -> Result<Tensor> {
        resize::resize2d_backward(dy, x_shape, mode)
    }
    fn unfold(&self, x: &Tensor, p: UnfoldParams) -> Result<Tensor> {
        unfold::unfold(x, p)
    }
    fn fold(&self, cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor> {
        unfold::fold(cols, out_hw, p)
    }
    fn instance_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<(Tensor, NormStats)> {
        norm::instance_norm(x, weight, bias, eps)
    }
    fn instance_norm_backward(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        stats: &NormStats,
        dy: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        norm::instance_norm_backward(x, weight, stats, dy)
    }
    fn pono(&self, x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)> {
        norm::pono(x, eps)
    }
    fn pono_backward(&self, x: &Tensor, stats: &NormStats, dy: &Tensor) -> Result<Tensor> {
        norm::pono_backward(x, stats, dy)
    }
    fn spade_modulate(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        norm: SpadeNorm,
        eps: f32,
    ) -> Result<(Tensor, NormStats)> {
        norm::spade_modulate(x, gamma, beta, norm, eps)
    }
    fn spade_modulate_backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        stats: &NormStats,
        norm: SpadeNorm,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm::spade_modulate_backward(x, gamma, stats, norm, dy)
    }
    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        softmax::softmax(x)
    }
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
        softmax::softmax_backward(y, dy)
    }
    fn corr_warp(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        return_attn: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        corr_warp::corr_warp(q, k, v, p, return_attn)
    }
    fn corr_warp_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        dout: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        corr_warp::corr_warp_backward(q, k, v, p, dout)
    }
    fn l1_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        loss::l1_loss(a, b)
    }
    fn l1_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
        loss::l1_loss_backward(a, b, dloss)
    }
    fn mse_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        loss::mse_loss(a, b)
    }
    fn mse_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
        loss::mse_loss_backward(a, b, dloss)
    }
    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        p: AdamParams,
    ) -> Result<()> {
        adam::adam_step(param, grad, m, v, p)
    }
}

//! The backend contract: every primitive the model needs, forward and backward, in one trait.
//! Composite ops live in `nn`; backward rules that are compositions of forward primitives live in
//! `autograd::rules`; the ones that need their own kernel are listed here as `*_backward`.
//! All tensors passed in are contiguous row-major; shapes are checked by the backend, through the
//! shared `checks`.

mod checks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod cuda_probe;
mod ops;
pub mod precision;

pub use ops::*;
pub use precision::{precision, set_precision, Precision};

use crate::error::Result;
use crate::tensor::{Device, Tensor};

pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;

    // ---- layout -----------------------------------------------------------------------------
    fn permute(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor>;
    fn narrow(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor>;
    fn concat(&self, xs: &[&Tensor], axis: usize) -> Result<Tensor>;
    /// Repeats size-1 dims (and prepends dims) to reach `shape`.
    fn broadcast_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor>;
    /// Sums broadcast dims away: the adjoint of `broadcast_to`.
    fn sum_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor>;

    // ---- elementwise ------------------------------------------------------------------------
    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor>;
    /// dx given x, y = op(x) and dy (one fused pass per op).
    fn unary_backward(&self, op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor>;
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    /// PReLU with one slope or one per channel (axis 1): y = x if x > 0 else α·x.
    fn prelu(&self, x: &Tensor, alpha: &Tensor) -> Result<Tensor>;
    /// (dx, dα).
    fn prelu_backward(&self, x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)>;

    // ---- reductions -------------------------------------------------------------------------
    fn reduce(&self, op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor>;
    /// dx of `Max` given x, y = max (keepdim) and dy (keepdim): ties share the gradient.
    fn reduce_max_backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        axes: &[usize],
    ) -> Result<Tensor>;

    // ---- matrix products --------------------------------------------------------------------
    /// [.., M, K] × [.., K, N] with equal leading dims (or rank-2 operands broadcast), either
    /// operand optionally transposed in its last two dims.
    fn matmul(&self, a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor>;

    // ---- convolution ------------------------------------------------------------------------
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor>;
    fn conv2d_backward_input(
        &self,
        dy: &Tensor,
        w: &Tensor,
        x_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor>;
    fn conv2d_backward_weight(
        &self,
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Tensor>;
    /// Sum of dy over N, H, W.
    fn conv2d_backward_bias(&self, dy: &Tensor) -> Result<Tensor>;

    // ---- pooling and resizing ---------------------------------------------------------------
    fn avg_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor>;
    fn avg_pool2d_backward(
        &self,
        dy: &Tensor,
        x_shape: &[usize],
        p: Pool2dParams,
    ) -> Result<Tensor>;
    fn max_pool2d(&self, x: &Tensor, p: Pool2dParams) -> Result<Tensor>;
    /// Gradient goes to the first maximum of each window (PyTorch's choice).
    fn max_pool2d_backward(&self, x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor>;
    fn resize2d(&self, x: &Tensor, out_hw: (usize, usize), mode: ResizeMode) -> Result<Tensor>;
    fn resize2d_backward(&self, dy: &Tensor, x_shape: &[usize], mode: ResizeMode)
        -> Result<Tensor>;

    // ---- im2col -----------------------------------------------------------------------------
    /// [N, C, H, W] -> [N, C·kH·kW, L] (torch.nn.functional.unfold).
    fn unfold(&self, x: &Tensor, p: UnfoldParams) -> Result<Tensor>;
    /// [N, C·kH·kW, L] -> [N, C, H, W], summing overlaps: the adjoint of `unfold`.
    fn fold(&self, cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor>;

    // ---- normalisation ----------------------------------------------------------------------
    /// Over H×W per (n, c), biased variance; optional per-channel affine.
    fn instance_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<(Tensor, NormStats)>;
    /// (dx, dweight, dbias).
    fn instance_norm_backward(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        stats: &NormStats,
        dy: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)>;
    /// Positional normalisation: over C per (n, h, w), unbiased variance.
    fn pono(&self, x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)>;
    fn pono_backward(&self, x: &Tensor, stats: &NormStats, dy: &Tensor) -> Result<Tensor>;
    /// Fused `norm(x) · (1 + γ) + β`; γ and β have x's shape.
    fn spade_modulate(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        norm: SpadeNorm,
        eps: f32,
    ) -> Result<(Tensor, NormStats)>;
    /// (dx, dγ, dβ).
    fn spade_modulate_backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        stats: &NormStats,
        norm: SpadeNorm,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    // ---- softmax and attention --------------------------------------------------------------
    /// Over the last axis.
    fn softmax(&self, x: &Tensor) -> Result<Tensor>;
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor) -> Result<Tensor>;
    /// q [B,C,N], k [B,C,M], v [B,M,V] -> out [B,N,V], and A [B,N,M] when `return_attn`.
    fn corr_warp(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        return_attn: bool,
    ) -> Result<(Tensor, Option<Tensor>)>;
    /// (dq, dk, dv); recomputes what it needs.
    fn corr_warp_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: CorrWarpParams,
        dout: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    // ---- losses -----------------------------------------------------------------------------
    /// mean |a - b| as a scalar tensor.
    fn l1_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    /// d/da of `l1_loss` times the scalar upstream gradient (sign(a-b)/n, 0 where equal).
    fn l1_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor>;
    fn mse_loss(&self, a: &Tensor, b: &Tensor) -> Result<Tensor>;
    fn mse_loss_backward(&self, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor>;

    // ---- optimiser --------------------------------------------------------------------------
    /// Updates param, m and v in place.
    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        p: AdamParams,
    ) -> Result<()>;
}

static CPU: cpu::CpuBackend = cpu::CpuBackend;
#[cfg(feature = "cuda")]
static CUDA: cuda::CudaBackend = cuda::CudaBackend;

/// The backend that owns tensors on `device`.
pub fn for_device(device: Device) -> Result<&'static dyn Backend> {
    match device {
        Device::Cpu => Ok(&CPU),
        Device::Auto => for_device(device.resolve()?),
        Device::Cuda => match cuda_backend_status() {
            Ok(()) => cuda_backend(),
            Err(reason) => Err(crate::Error::DeviceUnavailable {
                device: "cuda".into(),
                reason,
            }),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<&'static dyn Backend> {
    Ok(&CUDA)
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<&'static dyn Backend> {
    Err(crate::Error::DeviceUnavailable {
        device: "cuda".into(),
        reason: "this build has no CUDA support (rebuild with the `cuda` feature)".into(),
    })
}

pub fn for_tensor(x: &Tensor) -> Result<&'static dyn Backend> {
    for_device(x.device())
}

/// Whether ops can run on CUDA here: the `cuda` feature is on, a driver, NVRTC and a GPU are
/// present and every kernel file compiles for the GPU (checked once, on first use, through the
/// PTX disk cache). Never panics without a driver.
pub fn cuda_backend_built() -> bool {
    cuda_backend_status().is_ok()
}

/// Ok when the CUDA backend can run ops, else why not (for `engine info` and errors).
pub fn cuda_backend_status() -> std::result::Result<(), String> {
    #[cfg(feature = "cuda")]
    return cuda::backend::ready();
    #[cfg(not(feature = "cuda"))]
    Err("this build has no CUDA support (rebuild with the `cuda` feature)".into())
}

/// The CUDA memory pool's counters (bytes in use / peak / cached, driver allocations), when
/// the GPU has been opened in this process.
#[cfg(feature = "cuda")]
pub fn cuda_mem_stats() -> Option<cuda::pool::MemStats> {
    cuda_backend_status().ok()?;
    cuda::launch::global().ok().map(|g| g.mem_stats())
}

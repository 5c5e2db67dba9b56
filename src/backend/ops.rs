//! Parameters of the primitives: small plain structs, passed by value (they mirror the
//! `#[repr(C)]` launch structs of the CUDA kernels).

/// Elementwise ops of one tensor. Scalar-carrying variants hold their constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    AddScalar(f32),
    MulScalar(f32),
    /// x^p (for x < 0 only integer p is meaningful, as in PyTorch).
    PowScalar(f32),
    Relu,
    LeakyRelu(f32),
    Tanh,
    Sigmoid,
    Exp,
    Log,
    Sqrt,
    Abs,
}

/// Elementwise ops of two tensors with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    /// Maximum; its gradient is shared equally among tied maxima (PyTorch `amax`).
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PadMode {
    #[default]
    Zeros,
    /// Mirror without repeating the edge (PyTorch `reflect`); needs pad < size.
    Reflect,
}

/// conv2d over NCHW input and [C_out, C_in/groups, kH, kW] weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
    pub pad_mode: PadMode,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            pad_mode: PadMode::Zeros,
        }
    }
}

impl Conv2dParams {
    /// Output spatial size for an input of `h × w` and a `kh × kw` kernel, or None if empty.
    pub fn out_size(&self, h: usize, w: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let eh = self.dilation.0 * (kh - 1) + 1;
        let ew = self.dilation.1 * (kw - 1) + 1;
        let ph = h + 2 * self.padding.0;
        let pw = w + 2 * self.padding.1;
        if kh == 0 || kw == 0 || ph < eh || pw < ew || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some(((ph - eh) / self.stride.0 + 1, (pw - ew) / self.stride.1 + 1))
    }
}

/// 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// avg_pool only: whether zero padding counts in the divisor (PyTorch `count_include_pad`).
    pub count_include_pad: bool,
}

impl Pool2dParams {
    pub fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let ph = h + 2 * self.padding.0;
        let pw = w + 2 * self.padding.1;
        if self.kernel.0 == 0
            || self.kernel.1 == 0
            || ph < self.kernel.0
            || pw < self.kernel.1
            || self.stride.0 == 0
            || self.stride.1 == 0
        {
            return None;
        }
        Some((
            (ph - self.kernel.0) / self.stride.0 + 1,
            (pw - self.kernel.1) / self.stride.1 + 1,
        ))
    }
}

/// torch.nn.functional.unfold / fold window (im2col and its adjoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnfoldParams {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// PyTorch `nearest`: src = floor(dst · in / out).
    Nearest,
    /// PyTorch `bilinear` with the given `align_corners`.
    Bilinear { align_corners: bool },
}

/// Which parameter-free normalisation the fused SPADE modulation applies before `·(1+γ)+β`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpadeNorm {
    /// Positional normalisation over channels per pixel (unbiased variance).
    Pono,
    /// Instance normalisation over H×W per channel (biased variance).
    Instance,
}

/// corr_warp: `out = softmax_M(scale · q̂ᵀ k̂) · v` (see ARCHITECTURE.md, Backend contract).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorrWarpParams {
    pub scale: f32,
    /// Centre q and k over C and L2-normalise each position first.
    pub normalize: bool,
    /// Added to the norm before dividing (avoids 0/0 on constant descriptors).
    pub eps: f32,
}

/// One Adam (or AdamW-style decoupled weight decay when `decoupled`) update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    /// 1-based step number, for the bias corrections.
    pub step: u64,
}

/// Saved statistics of a normalisation, for its backward.
#[derive(Clone, Debug)]
pub struct NormStats {
    pub mean: crate::Tensor,
    /// 1 / sqrt(var + eps) for instance norm; 1 / sqrt(unbiased var + eps) for PONO.
    pub rstd: crate::Tensor,
}

//! Launchers of the per-plane spatial ops: pooling, resizing, unfold / fold. All grid-stride, a
//! thread per output element (the backwards: a thread per input element, gathering).

use super::*;
use crate::backend::{Pool2dParams, ResizeMode, UnfoldParams};

/// `PoolArgs` for `planes` planes of h × w pooled to oh × ow by `p`.
pub fn pool_args(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    p: &Pool2dParams,
) -> PoolArgs {
    PoolArgs {
        planes: planes as i64,
        h: h as i64,
        w: w as i64,
        oh: oh as i64,
        ow: ow as i64,
        kh: p.kernel.0 as i32,
        kw: p.kernel.1 as i32,
        stride_h: p.stride.0 as i32,
        stride_w: p.stride.1 as i32,
        pad_h: p.padding.0 as i32,
        pad_w: p.padding.1 as i32,
        count_include_pad: p.count_include_pad as i32,
        _pad: 0,
    }
}

pub fn avg_pool_forward(
    gpu: &Gpu,
    a: &PoolArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.oh * a.ow) as u64;
    launch!(gpu, "avg_pool2d_forward_f32", cfg_elems(n), a, x, y)
}

pub fn avg_pool_backward(
    gpu: &Gpu,
    a: &PoolArgs,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.h * a.w) as u64;
    launch!(gpu, "avg_pool2d_backward_f32", cfg_elems(n), a, dy, dx)
}

pub fn max_pool_forward(
    gpu: &Gpu,
    a: &PoolArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.oh * a.ow) as u64;
    launch!(gpu, "max_pool2d_forward_f32", cfg_elems(n), a, x, y)
}

pub fn max_pool_backward(
    gpu: &Gpu,
    a: &PoolArgs,
    x: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.h * a.w) as u64;
    launch!(gpu, "max_pool2d_backward_f32", cfg_elems(n), a, x, dy, dx)
}

pub fn resize_args(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    mode: ResizeMode,
) -> ResizeArgs {
    let (mode, align) = match mode {
        ResizeMode::Nearest => (RESIZE_NEAREST, false),
        ResizeMode::Bilinear { align_corners } => (RESIZE_BILINEAR, align_corners),
    };
    ResizeArgs {
        planes: planes as i64,
        h: h as i64,
        w: w as i64,
        oh: oh as i64,
        ow: ow as i64,
        mode,
        align_corners: align as i32,
    }
}

pub fn resize_forward(
    gpu: &Gpu,
    a: &ResizeArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.oh * a.ow) as u64;
    launch!(gpu, "resize2d_forward_f32", cfg_elems(n), a, x, y)
}

pub fn resize_backward(
    gpu: &Gpu,
    a: &ResizeArgs,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.planes * a.h * a.w) as u64;
    launch!(gpu, "resize2d_backward_f32", cfg_elems(n), a, dy, dx)
}

/// `UnfoldArgs` for x [n, c, h, w] with the window `p` giving oh × ow positions.
pub fn unfold_args(
    [n, c, h, w]: [usize; 4],
    (oh, ow): (usize, usize),
    p: &UnfoldParams,
) -> UnfoldArgs {
    UnfoldArgs {
        n: n as i64,
        c: c as i64,
        h: h as i64,
        w: w as i64,
        oh: oh as i64,
        ow: ow as i64,
        kh: p.kernel.0 as i32,
        kw: p.kernel.1 as i32,
        stride_h: p.stride.0 as i32,
        stride_w: p.stride.1 as i32,
        pad_h: p.padding.0 as i32,
        pad_w: p.padding.1 as i32,
        dil_h: p.dilation.0 as i32,
        dil_w: p.dilation.1 as i32,
    }
}

/// x [n, c, h, w] -> cols [n, c·kh·kw, oh·ow].
pub fn unfold(
    gpu: &Gpu,
    a: &UnfoldArgs,
    x: &CudaSlice<f32>,
    cols: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.n * a.c * a.kh as i64 * a.kw as i64 * a.oh * a.ow) as u64;
    launch!(gpu, "unfold_forward_f32", cfg_elems(n), a, x, cols)
}

/// cols [n, c·kh·kw, oh·ow] -> x [n, c, h, w], summing overlaps.
pub fn fold(
    gpu: &Gpu,
    a: &UnfoldArgs,
    cols: &CudaSlice<f32>,
    x: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.n * a.c * a.h * a.w) as u64;
    launch!(gpu, "fold_forward_f32", cfg_elems(n), a, cols, x)
}

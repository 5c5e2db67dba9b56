//! Direct kernel launchers over device buffers, shared by the CUDA-vs-CPU test and the kernel
//! benchmark (tests/cuda_vs_cpu.rs, benches/cuda_kernels.rs). Each launcher fills the kernel's
//! parameter struct and picks the launch configuration documented in kernels/README.md; the
//! `Backend` implementation will build on these. Shapes are the caller's responsibility here:
//! the kernels are bounds-checked, but a buffer shorter than the shape says is not.

use super::compile;
use super::kernels::KERNEL_FILES;
use super::params::*;
use crate::error::{Error, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DriverError, LaunchConfig, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn drv(what: &str) -> impl Fn(DriverError) -> Error + '_ {
    move |e| Error::DeviceUnavailable {
        device: "cuda".into(),
        reason: format!("{what}: {e}"),
    }
}

/// Largest grid.y / grid.z (the kernels loop over any excess).
const GRID_YZ_MAX: u64 = 65_535;
/// Cap on 1-D grids: a few waves of blocks per SM; grid-stride loops cover the rest.
const GRID_X_MAX: u64 = 1 << 16;

fn cdiv(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

fn grid_1d(blocks: u64) -> u32 {
    blocks.clamp(1, GRID_X_MAX) as u32
}

fn grid_yz(blocks: u64) -> u32 {
    blocks.clamp(1, GRID_YZ_MAX) as u32
}

fn cfg(grid: (u32, u32, u32), block: (u32, u32, u32)) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: block,
        shared_mem_bytes: 0,
    }
}

/// Grid-stride launch over `n` elements, 256 threads.
fn cfg_elems(n: u64) -> LaunchConfig {
    cfg((grid_1d(cdiv(n, 256)), 1, 1), (256, 1, 1))
}

/// Block-per-row launch over `rows` rows, 256 threads.
fn cfg_rows(rows: u64) -> LaunchConfig {
    cfg((grid_1d(rows), 1, 1), (256, 1, 1))
}

/// Column kernels (PONO, corr_norm): block (NORM_COL_X, NORM_COL_Y) over ⌈stats/32⌉ tiles.
fn cfg_cols(stats: u64) -> LaunchConfig {
    cfg(
        (grid_1d(cdiv(stats, NORM_COL_X as u64)), 1, 1),
        (NORM_COL_X, NORM_COL_Y, 1),
    )
}

/// A CUDA context on GPU 0 with its default stream and the kernel modules compiled on demand
/// (NVRTC, for the GPU's own architecture) and cached for the life of the value.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// "sm_90" etc.
    pub arch: String,
    pub name: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

impl Gpu {
    /// Opens GPU 0, or explains why it cannot (no driver, no NVRTC, no GPU): checks the
    /// libraries before any other cudarc call, which would panic without them.
    pub fn new() -> Result<Gpu> {
        crate::backend::cuda_probe::probe().map_err(|reason| Error::DeviceUnavailable {
            device: "cuda".into(),
            reason,
        })?;
        let ctx = CudaContext::new(0).map_err(drv("CudaContext::new(0)"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(drv("compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            arch: format!("sm_{major}{minor}"),
            name,
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The kernel `symbol`, compiling and loading its file the first time.
    pub fn func(&self, symbol: &str) -> Result<CudaFunction> {
        let file = KERNEL_FILES
            .iter()
            .find(|f| f.symbols.contains(&symbol))
            .ok_or_else(|| Error::invalid("cuda launch", format!("unknown kernel {symbol}")))?;
        let mut mods = self
            .modules
            .lock()
            .map_err(|_| Error::invalid("cuda launch", "module cache poisoned"))?;
        let module = match mods.get(file.name) {
            Some(m) => m.clone(),
            None => {
                let c = compile::compile(file, &self.arch, &[])?;
                let m = self
                    .ctx
                    .load_module(cudarc::nvrtc::Ptx::from_src(c.ptx))
                    .map_err(drv(file.name))?;
                mods.insert(file.name, m.clone());
                m
            }
        };
        module.load_function(symbol).map_err(drv(symbol))
    }

    pub fn upload(&self, host: &[f32]) -> Result<CudaSlice<f32>> {
        self.stream.memcpy_stod(host).map_err(drv("upload"))
    }

    pub fn zeros(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(drv("alloc"))
    }

    /// Uninitialised memory, for buffers a kernel writes in full before anything reads them
    /// (keeps zero-fills out of the timed paths).
    pub fn empty(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: f32 has no invalid bit patterns; callers only pass such buffers as outputs.
        unsafe { self.stream.alloc::<f32>(n.max(1)) }.map_err(drv("alloc"))
    }

    pub fn download(&self, dev: &CudaSlice<f32>) -> Result<Vec<f32>> {
        self.stream.memcpy_dtov(dev).map_err(drv("download"))
    }

    pub fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }
}

/// Launches `$f` with `$cfg` and the listed arguments (each a reference).
macro_rules! launch {
    ($gpu:expr, $sym:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let f = $gpu.func($sym)?;
        let mut b = $gpu.stream.launch_builder(&f);
        $(b.arg($arg);)+
        // SAFETY: the argument list matches the kernel's signature (kernels/README.md and the
        // .cu file) and every buffer holds the elements the parameter struct describes.
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(drv($sym))
    }};
}

/// A null device pointer for optional kernel arguments.
const NULL: u64 = 0;

// ---- matmul -----------------------------------------------------------------------------------

/// C[b] = α·op(A[b])·op(B[b]) + β·C[b] per `p` (leading dims and batch strides in elements).
pub fn matmul(
    gpu: &Gpu,
    p: &MatmulArgs,
    a: &CudaView<f32>,
    b: &CudaView<f32>,
    c: &mut CudaViewMut<f32>,
) -> Result<()> {
    let big = p.m >= 128 && p.n >= 128;
    let (sym, tile) = if big {
        ("matmul_tile128_f32", 128)
    } else {
        ("matmul_tile64_f32", 64)
    };
    let grid = (
        grid_yz(cdiv(p.n as u64, tile)),
        grid_yz(cdiv(p.m as u64, tile)),
        grid_yz(p.batch as u64),
    );
    launch!(gpu, sym, cfg(grid, (MATMUL_THREADS, 1, 1)), p, a, b, c)
}

/// Row-major batched product with optional transposes: op(A)[m,k]·op(B)[k,n], contiguous
/// operands with `batch` slices each (`a_batched`/`b_batched` false broadcasts a matrix).
#[allow(clippy::too_many_arguments)]
pub fn matmul_simple(
    gpu: &Gpu,
    batch: usize,
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    (a_batched, b_batched): (bool, bool),
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
) -> Result<()> {
    let p = MatmulArgs {
        m: m as i64,
        n: n as i64,
        k: k as i64,
        batch: batch as i64,
        lda: if trans_a { m } else { k } as i64,
        ldb: if trans_b { k } else { n } as i64,
        ldc: n as i64,
        stride_a: if a_batched { (m * k) as i64 } else { 0 },
        stride_b: if b_batched { (k * n) as i64 } else { 0 },
        stride_c: (m * n) as i64,
        trans_a: trans_a as i32,
        trans_b: trans_b as i32,
        alpha: 1.0,
        beta: 0.0,
    };
    matmul(gpu, &p, &a.as_view(), &b.as_view(), &mut c.as_view_mut())
}

// ---- softmax ----------------------------------------------------------------------------------

/// Which softmax kernel: `None` picks by row length (block per row from 1024 on).
fn softmax_cfg(rows: usize, len: usize, block: Option<bool>) -> (bool, LaunchConfig) {
    let use_block = block.unwrap_or(len >= 1024);
    let c = if use_block {
        cfg_rows(rows as u64)
    } else {
        cfg(
            (grid_1d(cdiv(rows as u64, SOFTMAX_WARP_ROWS as u64)), 1, 1),
            (32 * SOFTMAX_WARP_ROWS, 1, 1),
        )
    };
    (use_block, c)
}

pub fn softmax_forward(
    gpu: &Gpu,
    rows: usize,
    len: usize,
    block: Option<bool>,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let a = SoftmaxArgs {
        rows: rows as i64,
        len: len as i64,
    };
    let (b, c) = softmax_cfg(rows, len, block);
    let sym = if b {
        "softmax_forward_block_f32"
    } else {
        "softmax_forward_warp_f32"
    };
    launch!(gpu, sym, c, &a, x, y)
}

#[allow(clippy::too_many_arguments)]
pub fn softmax_backward(
    gpu: &Gpu,
    rows: usize,
    len: usize,
    block: Option<bool>,
    y: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let a = SoftmaxArgs {
        rows: rows as i64,
        len: len as i64,
    };
    let (b, c) = softmax_cfg(rows, len, block);
    let sym = if b {
        "softmax_backward_block_f32"
    } else {
        "softmax_backward_warp_f32"
    };
    launch!(gpu, sym, c, &a, y, dy, dx)
}

// ---- normalisation ----------------------------------------------------------------------------

/// Saved statistics on the device (one value per normalised row / column).
pub struct DevStats {
    pub mean: CudaSlice<f32>,
    pub rstd: CudaSlice<f32>,
}

fn instance_args(n: usize, c: usize, hw: usize, eps: f32, w: bool, b: bool) -> NormArgs {
    NormArgs {
        outer: (n * c) as i64,
        red: hw as i64,
        inner: 1,
        channels: c as i64,
        eps,
        ddof: 0,
        has_weight: w as i32,
        has_bias: b as i32,
    }
}

fn pono_args(n: usize, c: usize, hw: usize, eps: f32) -> NormArgs {
    NormArgs {
        outer: n as i64,
        red: c as i64,
        inner: hw as i64,
        channels: c as i64,
        eps,
        ddof: 1,
        has_weight: 0,
        has_bias: 0,
    }
}

/// Instance norm of x [n, c, h·w]; returns the stats ([n·c]).
#[allow(clippy::too_many_arguments)]
pub fn instance_norm_forward(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    eps: f32,
    x: &CudaSlice<f32>,
    weight: Option<&CudaSlice<f32>>,
    bias: Option<&CudaSlice<f32>>,
    y: &mut CudaSlice<f32>,
) -> Result<DevStats> {
    let a = instance_args(n, c, hw, eps, weight.is_some(), bias.is_some());
    let mut st = DevStats {
        mean: gpu.empty(n * c)?,
        rstd: gpu.empty(n * c)?,
    };
    let f = gpu.func("instance_norm_forward_f32")?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&a).arg(x);
    match weight {
        Some(w) => b.arg(w),
        None => b.arg(&NULL),
    };
    match bias {
        Some(v) => b.arg(v),
        None => b.arg(&NULL),
    };
    b.arg(y).arg(&mut st.mean).arg(&mut st.rstd);
    // SAFETY: arguments match instance_norm_forward_f32; buffers hold n·c·hw / c / n·c values.
    unsafe { b.launch(cfg_rows((n * c) as u64)) }
        .map(|_| ())
        .map_err(drv("instance_norm_forward_f32"))?;
    Ok(st)
}

/// (dweight, dbias) when `weight` is given (dbias is always computed alongside).
#[allow(clippy::too_many_arguments)]
pub fn instance_norm_backward(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    weight: Option<&CudaSlice<f32>>,
    st: &DevStats,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<(CudaSlice<f32>, CudaSlice<f32>)> {
    let a = instance_args(n, c, hw, 0.0, weight.is_some(), false);
    let mut sums = gpu.empty(2 * n * c)?;
    let f = gpu.func("instance_norm_backward_f32")?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&a).arg(x);
    match weight {
        Some(w) => b.arg(w),
        None => b.arg(&NULL),
    };
    b.arg(&st.mean).arg(&st.rstd).arg(dy).arg(dx).arg(&mut sums);
    // SAFETY: arguments match instance_norm_backward_f32; row sums hold 2·n·c values.
    unsafe { b.launch(cfg_rows((n * c) as u64)) }
        .map(|_| ())
        .map_err(drv("instance_norm_backward_f32"))?;
    let (mut dw, mut db) = (gpu.empty(c)?, gpu.empty(c)?);
    launch!(
        gpu,
        "instance_norm_backward_affine_f32",
        cfg_elems(c as u64),
        &a,
        &sums,
        &mut dw,
        &mut db
    )?;
    Ok((dw, db))
}

pub fn pono_forward(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    eps: f32,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<DevStats> {
    let a = pono_args(n, c, hw, eps);
    let mut st = DevStats {
        mean: gpu.empty(n * hw)?,
        rstd: gpu.empty(n * hw)?,
    };
    let cf = cfg_cols((n * hw) as u64);
    launch!(
        gpu,
        "pono_forward_f32",
        cf,
        &a,
        x,
        y,
        &mut st.mean,
        &mut st.rstd
    )?;
    Ok(st)
}

pub fn pono_backward(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    st: &DevStats,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let a = pono_args(n, c, hw, 0.0);
    let cf = cfg_cols((n * hw) as u64);
    launch!(
        gpu,
        "pono_backward_f32",
        cf,
        &a,
        x,
        &st.mean,
        &st.rstd,
        dy,
        dx
    )
}

/// Fused SPADE modulation `norm(x)·(1 + γ) + β`, instance (`pono` false) or PONO.
#[allow(clippy::too_many_arguments)]
pub fn spade_forward(
    gpu: &Gpu,
    pono: bool,
    dims: (usize, usize, usize),
    eps: f32,
    x: &CudaSlice<f32>,
    gamma: &CudaSlice<f32>,
    beta: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<DevStats> {
    let (n, c, hw) = dims;
    let (a, stats, sym, cf) = if pono {
        let st = (n * hw) as u64;
        let a = pono_args(n, c, hw, eps);
        (a, n * hw, "spade_modulate_pono_forward_f32", cfg_cols(st))
    } else {
        let a = instance_args(n, c, hw, eps, false, false);
        let cf = cfg_rows((n * c) as u64);
        (a, n * c, "spade_modulate_instance_forward_f32", cf)
    };
    let mut st = DevStats {
        mean: gpu.empty(stats)?,
        rstd: gpu.empty(stats)?,
    };
    launch!(
        gpu,
        sym,
        cf,
        &a,
        x,
        gamma,
        beta,
        y,
        &mut st.mean,
        &mut st.rstd
    )?;
    Ok(st)
}

/// Writes dx and dγ (dβ is dy itself).
#[allow(clippy::too_many_arguments)]
pub fn spade_backward(
    gpu: &Gpu,
    pono: bool,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    gamma: &CudaSlice<f32>,
    st: &DevStats,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
    dgamma: &mut CudaSlice<f32>,
) -> Result<()> {
    let (a, sym, cf) = if pono {
        let a = pono_args(n, c, hw, 0.0);
        (
            a,
            "spade_modulate_pono_backward_f32",
            cfg_cols((n * hw) as u64),
        )
    } else {
        let a = instance_args(n, c, hw, 0.0, false, false);
        let cf = cfg_rows((n * c) as u64);
        (a, "spade_modulate_instance_backward_f32", cf)
    };
    launch!(gpu, sym, cf, &a, x, gamma, &st.mean, &st.rstd, dy, dx, dgamma)
}

// ---- conv2d -----------------------------------------------------------------------------------

/// Which conv kernels: the implicit GEMM (depthwise falls back to direct) or the direct
/// reference rung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    Auto,
    Direct,
}

/// ConvArgs of x [n, c_in, h, w] and w [c_out, c_in/groups, kh, kw] under `p`; None when the
/// output would be empty.
pub fn conv_args(
    x: [usize; 4],
    w: [usize; 4],
    p: &crate::backend::Conv2dParams,
    has_bias: bool,
) -> Option<ConvArgs> {
    let (oh, ow) = p.out_size(x[2], x[3], w[2], w[3])?;
    Some(ConvArgs {
        n: x[0] as i64,
        c_in: x[1] as i64,
        h: x[2] as i64,
        w: x[3] as i64,
        c_out: w[0] as i64,
        oh: oh as i64,
        ow: ow as i64,
        split_len: (x[0] * oh * ow) as i64,
        kh: w[2] as i32,
        kw: w[3] as i32,
        stride_h: p.stride.0 as i32,
        stride_w: p.stride.1 as i32,
        pad_h: p.padding.0 as i32,
        pad_w: p.padding.1 as i32,
        dil_h: p.dilation.0 as i32,
        dil_w: p.dilation.1 as i32,
        groups: p.groups as i32,
        reflect: (p.pad_mode == crate::backend::PadMode::Reflect) as i32,
        has_bias: has_bias as i32,
        splits: 1,
    })
}

fn igemm_cfg(cols: i64, rows: i64, z: i64) -> (bool, LaunchConfig) {
    let big = rows >= 128;
    let t = if big { 128 } else { 64 };
    let grid = (
        grid_1d(cdiv(cols as u64, t)),
        grid_yz(cdiv(rows as u64, t)),
        grid_yz(z as u64),
    );
    (big, cfg(grid, (CONV_THREADS, 1, 1)))
}

pub fn conv_forward(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    x: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    bias: Option<&CudaSlice<f32>>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let depthwise = a.c_in == a.groups as i64;
    let (sym, cf) = if path == ConvPath::Direct || depthwise {
        let n = a.n * a.c_out * a.oh * a.ow;
        ("conv2d_direct_forward_f32", cfg_elems(n as u64))
    } else {
        let (big, cf) = igemm_cfg(
            a.n * a.oh * a.ow,
            a.c_out / a.groups as i64,
            a.groups as i64,
        );
        let s = if big {
            "conv2d_forward_igemm128_f32"
        } else {
            "conv2d_forward_igemm64_f32"
        };
        (s, cf)
    };
    let f = gpu.func(sym)?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(a).arg(x).arg(w);
    match bias {
        Some(v) => b.arg(v),
        None => b.arg(&NULL),
    };
    b.arg(y);
    // SAFETY: arguments match the conv forward kernels; buffers sized per `a`.
    unsafe { b.launch(cf) }.map(|_| ()).map_err(drv(sym))
}

pub fn conv_backward_input(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    dy: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let depthwise = a.c_in == a.groups as i64;
    if path == ConvPath::Direct || depthwise {
        let n = (a.n * a.c_in * a.h * a.w) as u64;
        return launch!(
            gpu,
            "conv2d_direct_backward_input_f32",
            cfg_elems(n),
            a,
            dy,
            w,
            dx
        );
    }
    let (big, cf) = igemm_cfg(a.n * a.h * a.w, a.c_in / a.groups as i64, a.groups as i64);
    let sym = if big {
        "conv2d_backward_input_igemm128_f32"
    } else {
        "conv2d_backward_input_igemm64_f32"
    };
    launch!(gpu, sym, cf, a, dy, w, dx)
}

/// dw [c_out, c_in/groups, kh, kw]; the igemm path splits the n·oh·ow sum when the weight
/// tiles alone would leave the GPU idle, and sums the partials with `reduce_thread_f32`.
pub fn conv_backward_weight(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    x: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dw: &mut CudaSlice<f32>,
) -> Result<()> {
    let cg = a.c_in / a.groups as i64;
    let k = cg * a.kh as i64 * a.kw as i64;
    let wn = a.c_out * k;
    if path == ConvPath::Direct || cg == 1 {
        let cf = cfg_rows(wn as u64);
        return launch!(gpu, "conv2d_direct_backward_weight_f32", cf, a, x, dy, dw);
    }
    let mg = a.c_out / a.groups as i64;
    let p_len = a.n * a.oh * a.ow;
    let t = if mg >= 128 { 128 } else { 64 };
    let tiles = cdiv(k as u64, t) * cdiv(mg as u64, t) * a.groups as u64;
    let want = cdiv(264, tiles).min(cdiv(p_len as u64, 256)).max(1) as i64;
    let split_len = (p_len + want - 1) / want;
    let splits = (p_len + split_len - 1) / split_len;
    let mut sa = *a;
    sa.split_len = split_len;
    sa.splits = splits as i32;
    let (big, cf) = igemm_cfg(k, mg, a.groups as i64 * splits);
    let sym = if big {
        "conv2d_backward_weight_igemm128_f32"
    } else {
        "conv2d_backward_weight_igemm64_f32"
    };
    if splits == 1 {
        return launch!(gpu, sym, cf, &sa, x, dy, dw);
    }
    let mut part = gpu.empty((splits * wn) as usize)?;
    launch!(gpu, sym, cf, &sa, x, dy, &mut part)?;
    let mut r = ReduceArgs {
        out_n: wn,
        red_n: splits,
        kept_rank: 1,
        red_rank: 1,
        op: REDUCE_SUM,
        scale: 1.0,
        ..Default::default()
    };
    r.kept_dims[0] = wn;
    r.kept_strides[0] = 1;
    r.red_dims[0] = splits;
    r.red_strides[0] = wn;
    launch!(
        gpu,
        "reduce_thread_f32",
        cfg_elems(wn as u64),
        &r,
        &part,
        dw
    )
}

pub fn conv_backward_bias(
    gpu: &Gpu,
    a: &ConvArgs,
    dy: &CudaSlice<f32>,
    db: &mut CudaSlice<f32>,
) -> Result<()> {
    launch!(
        gpu,
        "conv2d_backward_bias_f32",
        cfg_rows(a.c_out as u64),
        a,
        dy,
        db
    )
}

// ---- corr_warp --------------------------------------------------------------------------------

/// Sizes of one corr_warp: q [b, c, n], k [b, c, m], v [b, m, v].
#[derive(Clone, Copy, Debug)]
pub struct CorrDims {
    pub b: usize,
    pub c: usize,
    pub n: usize,
    pub m: usize,
    pub v: usize,
}

/// What the forward keeps for the backward: the normalised q̂, k̂ and their norms.
pub struct CorrSaved {
    pub qh: CudaSlice<f32>,
    pub kh: CudaSlice<f32>,
    pub q_norms: CudaSlice<f32>,
    pub k_norms: CudaSlice<f32>,
}

fn corr_norm(
    gpu: &Gpu,
    b: usize,
    c: usize,
    l: usize,
    eps: f32,
    x: &CudaSlice<f32>,
) -> Result<(CudaSlice<f32>, CudaSlice<f32>)> {
    let a = CorrNormArgs {
        b: b as i64,
        c: c as i64,
        l: l as i64,
        eps,
        _pad: 0,
    };
    let (mut xh, mut norms) = (gpu.empty(b * c * l)?, gpu.empty(2 * b * l)?);
    let cf = cfg_cols((b * l) as u64);
    launch!(gpu, "corr_norm_forward_f32", cf, &a, x, &mut xh, &mut norms)?;
    Ok((xh, norms))
}

fn corr_args(d: CorrDims, scale: f32, rows: usize) -> CorrWarpArgs {
    CorrWarpArgs {
        b: d.b as i64,
        c: d.c as i64,
        n: d.n as i64,
        m: d.m as i64,
        v: d.v as i64,
        rows: rows as i64,
        scale,
        _pad: 0,
    }
}

/// Fused forward: out [b, n, v]. Without `normalize`, q̂ and k̂ are copies of q and k.
pub fn corr_warp_forward(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    q: &CudaSlice<f32>,
    k: &CudaSlice<f32>,
    v: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<CorrSaved> {
    let saved = if p.normalize {
        let (qh, q_norms) = corr_norm(gpu, d.b, d.c, d.n, p.eps, q)?;
        let (kh, k_norms) = corr_norm(gpu, d.b, d.c, d.m, p.eps, k)?;
        CorrSaved {
            qh,
            kh,
            q_norms,
            k_norms,
        }
    } else {
        let qh = gpu.stream.clone_dtod(q).map_err(drv("copy q"))?;
        let kh = gpu.stream.clone_dtod(k).map_err(drv("copy k"))?;
        CorrSaved {
            qh,
            kh,
            q_norms: gpu.empty(1)?,
            k_norms: gpu.empty(1)?,
        }
    };
    let a = corr_args(d, p.scale, 0);
    let (mut rmax, mut rinv) = (gpu.empty(d.b * d.n)?, gpu.empty(d.b * d.n)?);
    let grid = (
        grid_1d(cdiv(d.n as u64, CORR_BQ as u64)),
        grid_yz(cdiv(d.v as u64, CORR_VT as u64)),
        grid_yz(d.b as u64),
    );
    let cf = cfg(grid, (CORR_THREADS, 1, 1));
    launch!(
        gpu,
        "corr_warp_forward_fused_f32",
        cf,
        &a,
        &saved.qh,
        &saved.kh,
        v,
        out,
        &mut rmax,
        &mut rinv
    )?;
    Ok(saved)
}

/// Backward by slabs of `slab` query rows (kernels/corr_warp.cu): returns (dq, dk, dv).
#[allow(clippy::too_many_arguments)]
pub fn corr_warp_backward(
    gpu: &Gpu,
    d: CorrDims,
    p: &crate::backend::CorrWarpParams,
    saved: &CorrSaved,
    v: &CudaSlice<f32>,
    dout: &CudaSlice<f32>,
    slab: usize,
) -> Result<(CudaSlice<f32>, CudaSlice<f32>, CudaSlice<f32>)> {
    let (b, c, n, m, vv) = (d.b, d.c, d.n, d.m, d.v);
    let r = slab.clamp(1, n);
    let mut s = gpu.empty(b * r * m)?;
    let mut da = gpu.empty(b * r * m)?;
    let mut dqh = gpu.empty(b * c * n)?;
    let mut dkh = gpu.empty(b * c * m)?;
    let mut dv = gpu.empty(b * m * vv)?;
    let i = |x: usize| x as i64;
    let mm = |mm: usize,
              nn: usize,
              kk: usize,
              lds: (usize, usize, usize),
              st: (usize, usize, usize),
              t: (bool, bool),
              alpha: f32,
              beta: f32| MatmulArgs {
        m: i(mm),
        n: i(nn),
        k: i(kk),
        batch: i(b),
        lda: i(lds.0),
        ldb: i(lds.1),
        ldc: i(lds.2),
        stride_a: i(st.0),
        stride_b: i(st.1),
        stride_c: i(st.2),
        trans_a: t.0 as i32,
        trans_b: t.1 as i32,
        alpha,
        beta,
    };
    let mut r0 = 0;
    while r0 < n {
        let rr = r.min(n - r0);
        let beta = if r0 == 0 { 0.0 } else { 1.0 };
        // 1. S = scale · q̂[:, rows]ᵀ · k̂
        let pa = mm(
            rr,
            m,
            c,
            (n, m, m),
            (c * n, c * m, r * m),
            (true, false),
            p.scale,
            0.0,
        );
        matmul(
            gpu,
            &pa,
            &saved.qh.slice(r0..),
            &saved.kh.as_view(),
            &mut s.as_view_mut(),
        )?;
        // 2. dA = dout[rows] · vᵀ
        let pb = mm(
            rr,
            m,
            vv,
            (vv, vv, m),
            (n * vv, m * vv, r * m),
            (false, true),
            1.0,
            0.0,
        );
        matmul(
            gpu,
            &pb,
            &dout.slice(r0 * vv..),
            &v.as_view(),
            &mut da.as_view_mut(),
        )?;
        // 3. S -> A, dA -> scale·A·(dA − D) per row; a short last slab leaves gaps between
        // the batches' rows of the [b, r, m] buffers, so it goes batch by batch.
        if rr == r {
            let a = corr_args(d, p.scale, b * r);
            let cf = cfg_rows((b * r) as u64);
            launch!(gpu, "corr_warp_backward_rows_f32", cf, &a, &mut s, &mut da)?;
        } else {
            for bb in 0..b {
                let a = corr_args(d, p.scale, rr);
                let off = bb * r * m;
                let mut sv = s.slice_mut(off..off + rr * m);
                let mut dav = da.slice_mut(off..off + rr * m);
                let cf = cfg_rows(rr as u64);
                launch!(
                    gpu,
                    "corr_warp_backward_rows_f32",
                    cf,
                    &a,
                    &mut sv,
                    &mut dav
                )?;
            }
        }
        // 4. dq̂[:, :, rows] = k̂ · dSᵀ
        let pc = mm(
            c,
            rr,
            m,
            (m, m, n),
            (c * m, r * m, c * n),
            (false, true),
            1.0,
            0.0,
        );
        matmul(
            gpu,
            &pc,
            &saved.kh.as_view(),
            &da.as_view(),
            &mut dqh.slice_mut(r0..),
        )?;
        // 5. dk̂ += q̂[:, rows] · dS;  dv += Aᵀ · dout[rows]
        let pd = mm(
            c,
            m,
            rr,
            (n, m, m),
            (c * n, r * m, c * m),
            (false, false),
            1.0,
            beta,
        );
        matmul(
            gpu,
            &pd,
            &saved.qh.slice(r0..),
            &da.as_view(),
            &mut dkh.as_view_mut(),
        )?;
        let pe = mm(
            m,
            vv,
            rr,
            (m, vv, vv),
            (r * m, n * vv, m * vv),
            (true, false),
            1.0,
            beta,
        );
        matmul(
            gpu,
            &pe,
            &s.as_view(),
            &dout.slice(r0 * vv..),
            &mut dv.as_view_mut(),
        )?;
        r0 += rr;
    }
    if !p.normalize {
        return Ok((dqh, dkh, dv));
    }
    // 6. Through the normalisation.
    let back = |l: usize,
                xh: &CudaSlice<f32>,
                norms: &CudaSlice<f32>,
                g: &CudaSlice<f32>|
     -> Result<CudaSlice<f32>> {
        let a = CorrNormArgs {
            b: i(b),
            c: i(c),
            l: i(l),
            eps: p.eps,
            _pad: 0,
        };
        let mut dx = gpu.empty(b * c * l)?;
        launch!(
            gpu,
            "corr_norm_backward_f32",
            cfg_cols((b * l) as u64),
            &a,
            xh,
            norms,
            g,
            &mut dx
        )?;
        Ok(dx)
    };
    let dq = back(n, &saved.qh, &saved.q_norms, &dqh)?;
    let dk = back(m, &saved.kh, &saved.k_norms, &dkh)?;
    Ok((dq, dk, dv))
}

/// The process-wide GPU (GPU 0), opened on first use; the reason it cannot be opened is kept, so
/// later calls answer the same error without retrying the driver.
pub fn global() -> Result<&'static Gpu> {
    static GPU: std::sync::OnceLock<std::result::Result<Gpu, String>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| Gpu::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|reason| Error::DeviceUnavailable {
            device: "cuda".into(),
            reason: reason.clone(),
        })
}

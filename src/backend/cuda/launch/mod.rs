//! Direct kernel launchers over device buffers, shared by the `Backend` implementation
//! (`super::backend`), the CUDA-vs-CPU test and the kernel benchmark (tests/cuda_vs_cpu.rs,
//! benches/cuda_kernels.rs). Each launcher fills the kernel's parameter struct and picks the
//! launch configuration documented in kernels/README.md. Shapes are the caller's responsibility
//! here: the kernels are bounds-checked, but a buffer shorter than the shape says is not.
//! This file holds the `Gpu` (context, stream, modules, memory pool), matmul and softmax; the
//! other families live in the submodules and are re-exported.

use super::kernels::KERNEL_FILES;
use super::params::*;
use super::pool::{DeviceBuf, MemStats, Pool};
use super::ptx_cache;
use crate::error::{Error, Result};
use cudarc::driver::result::memset_d8_async;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DevicePtrMut, DriverError, LaunchArgs, LaunchConfig, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A failed driver call on the open device; running out of memory says what needs less.
fn drv(what: &str) -> impl Fn(DriverError) -> Error + '_ {
    move |e| {
        let hint = match e.0 {
            cudarc::driver::sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                " (out of GPU memory: a smaller --batch, a smaller config or --precision bf16 \
                 needs less)"
            }
            _ => "",
        };
        Error::DeviceFault {
            what: what.into(),
            detail: format!("{e}{hint}"),
        }
    }
}

/// Opening the device failed: it is not available.
fn unavailable(what: &str) -> impl Fn(DriverError) -> Error + '_ {
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
    pool: Pool<CudaSlice<f32>>,
    /// While set, every launch records two events into `launches` ([`Gpu::set_profiling`]).
    profiling: AtomicBool,
    launches: Mutex<Vec<(&'static str, CudaEvent, CudaEvent)>>,
}

impl Gpu {
    /// Opens GPU 0, or explains why it cannot (no driver, no NVRTC, no GPU): checks the
    /// libraries before any other cudarc call, which would panic without them.
    pub fn new() -> Result<Gpu> {
        crate::backend::cuda_probe::probe().map_err(|reason| Error::DeviceUnavailable {
            device: "cuda".into(),
            reason,
        })?;
        let ctx = CudaContext::new(0).map_err(unavailable("CudaContext::new(0)"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(unavailable("compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            arch: format!("sm_{major}{minor}"),
            name,
            modules: Mutex::new(HashMap::new()),
            pool: Pool::default(),
            profiling: AtomicBool::new(false),
            launches: Mutex::new(Vec::new()),
        })
    }

    /// Launches kernel `sym` with the arguments pushed on `b`; while profiling, between two
    /// recorded events.
    ///
    /// # Safety
    /// The arguments on `b` must match the kernel's signature, and every buffer must hold the
    /// elements the kernel reads or writes under `cfg`.
    unsafe fn launch(
        &self,
        sym: &'static str,
        b: &mut LaunchArgs,
        cfg: LaunchConfig,
    ) -> Result<()> {
        let profiling = self.profiling.load(Ordering::Relaxed);
        if profiling {
            b.record_kernel_launch(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        }
        // SAFETY: the caller's guarantee.
        let events = unsafe { b.launch(cfg) }.map_err(drv(sym))?;
        if let (true, Some((start, end))) = (profiling, events) {
            self.launches
                .lock()
                .map_err(|_| Error::invalid("cuda profile", "profile lock poisoned"))?
                .push((sym, start, end));
        }
        Ok(())
    }

    /// Starts (and clears) or stops the per-kernel profile: while on, each launch records two
    /// CUDA events, which costs a little launch overhead; a profiling aid, not for timed runs.
    pub fn set_profiling(&self, on: bool) {
        if on {
            if let Ok(mut l) = self.launches.lock() {
                l.clear();
            }
        }
        self.profiling.store(on, Ordering::Relaxed);
    }

    /// The kernels launched while profiling, by total GPU time, longest first; clears the list.
    /// Synchronises the stream.
    pub fn take_profile(&self) -> Result<Vec<KernelTime>> {
        self.sync()?;
        let launches = std::mem::take(
            &mut *self
                .launches
                .lock()
                .map_err(|_| Error::invalid("cuda profile", "profile lock poisoned"))?,
        );
        let mut by_kernel: HashMap<&'static str, KernelTime> = HashMap::new();
        for (sym, start, end) in launches {
            let ms = start.elapsed_ms(&end).map_err(drv("profile event"))? as f64;
            let k = by_kernel.entry(sym).or_insert(KernelTime {
                kernel: sym.to_string(),
                launches: 0,
                ms: 0.0,
            });
            k.launches += 1;
            k.ms += ms;
        }
        let mut out: Vec<KernelTime> = by_kernel.into_values().collect();
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms).then(a.kernel.cmp(&b.kernel)));
        Ok(out)
    }

    /// The kernel `symbol`, compiling (or reading the PTX disk cache) and loading its file the
    /// first time.
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
                let ptx = ptx_cache::compile_cached(file, &self.arch)?;
                let m = self
                    .ctx
                    .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
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

    /// Compiles and loads every kernel file (a no-op for those already loaded).
    pub fn load_all(&self) -> Result<()> {
        for f in KERNEL_FILES {
            self.func(f.symbols[0])?;
        }
        Ok(())
    }

    // ---- pooled memory ------------------------------------------------------------------------

    /// A pooled buffer of at least `n` elements (uninitialised: for outputs a kernel writes in
    /// full), from the cache when a buffer of its bucket is free. With `ENGINE_POOL_POISON=1`
    /// it comes filled with NaN (see [`poison_pool`]).
    pub fn alloc(&self, n: usize) -> Result<DeviceBuf> {
        let mut b = self.pool.alloc(n, |len| {
            // SAFETY: f32 has no invalid bit patterns; callers only use such buffers as outputs.
            unsafe { self.stream.alloc::<f32>(len) }.map_err(drv("alloc"))
        })?;
        if poison_pool() {
            let bytes = b.len() * std::mem::size_of::<f32>();
            let (ptr, _record) = b.device_ptr_mut(&self.stream);
            // SAFETY: ptr addresses the buffer's `bytes` bytes on this stream.
            unsafe { memset_d8_async(ptr, 0xff, bytes, self.stream.cu_stream()) }
                .map_err(drv("memset"))?;
        }
        Ok(b)
    }

    /// A pooled buffer whose first `n` elements are zero.
    pub fn alloc_zeros(&self, n: usize) -> Result<DeviceBuf> {
        let mut b = self.alloc(n)?;
        self.stream.memset_zeros(&mut *b).map_err(drv("memset"))?;
        Ok(b)
    }

    /// A pooled copy of `host` (one padding element when it is empty).
    pub fn upload_buf(&self, host: &[f32]) -> Result<DeviceBuf> {
        let mut b = self.alloc(host.len())?;
        if !host.is_empty() {
            let mut dst = b.slice_mut(0..host.len());
            self.stream
                .memcpy_htod(host, &mut dst)
                .map_err(drv("upload"))?;
        }
        Ok(b)
    }

    /// A pooled copy of the first `n` elements of `src`.
    pub fn copy_buf(&self, src: &CudaSlice<f32>, n: usize) -> Result<DeviceBuf> {
        let mut b = self.alloc(n)?;
        if n > 0 {
            let mut dst = b.slice_mut(0..n);
            self.stream
                .memcpy_dtod(&src.slice(0..n), &mut dst)
                .map_err(drv("copy"))?;
        }
        Ok(b)
    }

    /// Counts a buffer from a plain launcher as pool memory; it is recycled when its size is a
    /// bucket size and freed otherwise.
    pub fn adopt(&self, s: CudaSlice<f32>) -> DeviceBuf {
        self.pool.adopt(s)
    }

    /// The first `n` elements of `dev` on the host.
    pub fn download_n(&self, dev: &CudaSlice<f32>, n: usize) -> Result<Vec<f32>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.stream
            .memcpy_dtov(&dev.slice(0..n))
            .map_err(drv("download"))
    }

    /// Bytes in use / peak / cached and allocation counts of this GPU's pool.
    pub fn mem_stats(&self) -> MemStats {
        self.pool.stats()
    }

    /// Gives the cached (free) buffers back to the driver; returns the bytes released.
    pub fn release_cached(&self) -> u64 {
        self.pool.release_cached()
    }
}

/// Whether `ENGINE_POOL_POISON=1`: every pooled buffer is then handed out filled with NaN
/// (0xff bytes), so a kernel that reads an element of a buffer nobody wrote shows NaN even when
/// the buffer held an earlier owner's values. A test setting (the emulated-driver tests set it);
/// it costs a memset per allocation.
pub fn poison_pool() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ENGINE_POOL_POISON").is_ok_and(|v| v == "1"))
}

/// Launches `$f` with `$cfg` and the listed arguments (each a reference).
macro_rules! launch {
    ($gpu:expr, $sym:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let f = $gpu.func($sym)?;
        let mut b = $gpu.stream.launch_builder(&f);
        $(b.arg($arg);)+
        // SAFETY: the argument list matches the kernel's signature (kernels/README.md and the
        // .cu file) and every buffer holds the elements the parameter struct describes.
        unsafe { $gpu.launch($sym, &mut b, $cfg) }
    }};
}

/// A null device pointer for optional kernel arguments.
const NULL: u64 = 0;

/// Pushes `v`, or a null pointer for an absent optional buffer.
fn arg_or_null<'b>(b: &mut cudarc::driver::LaunchArgs<'b>, v: Option<&'b CudaSlice<f32>>) {
    match v {
        Some(v) => b.arg(v),
        None => b.arg(&NULL),
    };
}

mod conv;
mod corr_warp;
mod elementwise;
mod layout;
mod norm;
mod profile;
mod reduce;
mod spatial;
mod train;

pub use conv::*;
pub use corr_warp::*;
pub use elementwise::*;
pub use layout::*;
pub use norm::*;
pub use profile::*;
pub use reduce::*;
pub use spatial::*;
pub use train::*;

// ---- matmul -----------------------------------------------------------------------------------

/// The matmul kernel for `p` at `prec` and its square tile: 128 when m and n both reach it.
pub fn matmul_kernel(p: &MatmulArgs, prec: crate::backend::Precision) -> (&'static str, u64) {
    let big = p.m >= 128 && p.n >= 128;
    let tf32 = prec.tf32_products() && tf32_applies(p.m, p.n, p.k);
    match (big, tf32) {
        (true, false) => ("matmul_tile128_f32", 128),
        (false, false) => ("matmul_tile64_f32", 64),
        (true, true) => ("matmul_tile128_tf32", 128),
        (false, true) => ("matmul_tile64_tf32", 64),
    }
}

/// C[b] = α·op(A[b])·op(B[b]) + β·C[b] per `p` (leading dims and batch strides in elements), at
/// `prec` (tf32 tensor cores where `tf32_products` and `tf32_applies`).
pub fn matmul(
    gpu: &Gpu,
    p: &MatmulArgs,
    prec: crate::backend::Precision,
    a: &CudaView<f32>,
    b: &CudaView<f32>,
    c: &mut CudaViewMut<f32>,
) -> Result<()> {
    let (sym, tile) = matmul_kernel(p, prec);
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
    matmul(
        gpu,
        &p,
        crate::backend::precision(),
        &a.as_view(),
        &b.as_view(),
        &mut c.as_view_mut(),
    )
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

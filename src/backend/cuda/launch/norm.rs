//! Normalisation launchers: instance norm, PONO and the fused SPADE modulation.

use super::*;

// ---- normalisation ----------------------------------------------------------------------------

/// Saved statistics on the device (one value per normalised row / column), pooled.
pub struct DevStats {
    pub mean: DeviceBuf,
    pub rstd: DeviceBuf,
}

/// Borrowed statistics, for the backwards (from a `DevStats` or from two tensors' buffers).
#[derive(Clone, Copy)]
pub struct StatsRef<'a> {
    pub mean: &'a CudaSlice<f32>,
    pub rstd: &'a CudaSlice<f32>,
}

impl<'a> From<&'a DevStats> for StatsRef<'a> {
    fn from(s: &'a DevStats) -> Self {
        StatsRef {
            mean: &s.mean,
            rstd: &s.rstd,
        }
    }
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

/// The number of chunks of a row of `hw` elements when it takes the chunked kernels.
fn chunked(hw: usize) -> Option<usize> {
    (hw > NORM_CHUNK as usize).then(|| hw.div_ceil(NORM_CHUNK as usize))
}

/// The chunked kernels' grid: x over a row's chunks, y over the rows (both loop).
fn cfg_chunks(rows: usize, chunks: usize) -> LaunchConfig {
    cfg(
        (grid_1d(chunks as u64), grid_yz(rows as u64), 1),
        (256, 1, 1),
    )
}

/// Each chunk's Welford statistics [rows, chunks, 3], the chunked forwards' first pass.
fn chunk_stats(
    gpu: &Gpu,
    a: &NormArgs,
    rows: usize,
    chunks: usize,
    x: &CudaSlice<f32>,
) -> Result<DeviceBuf> {
    let mut part = gpu.alloc(3 * rows * chunks)?;
    let cf = cfg_chunks(rows, chunks);
    launch!(gpu, "norm_row_stats_chunks_f32", cf, a, x, &mut *part)?;
    Ok(part)
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
        mean: gpu.alloc(n * c)?,
        rstd: gpu.alloc(n * c)?,
    };
    let (sym, cf, part) = match chunked(hw) {
        None => ("instance_norm_forward_f32", cfg_rows((n * c) as u64), None),
        Some(k) => (
            "instance_norm_forward_chunks_f32",
            cfg_chunks(n * c, k),
            Some(chunk_stats(gpu, &a, n * c, k, x)?),
        ),
    };
    let f = gpu.func(sym)?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&a).arg(x);
    arg_or_null(&mut b, weight);
    arg_or_null(&mut b, bias);
    if let Some(p) = &part {
        b.arg(&**p);
    }
    b.arg(y).arg(&mut *st.mean).arg(&mut *st.rstd);
    // SAFETY: arguments match the instance norm forward kernel `sym` (the chunked one takes the
    // partial statistics before y); buffers hold n·c·hw / c / n·c values.
    unsafe { gpu.launch(sym, &mut b, cf) }?;
    Ok(st)
}

/// (dweight, dbias) when `weight` is given (dbias is always computed alongside).
#[allow(clippy::too_many_arguments)]
pub fn instance_norm_backward<'a>(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    weight: Option<&CudaSlice<f32>>,
    st: impl Into<StatsRef<'a>>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<(DeviceBuf, DeviceBuf)> {
    let st = st.into();
    let a = instance_args(n, c, hw, 0.0, weight.is_some(), false);
    let mut sums = gpu.alloc(2 * n * c)?;
    let (sym, cf, part) = match chunked(hw) {
        None => ("instance_norm_backward_f32", cfg_rows((n * c) as u64), None),
        Some(k) => {
            let mut part = gpu.alloc(2 * n * c * k)?;
            let (sym, cf) = ("instance_norm_grad_chunks_f32", cfg_chunks(n * c, k));
            let f = gpu.func(sym)?;
            let mut b = gpu.stream.launch_builder(&f);
            b.arg(&a).arg(x);
            arg_or_null(&mut b, weight);
            b.arg(st.mean).arg(st.rstd).arg(dy).arg(&mut *part);
            // SAFETY: arguments match instance_norm_grad_chunks_f32; part holds 2·n·c·k values.
            unsafe { gpu.launch(sym, &mut b, cf) }?;
            ("instance_norm_backward_chunks_f32", cf, Some(part))
        }
    };
    let f = gpu.func(sym)?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&a).arg(x);
    arg_or_null(&mut b, weight);
    b.arg(st.mean).arg(st.rstd).arg(dy);
    if let Some(p) = &part {
        b.arg(&**p);
    }
    b.arg(dx).arg(&mut *sums);
    // SAFETY: arguments match the instance norm backward kernel `sym` (the chunked one takes the
    // partial sums before dx); row sums hold 2·n·c values.
    unsafe { gpu.launch(sym, &mut b, cf) }?;
    let (mut dw, mut db) = (gpu.alloc(c)?, gpu.alloc(c)?);
    launch!(
        gpu,
        "instance_norm_backward_affine_f32",
        cfg_elems(c as u64),
        &a,
        &*sums,
        &mut *dw,
        &mut *db
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
        mean: gpu.alloc(n * hw)?,
        rstd: gpu.alloc(n * hw)?,
    };
    let cf = cfg_cols((n * hw) as u64);
    launch!(
        gpu,
        "pono_forward_f32",
        cf,
        &a,
        x,
        y,
        &mut *st.mean,
        &mut *st.rstd
    )?;
    Ok(st)
}

pub fn pono_backward<'a>(
    gpu: &Gpu,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    st: impl Into<StatsRef<'a>>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let st = st.into();
    let a = pono_args(n, c, hw, 0.0);
    let cf = cfg_cols((n * hw) as u64);
    launch!(
        gpu,
        "pono_backward_f32",
        cf,
        &a,
        x,
        st.mean,
        st.rstd,
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
        mean: gpu.alloc(stats)?,
        rstd: gpu.alloc(stats)?,
    };
    let (mean, rstd) = (&mut *st.mean, &mut *st.rstd);
    match chunked(hw).filter(|_| !pono) {
        None => launch!(gpu, sym, cf, &a, x, gamma, beta, y, mean, rstd)?,
        Some(k) => {
            let part = chunk_stats(gpu, &a, n * c, k, x)?;
            let (sym, cf) = (
                "spade_modulate_instance_forward_chunks_f32",
                cfg_chunks(n * c, k),
            );
            launch!(gpu, sym, cf, &a, x, gamma, beta, &*part, y, mean, rstd)?
        }
    }
    Ok(st)
}

/// Writes dx and dγ (dβ is dy itself).
#[allow(clippy::too_many_arguments)]
pub fn spade_backward<'a>(
    gpu: &Gpu,
    pono: bool,
    (n, c, hw): (usize, usize, usize),
    x: &CudaSlice<f32>,
    gamma: &CudaSlice<f32>,
    st: impl Into<StatsRef<'a>>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
    dgamma: &mut CudaSlice<f32>,
) -> Result<()> {
    let st = st.into();
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
    let Some(k) = chunked(hw).filter(|_| !pono) else {
        return launch!(gpu, sym, cf, &a, x, gamma, st.mean, st.rstd, dy, dx, dgamma);
    };
    let mut part = gpu.alloc(2 * n * c * k)?;
    let cf = cfg_chunks(n * c, k);
    let (mean, rstd) = (st.mean, st.rstd);
    let sym = "spade_modulate_instance_grad_chunks_f32";
    launch!(gpu, sym, cf, &a, x, gamma, mean, rstd, dy, &mut *part)?;
    let sym = "spade_modulate_instance_backward_chunks_f32";
    launch!(gpu, sym, cf, &a, x, gamma, mean, rstd, dy, &*part, dx, dgamma)
}

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
    b.arg(y).arg(&mut *st.mean).arg(&mut *st.rstd);
    // SAFETY: arguments match instance_norm_forward_f32; buffers hold n·c·hw / c / n·c values.
    unsafe { b.launch(cfg_rows((n * c) as u64)) }
        .map(|_| ())
        .map_err(drv("instance_norm_forward_f32"))?;
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
    let f = gpu.func("instance_norm_backward_f32")?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&a).arg(x);
    match weight {
        Some(w) => b.arg(w),
        None => b.arg(&NULL),
    };
    b.arg(st.mean).arg(st.rstd).arg(dy).arg(dx).arg(&mut *sums);
    // SAFETY: arguments match instance_norm_backward_f32; row sums hold 2·n·c values.
    unsafe { b.launch(cfg_rows((n * c) as u64)) }
        .map(|_| ())
        .map_err(drv("instance_norm_backward_f32"))?;
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
    launch!(
        gpu,
        sym,
        cf,
        &a,
        x,
        gamma,
        beta,
        y,
        &mut *st.mean,
        &mut *st.rstd
    )?;
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
    launch!(gpu, sym, cf, &a, x, gamma, st.mean, st.rstd, dy, dx, dgamma)
}

//! conv2d launchers: implicit GEMM and the direct reference rung.

use super::*;

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
    let mut part = gpu.alloc((splits * wn) as usize)?;
    launch!(gpu, sym, cf, &sa, x, dy, &mut *part)?;
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
        &*part,
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

//! conv2d launchers: implicit GEMM (f32 SIMT, or tf32 tensor cores at a precision whose
//! `tf32_products()` holds: Tf32, Bf16) and the direct reference rung. Each launcher takes the
//! precision explicitly (the backend passes the process-wide `precision()`).

use super::*;
use crate::backend::precision::Precision;

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

/// The three GEMM views of a conv (kernels/conv.cu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvOp {
    Forward,
    BackwardInput,
    BackwardWeight,
}

/// (rows, columns, reduction length) of the per-group implicit GEMM of `op`.
fn conv_gemm(op: ConvOp, a: &ConvArgs) -> (i64, i64, i64) {
    let groups = (a.groups as i64).max(1);
    let (cg, mg) = (a.c_in / groups, a.c_out / groups);
    let taps = a.kh as i64 * a.kw as i64;
    match op {
        ConvOp::Forward => (mg, a.n * a.oh * a.ow, cg * taps),
        ConvOp::BackwardInput => (cg, a.n * a.h * a.w, mg * taps),
        ConvOp::BackwardWeight => (mg, cg * taps, a.n * a.oh * a.ow),
    }
}

/// Whether a GEMM of `rows` × `cols` summing `k` products goes to the tf32 tensor cores: below
/// one m16 tile of rows or columns, or one k8 step, the padding would be most of the work, and
/// the f32 kernels stay.
pub fn tf32_applies(rows: i64, cols: i64, k: i64) -> bool {
    rows >= 16 && cols >= 16 && k >= 8
}

/// The kernel a conv launch of `op` runs: the direct kernel on the Direct path and for
/// depthwise convs (c_in/groups = 1), else the 128- or 64-wide implicit GEMM (by the GEMM's
/// rows, as `igemm_cfg` sizes its grid), on tf32 tensor cores where the precision allows them
/// (`tf32_products`) and `tf32_applies`.
pub fn conv_kernel(op: ConvOp, a: &ConvArgs, path: ConvPath, prec: Precision) -> &'static str {
    let depthwise = a.c_in == a.groups as i64;
    if path == ConvPath::Direct || depthwise {
        return match op {
            ConvOp::Forward => "conv2d_direct_forward_f32",
            ConvOp::BackwardInput => "conv2d_direct_backward_input_f32",
            ConvOp::BackwardWeight => "conv2d_direct_backward_weight_f32",
        };
    }
    let (rows, cols, k) = conv_gemm(op, a);
    let big = rows >= 128;
    let tf32 = prec.tf32_products() && tf32_applies(rows, cols, k);
    match (op, big, tf32) {
        (ConvOp::Forward, true, false) => "conv2d_forward_igemm128_f32",
        (ConvOp::Forward, false, false) => "conv2d_forward_igemm64_f32",
        (ConvOp::Forward, true, true) => "conv2d_forward_igemm128_tf32",
        (ConvOp::Forward, false, true) => "conv2d_forward_igemm64_tf32",
        (ConvOp::BackwardInput, true, false) => "conv2d_backward_input_igemm128_f32",
        (ConvOp::BackwardInput, false, false) => "conv2d_backward_input_igemm64_f32",
        (ConvOp::BackwardInput, true, true) => "conv2d_backward_input_igemm128_tf32",
        (ConvOp::BackwardInput, false, true) => "conv2d_backward_input_igemm64_tf32",
        (ConvOp::BackwardWeight, true, false) => "conv2d_backward_weight_igemm128_f32",
        (ConvOp::BackwardWeight, false, false) => "conv2d_backward_weight_igemm64_f32",
        (ConvOp::BackwardWeight, true, true) => "conv2d_backward_weight_igemm128_tf32",
        (ConvOp::BackwardWeight, false, true) => "conv2d_backward_weight_igemm64_tf32",
    }
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

/// y = conv(x, w) + bias at `prec` (tf32 tensor cores where it allows them and the shape fits).
#[allow(clippy::too_many_arguments)]
pub fn conv_forward(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    prec: Precision,
    x: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    bias: Option<&CudaSlice<f32>>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let sym = conv_kernel(ConvOp::Forward, a, path, prec);
    let cf = if sym.starts_with("conv2d_direct") {
        cfg_elems((a.n * a.c_out * a.oh * a.ow) as u64)
    } else {
        let cols = a.n * a.oh * a.ow;
        igemm_cfg(cols, a.c_out / a.groups as i64, a.groups as i64).1
    };
    let f = gpu.func(sym)?;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(a).arg(x).arg(w);
    arg_or_null(&mut b, bias);
    b.arg(y);
    // SAFETY: arguments match the conv forward kernels; buffers sized per `a`.
    unsafe { gpu.launch(sym, &mut b, cf) }
}

/// dx of the conv at `prec`.
pub fn conv_backward_input(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    prec: Precision,
    dy: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let sym = conv_kernel(ConvOp::BackwardInput, a, path, prec);
    let cf = if sym.starts_with("conv2d_direct") {
        cfg_elems((a.n * a.c_in * a.h * a.w) as u64)
    } else {
        igemm_cfg(a.n * a.h * a.w, a.c_in / a.groups as i64, a.groups as i64).1
    };
    launch!(gpu, sym, cf, a, dy, w, dx)
}

/// dw [c_out, c_in/groups, kh, kw] at `prec`; the igemm path splits the n·oh·ow sum when the
/// weight tiles alone would leave the GPU idle, and sums the partials with `reduce_thread_f32`.
pub fn conv_backward_weight(
    gpu: &Gpu,
    a: &ConvArgs,
    path: ConvPath,
    prec: Precision,
    x: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dw: &mut CudaSlice<f32>,
) -> Result<()> {
    let cg = a.c_in / a.groups as i64;
    let k = cg * a.kh as i64 * a.kw as i64;
    let wn = a.c_out * k;
    let sym = conv_kernel(ConvOp::BackwardWeight, a, path, prec);
    if sym.starts_with("conv2d_direct") {
        let cf = cfg_rows(wn as u64);
        return launch!(gpu, sym, cf, a, x, dy, dw);
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
    let cf = igemm_cfg(k, mg, a.groups as i64 * splits).1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Conv2dParams, PadMode};

    fn args(x: [usize; 4], w: [usize; 4], stride: usize, pad: usize, groups: usize) -> ConvArgs {
        let p = Conv2dParams {
            stride: (stride, stride),
            padding: (pad, pad),
            groups,
            pad_mode: PadMode::Zeros,
            ..Default::default()
        };
        conv_args(x, w, &p, true).expect("a non-empty conv")
    }

    const OPS: [ConvOp; 3] = [
        ConvOp::Forward,
        ConvOp::BackwardInput,
        ConvOp::BackwardWeight,
    ];

    /// The conv shapes of tests/cuda_vs_cpu.rs and of the benchmark.
    fn cases() -> Vec<ConvArgs> {
        let mut v = vec![
            args([1, 3, 7, 9], [5, 3, 3, 3], 1, 1, 1),
            args([2, 4, 9, 7], [6, 4, 3, 3], 2, 1, 1),
            args([1, 6, 7, 5], [4, 3, 3, 3], 2, 1, 2),
            args([2, 8, 9, 11], [8, 1, 3, 3], 1, 1, 8),
            args([1, 5, 6, 7], [10, 1, 3, 3], 2, 1, 5),
            args([1, 3, 5, 5], [2, 3, 1, 1], 1, 0, 1),
            args([2, 32, 20, 19], [130, 32, 3, 3], 1, 1, 1),
            args([1, 130, 10, 9], [16, 130, 3, 3], 1, 1, 1),
            args([4, 8, 32, 32], [8, 8, 3, 3], 1, 1, 1),
            args([4, 3, 1, 1], [5, 3, 1, 1], 1, 0, 1),
        ];
        for (c, hw) in [(64, 256), (128, 128), (256, 64), (512, 32)] {
            v.push(args([4, c, hw, hw], [c, c, 3, 3], 1, 1, 1));
        }
        v
    }

    #[test]
    fn f32_precision_never_picks_a_tensor_core_kernel() {
        for a in cases() {
            for op in OPS {
                for path in [ConvPath::Auto, ConvPath::Direct] {
                    let sym = conv_kernel(op, &a, path, Precision::F32);
                    assert!(sym.ends_with("_f32") && !sym.ends_with("_tf32"), "{sym}");
                }
            }
        }
    }

    #[test]
    fn tf32_goes_to_the_tensor_cores_except_depthwise_tiny_and_direct() {
        let t = Precision::Tf32;
        // The benchmark shapes: every view on tf32, 128-wide from 128 channels on.
        for a in cases().iter().skip(10) {
            for op in OPS {
                let want = if a.c_out >= 128 {
                    "igemm128_tf32"
                } else {
                    "igemm64_tf32"
                };
                assert!(
                    conv_kernel(op, a, ConvPath::Auto, t).ends_with(want),
                    "{a:?}"
                );
                let direct = conv_kernel(op, a, ConvPath::Direct, t);
                assert!(direct.starts_with("conv2d_direct"), "{direct}");
            }
        }
        // Depthwise: direct f32 kernels at any precision.
        let dw = args([2, 8, 9, 11], [8, 1, 3, 3], 1, 1, 8);
        for op in OPS {
            assert!(conv_kernel(op, &dw, ConvPath::Auto, t).starts_with("conv2d_direct"));
        }
        // 5 output channels (< one m16 tile): forward and weight grad keep f32; the input
        // gradient's GEMM has 3 rows, f32 too.
        let tiny = args([1, 3, 7, 9], [5, 3, 3, 3], 1, 1, 1);
        for op in OPS {
            assert!(conv_kernel(op, &tiny, ConvPath::Auto, t).ends_with("igemm64_f32"));
        }
        // 130 → 16 channels: forward 16 rows (tf32), input grad 130 rows (128-wide tf32).
        let wide = args([1, 130, 10, 9], [16, 130, 3, 3], 1, 1, 1);
        let f = |op| conv_kernel(op, &wide, ConvPath::Auto, t);
        assert_eq!(f(ConvOp::Forward), "conv2d_forward_igemm64_tf32");
        assert_eq!(
            f(ConvOp::BackwardInput),
            "conv2d_backward_input_igemm128_tf32"
        );
        assert_eq!(
            f(ConvOp::BackwardWeight),
            "conv2d_backward_weight_igemm64_tf32"
        );
        // A 1x1 conv over 3 input channels sums 3 products: f32.
        let k3 = args([2, 3, 20, 20], [32, 3, 1, 1], 1, 0, 1);
        assert!(conv_kernel(ConvOp::Forward, &k3, ConvPath::Auto, t).ends_with("_f32"));
    }

    #[test]
    fn the_kernel_tile_matches_the_launch_grid() {
        for a in cases() {
            for op in OPS {
                for prec in [Precision::F32, Precision::Tf32] {
                    let sym = conv_kernel(op, &a, ConvPath::Auto, prec);
                    if sym.starts_with("conv2d_direct") {
                        continue;
                    }
                    let (rows, cols, _) = conv_gemm(op, &a);
                    let (big, _) = igemm_cfg(cols, rows, 1);
                    assert_eq!(sym.contains("igemm128"), big, "{sym} for {rows} rows");
                }
            }
        }
    }

    #[test]
    fn matmul_picks_tf32_only_when_asked_and_not_tiny() {
        let mm = |m: i64, n: i64, k: i64| MatmulArgs {
            m,
            n,
            k,
            batch: 1,
            ..Default::default()
        };
        for (m, n, k) in [(1, 1, 1), (33, 65, 17), (130, 129, 70), (8192, 8192, 8192)] {
            assert!(matmul_kernel(&mm(m, n, k), Precision::F32)
                .0
                .ends_with("_f32"));
        }
        let t = Precision::Tf32;
        assert_eq!(
            matmul_kernel(&mm(128, 128, 128), t),
            ("matmul_tile128_tf32", 128)
        );
        assert_eq!(
            matmul_kernel(&mm(33, 65, 17), t),
            ("matmul_tile64_tf32", 64)
        );
        assert_eq!(
            matmul_kernel(&mm(130, 100, 8), t),
            ("matmul_tile64_tf32", 64)
        );
        for (m, n, k) in [(1, 200, 9), (257, 3, 300), (5, 7, 3), (64, 64, 7)] {
            assert!(
                matmul_kernel(&mm(m, n, k), t).0.ends_with("_f32"),
                "{m}x{n}x{k}"
            );
        }
    }
}

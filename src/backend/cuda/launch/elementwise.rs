//! Elementwise launchers: unary maps and their fused backward, binary ops (same shape or
//! broadcast), PReLU forward and backward.

use super::layout::coalesce;
use super::*;
use crate::backend::{BinaryOp, UnaryOp};

/// y = op(x) over `n` elements.
pub fn unary(
    gpu: &Gpu,
    op: UnaryOp,
    n: usize,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let (code, scalar) = unary_code(op);
    let a = UnaryArgs {
        n: n as i64,
        op: code,
        scalar,
    };
    launch!(gpu, "unary_forward_f32", cfg_elems(n as u64), &a, x, y)
}

/// dx = op'(x)·dy over `n` elements (y = op(x) for the ops whose derivative uses it).
pub fn unary_backward(
    gpu: &Gpu,
    op: UnaryOp,
    n: usize,
    (x, y, dy): (&CudaSlice<f32>, &CudaSlice<f32>, &CudaSlice<f32>),
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let (code, scalar) = unary_code(op);
    let a = UnaryArgs {
        n: n as i64,
        op: code,
        scalar,
    };
    launch!(
        gpu,
        "unary_backward_f32",
        cfg_elems(n as u64),
        &a,
        x,
        y,
        dy,
        dx
    )
}

/// y = a op b, all three of `n` elements.
pub fn binary_same(
    gpu: &Gpu,
    op: BinaryOp,
    n: usize,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let args = BinaryArgs {
        n: n as i64,
        op: binary_code(op),
        ..Default::default()
    };
    launch!(gpu, "binary_same_f32", cfg_elems(n as u64), &args, a, b, y)
}

/// `BinaryArgs` for an output of `dims` reading a and b at strides `sa`, `sb` (0 = broadcast),
/// dims merged where both operands allow.
pub fn binary_args(op: BinaryOp, dims: &[usize], sa: &[usize], sb: &[usize]) -> Result<BinaryArgs> {
    let (d, [a, b]) = coalesce(dims, [sa, sb]);
    if d.len() > MAX_RANK {
        return Err(Error::invalid(
            "binary",
            format!("{dims:?} needs more than {MAX_RANK} dims after merging"),
        ));
    }
    let mut args = BinaryArgs {
        n: dims.iter().product::<usize>() as i64,
        rank: d.len() as i32,
        op: binary_code(op),
        ..Default::default()
    };
    for i in 0..d.len() {
        args.dims[i] = d[i] as i64;
        args.strides_a[i] = a[i] as i64;
        args.strides_b[i] = b[i] as i64;
    }
    Ok(args)
}

pub fn binary_broadcast(
    gpu: &Gpu,
    args: &BinaryArgs,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let cf = cfg_elems(args.n as u64);
    launch!(gpu, "binary_broadcast_f32", cf, args, a, b, y)
}

/// x of `n` elements laid out [rows, channels, inner] (one slope: channels = 1).
fn prelu_args(n: usize, channels: usize, inner: usize) -> PreluArgs {
    PreluArgs {
        n: n as i64,
        channels: channels.max(1) as i64,
        inner: inner.max(1) as i64,
        per_split: 0,
    }
}

pub fn prelu_forward(
    gpu: &Gpu,
    (n, channels, inner): (usize, usize, usize),
    x: &CudaSlice<f32>,
    alpha: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let a = prelu_args(n, channels, inner);
    launch!(
        gpu,
        "prelu_forward_f32",
        cfg_elems(n as u64),
        &a,
        x,
        alpha,
        y
    )
}

/// How `prelu_backward_alpha_f32` splits each channel's `per_channel` elements: (splits,
/// elements per split). Enough blocks in all to fill the GPU, none shorter than a few
/// thousand elements, and at most 65 535 splits (grid.y).
pub fn prelu_splits(channels: usize, per_channel: usize) -> (usize, usize) {
    let want = 528usize.div_ceil(channels.max(1));
    let by_size = per_channel.div_ceil(4096).max(1);
    let splits = want.min(by_size).clamp(1, GRID_YZ_MAX as usize);
    let per_split = per_channel.div_ceil(splits).max(1);
    (per_channel.div_ceil(per_split).max(1), per_split)
}

/// dx, and dα [channels] as per-split partials summed by `reduce_block_f32`.
#[allow(clippy::too_many_arguments)]
pub fn prelu_backward(
    gpu: &Gpu,
    (n, channels, inner): (usize, usize, usize),
    x: &CudaSlice<f32>,
    alpha: &CudaSlice<f32>,
    dy: &CudaSlice<f32>,
    dx: &mut CudaSlice<f32>,
    dalpha: &mut CudaSlice<f32>,
) -> Result<()> {
    let mut a = prelu_args(n, channels, inner);
    let cf = cfg_elems(n as u64);
    launch!(gpu, "prelu_backward_input_f32", cf, &a, x, alpha, dy, dx)?;
    let c = a.channels as usize;
    let (splits, per_split) = prelu_splits(c, n / c);
    a.per_split = per_split as i64;
    let mut part = gpu.alloc(c * splits)?;
    let grid = (grid_1d(c as u64), splits as u32, 1);
    let cf = cfg(grid, (256, 1, 1));
    launch!(gpu, "prelu_backward_alpha_f32", cf, &a, x, dy, &mut *part)?;
    // Partials [c, splits]: sum the contiguous rows.
    let mut r = ReduceArgs {
        out_n: c as i64,
        red_n: splits as i64,
        kept_rank: 1,
        red_rank: 1,
        op: REDUCE_SUM,
        scale: 1.0,
        ..Default::default()
    };
    r.kept_dims[0] = c as i64;
    r.kept_strides[0] = splits as i64;
    r.red_dims[0] = splits as i64;
    r.red_strides[0] = 1;
    launch!(
        gpu,
        "reduce_block_f32",
        cfg_rows(c as u64),
        &r,
        &*part,
        dalpha
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelu_splits_cover_each_channel_once() {
        for (c, per) in [
            (1, 1),
            (1, 10),
            (3, 1_000_000),
            (64, 4096),
            (1, 1 << 26),
            (700, 5),
        ] {
            let (s, len) = prelu_splits(c, per);
            assert!(s >= 1 && s as u64 <= GRID_YZ_MAX && len >= 1, "{c} {per}");
            assert!(
                s * len >= per && (s - 1) * len < per.max(1),
                "{c} {per}: {s} x {len}"
            );
        }
    }

    #[test]
    fn binary_args_merge_dims_and_keep_broadcast_strides() {
        // [2, 3, 4] + [3, 4]: b repeats along dim 0; the last two dims merge.
        let a = binary_args(BinaryOp::Add, &[2, 3, 4], &[12, 4, 1], &[0, 4, 1]).unwrap();
        assert_eq!(a.rank, 2);
        assert_eq!(
            (&a.dims[..2], &a.strides_a[..2], &a.strides_b[..2]),
            (&[2i64, 12][..], &[12i64, 1][..], &[0i64, 1][..])
        );
        assert_eq!(a.n, 24);
        // Emulate the kernel's offset arithmetic on every element.
        let (x, z): (Vec<f32>, Vec<f32>) = (
            (0..24).map(|i| i as f32).collect(),
            (0..12).map(|i| 100.0 * i as f32).collect(),
        );
        for i in 0..24i64 {
            let (mut rest, mut oa, mut ob) = (i, 0, 0);
            for d in (0..a.rank as usize).rev() {
                let idx = rest % a.dims[d];
                rest /= a.dims[d];
                oa += idx * a.strides_a[d];
                ob += idx * a.strides_b[d];
            }
            assert_eq!(
                x[oa as usize] + z[ob as usize],
                i as f32 + 100.0 * (i % 12) as f32
            );
        }
    }
}

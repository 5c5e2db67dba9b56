//! Layout launchers: strided gathers (permute, narrow, broadcast_to), the tiled transpose and
//! concat slices. The planning helpers (`coalesce`, `strided_args`, `transpose_plan`) are plain
//! functions, tested on the CPU against index arithmetic.

use super::*;

/// Merges adjacent dims that every operand walks contiguously and drops 1-sized dims, so the
/// kernels' index loops are as short as possible. Never returns an empty list (a scalar becomes
/// one dim of 1 with stride 0).
pub fn coalesce<const N: usize>(
    dims: &[usize],
    strides: [&[usize]; N],
) -> (Vec<usize>, [Vec<usize>; N]) {
    let mut d: Vec<usize> = Vec::with_capacity(dims.len());
    let mut s: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(dims.len()));
    for (i, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        // Dim i continues the previous (outer) one when each operand's outer stride is n times
        // its stride here.
        let merge = !d.is_empty() && (0..N).all(|k| s[k].last() == Some(&(strides[k][i] * n)));
        match d.last_mut() {
            Some(last) if merge => {
                *last *= n;
                for k in 0..N {
                    if let Some(st) = s[k].last_mut() {
                        *st = strides[k][i];
                    }
                }
            }
            _ => {
                d.push(n);
                for k in 0..N {
                    s[k].push(strides[k][i]);
                }
            }
        }
    }
    if d.is_empty() {
        d.push(1);
        for sk in s.iter_mut() {
            sk.push(0);
        }
    }
    (d, s)
}

fn too_deep(op: &'static str, dims: &[usize]) -> Error {
    Error::invalid(
        op,
        format!("{dims:?} needs more than {MAX_RANK} dims after merging (the CUDA kernels' limit)"),
    )
}

/// `StridedArgs` for y (contiguous, `dims`) = x[offset + Σ idx·strides], dims merged.
pub fn strided_args(dims: &[usize], strides: &[usize], offset: usize) -> Result<StridedArgs> {
    let (d, [s]) = coalesce(dims, [strides]);
    if d.len() > MAX_RANK {
        return Err(too_deep("copy_strided", dims));
    }
    let mut a = StridedArgs {
        n: dims.iter().product::<usize>() as i64,
        offset: offset as i64,
        rank: d.len() as i32,
        ..Default::default()
    };
    for (i, (&n, &st)) in d.iter().zip(&s).enumerate() {
        a.dims[i] = n as i64;
        a.strides[i] = st as i64;
    }
    Ok(a)
}

/// When the gather (`dims`, `strides`, no offset) is a batched transpose of a contiguous tensor
/// — out [B, p, q] reading x [B, q, p] — the arguments of `transpose_tiled_f32`.
pub fn transpose_plan(dims: &[usize], strides: &[usize], offset: usize) -> Option<TransposeArgs> {
    if offset != 0 {
        return None;
    }
    let (d, [s]) = coalesce(dims, [strides]);
    let (batch, p, q) = match (d.as_slice(), s.as_slice()) {
        (&[p, q], &[1, sq]) if sq == p => (1, p, q),
        (&[b, p, q], &[sb, 1, sq]) if sq == p && sb == p * q => (b, p, q),
        _ => return None,
    };
    Some(TransposeArgs {
        batch: batch as i64,
        rows: q as i64,
        cols: p as i64,
        _pad: 0,
    })
}

pub fn copy_strided(
    gpu: &Gpu,
    a: &StridedArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    launch!(gpu, "copy_strided_f32", cfg_elems(a.n as u64), a, x, y)
}

/// x [batch, rows, cols] -> y [batch, cols, rows] through shared-memory tiles.
pub fn transpose(
    gpu: &Gpu,
    a: &TransposeArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let t = TRANSPOSE_TILE as u64;
    let grid = (
        grid_1d(cdiv(a.cols as u64, t)),
        grid_yz(cdiv(a.rows as u64, t)),
        grid_yz(a.batch as u64),
    );
    let block = (TRANSPOSE_TILE, TRANSPOSE_ROWS, 1);
    launch!(gpu, "transpose_tiled_f32", cfg(grid, block), a, x, y)
}

/// y (contiguous, `dims`) = the strided view of x: the tiled transpose when the view is one,
/// else the strided gather.
pub fn gather(
    gpu: &Gpu,
    x: &CudaSlice<f32>,
    (dims, strides, offset): (&[usize], &[usize], usize),
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    match transpose_plan(dims, strides, offset) {
        Some(t) => transpose(gpu, &t, x, y),
        None => copy_strided(gpu, &strided_args(dims, strides, offset)?, x, y),
    }
}

/// One input of a concat: y[o·row + at + j] = x[o·width + j].
pub fn concat_slice(
    gpu: &Gpu,
    a: &ConcatArgs,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = (a.outer * a.width) as u64;
    launch!(gpu, "concat_slice_f32", cfg_elems(n), a, x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `copy_strided_f32` computes, in Rust.
    pub(crate) fn emulate_strided(a: &StridedArgs, x: &[f32]) -> Vec<f32> {
        (0..a.n)
            .map(|i| {
                let (mut rest, mut off) = (i, a.offset);
                for d in (0..a.rank as usize).rev() {
                    off += (rest % a.dims[d]) * a.strides[d];
                    rest /= a.dims[d];
                }
                x[off as usize]
            })
            .collect()
    }

    /// What `transpose_tiled_f32` computes.
    fn emulate_transpose(a: &TransposeArgs, x: &[f32]) -> Vec<f32> {
        let (b, r, c) = (a.batch as usize, a.rows as usize, a.cols as usize);
        let mut y = vec![0.0; b * r * c];
        for bi in 0..b {
            for i in 0..r {
                for j in 0..c {
                    y[bi * r * c + j * r + i] = x[bi * r * c + i * c + j];
                }
            }
        }
        y
    }

    fn strides_of(dims: &[usize]) -> Vec<usize> {
        crate::tensor::Shape::new(dims).strides()
    }

    /// Reference: out[idx] = x[offset + Σ idx·strides] by plain multi-index arithmetic.
    fn naive(dims: &[usize], strides: &[usize], offset: usize, x: &[f32]) -> Vec<f32> {
        let n: usize = dims.iter().product();
        (0..n)
            .map(|mut i| {
                let mut off = offset;
                for a in (0..dims.len()).rev() {
                    off += (i % dims[a]) * strides[a];
                    i /= dims[a];
                }
                x[off]
            })
            .collect()
    }

    #[test]
    fn strided_plans_match_index_arithmetic() {
        let x: Vec<f32> = (0..4000).map(|i| i as f32).collect();
        // (dims, strides, offset): permutes, narrows, broadcasts, 1-sized dims, scalars.
        let perm = |d: &[usize], p: &[usize]| {
            let s = strides_of(d);
            let dims: Vec<usize> = p.iter().map(|&i| d[i]).collect();
            let st: Vec<usize> = p.iter().map(|&i| s[i]).collect();
            (dims, st, 0)
        };
        let cases = vec![
            perm(&[2, 3, 4], &[2, 0, 1]),
            perm(&[3, 1, 5, 2], &[3, 1, 0, 2]),
            perm(&[7, 9], &[1, 0]),
            perm(&[3, 17, 33], &[0, 2, 1]),
            perm(&[2, 5, 3, 7], &[0, 3, 1, 2]),
            perm(&[1, 40, 1, 3], &[3, 2, 0, 1]),
            perm(&[2, 3], &[0, 1]),
            (vec![], vec![], 0),
            (vec![3, 3, 2], vec![10, 2, 1], 2), // narrow of [3, 5, 2] along 1
            (vec![2, 5, 3], vec![0, 3, 1], 0),  // broadcast [5, 3] -> [2, 5, 3]
            (vec![4, 1, 3], vec![0, 0, 0], 7),  // broadcast of one element
            (vec![2, 0, 3], vec![3, 1, 1], 0),  // empty
            (vec![6, 7], vec![1, 6], 0),        // 2-D transpose
        ];
        for (dims, st, off) in cases {
            let want = naive(&dims, &st, off, &x);
            let a = strided_args(&dims, &st, off).unwrap();
            assert!(a.rank >= 1 && a.rank as usize <= dims.len().max(1));
            assert_eq!(emulate_strided(&a, &x), want, "{dims:?} {st:?} {off}");
            if let Some(t) = transpose_plan(&dims, &st, off) {
                assert_eq!(emulate_transpose(&t, &x), want, "transpose {dims:?} {st:?}");
            }
        }
    }

    #[test]
    fn transpose_plan_recognises_batched_last_axis_swaps_only() {
        let t = transpose_plan(&[6, 7], &[1, 6], 0).unwrap();
        assert_eq!((t.batch, t.rows, t.cols), (1, 7, 6));
        let t = transpose_plan(&[4, 5, 3], &[15, 1, 5], 0).unwrap();
        assert_eq!((t.batch, t.rows, t.cols), (4, 3, 5));
        // [2, 3, 4] -> [2, 4, 3] with a 1-sized dim in between still merges to a transpose.
        assert!(transpose_plan(&[2, 1, 4, 3], &[12, 12, 1, 4], 0).is_some());
        assert!(transpose_plan(&[6, 7], &[1, 6], 3).is_none(), "offset");
        assert!(
            transpose_plan(&[2, 3, 4], &[12, 4, 1], 0).is_none(),
            "identity"
        );
        // [2, 3, 4] permuted (2, 0, 1) is x [6, 4] transposed once 1-sized runs merge.
        assert!(transpose_plan(&[4, 2, 3], &[1, 12, 4], 0).is_some());
        assert!(
            transpose_plan(&[3, 2, 4], &[4, 12, 1], 0).is_none(),
            "inner axis contiguous"
        );
    }

    #[test]
    fn coalesce_merges_contiguous_runs_of_every_operand() {
        let (d, [a, b]) = coalesce(&[2, 3, 4], [&[12, 4, 1], &[0, 4, 1]]);
        assert_eq!((d, a, b), (vec![2, 12], vec![12, 1], vec![0, 1]));
        let (d, [a]) = coalesce(&[1, 1], [&[0, 0]]);
        assert_eq!((d, a), (vec![1], vec![0]));
        assert!(strided_args(&[2; 9], &[1, 2, 4, 8, 16, 32, 64, 128, 256], 0).is_err());
    }
}

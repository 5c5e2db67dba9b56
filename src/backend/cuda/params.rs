//! The `#[repr(C)]` mirrors of the kernels' parameter structs, passed by value at launch (no
//! per-launch uploads of shapes: they would break CUDA-graph capture), and the op codes and
//! launch constants the kernels `#define`.
//!
//! Each struct is declared through `kernel_struct!`, which also records its size and fields in
//! `LAYOUT`; the kernel compile appends `static_assert`s built from those (see
//! `KernelFile::layout_checks`), so the C++ and Rust sides cannot drift apart silently.
//! Types: `i64` = `long long`, `i32` = `int`, `f32` = `float`; every struct is padded by hand to
//! a multiple of 8 bytes so that no implicit padding differs between the two compilers.

use crate::backend::{BinaryOp, ReduceOp, UnaryOp};
use std::mem::{offset_of, size_of};

/// Size and fields (name, offset, size) of one parameter struct, as Rust lays it out.
#[derive(Debug)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize, usize)],
}

macro_rules! kernel_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t),*
        }
        impl $name {
            pub const LAYOUT: StructLayout = StructLayout {
                name: stringify!($name),
                size: size_of::<$name>(),
                fields: &[$((stringify!($f), offset_of!($name, $f), size_of::<$t>())),*],
            };
        }
        // SAFETY: plain-old-data with a C layout, passed by value as a kernel parameter.
        unsafe impl cudarc::driver::DeviceRepr for $name {}
    };
}

/// Largest rank of the strided kernels (layout, broadcast binary, reduce).
pub const MAX_RANK: usize = 8;

// ---- elementwise.cu ---------------------------------------------------------------------------

pub const UNARY_NEG: i32 = 0;
pub const UNARY_ADD_SCALAR: i32 = 1;
pub const UNARY_MUL_SCALAR: i32 = 2;
pub const UNARY_POW_SCALAR: i32 = 3;
pub const UNARY_RELU: i32 = 4;
pub const UNARY_LEAKY_RELU: i32 = 5;
pub const UNARY_TANH: i32 = 6;
pub const UNARY_SIGMOID: i32 = 7;
pub const UNARY_EXP: i32 = 8;
pub const UNARY_LOG: i32 = 9;
pub const UNARY_SQRT: i32 = 10;
pub const UNARY_ABS: i32 = 11;

/// The kernel's op code and scalar of a unary op.
pub fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Neg => (UNARY_NEG, 0.0),
        UnaryOp::AddScalar(c) => (UNARY_ADD_SCALAR, c),
        UnaryOp::MulScalar(c) => (UNARY_MUL_SCALAR, c),
        UnaryOp::PowScalar(p) => (UNARY_POW_SCALAR, p),
        UnaryOp::Relu => (UNARY_RELU, 0.0),
        UnaryOp::LeakyRelu(s) => (UNARY_LEAKY_RELU, s),
        UnaryOp::Tanh => (UNARY_TANH, 0.0),
        UnaryOp::Sigmoid => (UNARY_SIGMOID, 0.0),
        UnaryOp::Exp => (UNARY_EXP, 0.0),
        UnaryOp::Log => (UNARY_LOG, 0.0),
        UnaryOp::Sqrt => (UNARY_SQRT, 0.0),
        UnaryOp::Abs => (UNARY_ABS, 0.0),
    }
}

pub const BINARY_ADD: i32 = 0;
pub const BINARY_SUB: i32 = 1;
pub const BINARY_MUL: i32 = 2;
pub const BINARY_DIV: i32 = 3;

pub fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => BINARY_ADD,
        BinaryOp::Sub => BINARY_SUB,
        BinaryOp::Mul => BINARY_MUL,
        BinaryOp::Div => BINARY_DIV,
    }
}

kernel_struct!(
    /// `unary_forward_f32` / `unary_backward_f32`: `n` elements, op code, its scalar.
    UnaryArgs { n: i64, op: i32, scalar: f32 }
);

kernel_struct!(
    /// `binary_same_f32` (uses `n`, `op`) and `binary_broadcast_f32`: the output's `rank` dims
    /// and each operand's strides in them (0 on broadcast dims).
    BinaryArgs {
        n: i64,
        rank: i32,
        op: i32,
        dims: [i64; MAX_RANK],
        strides_a: [i64; MAX_RANK],
        strides_b: [i64; MAX_RANK],
    }
);

kernel_struct!(
    /// PReLU over `n` elements laid out `[rows, channels, inner]` (one slope: `channels` = 1);
    /// `prelu_backward_alpha_f32` splits each channel's elements into chunks of `per_split`.
    PreluArgs { n: i64, channels: i64, inner: i64, per_split: i64 }
);

// ---- layout.cu --------------------------------------------------------------------------------

/// Block of `transpose_tiled_f32`: TRANSPOSE_TILE × TRANSPOSE_ROWS threads per 32 × 32 tile.
pub const TRANSPOSE_TILE: u32 = 32;
pub const TRANSPOSE_ROWS: u32 = 8;

kernel_struct!(
    /// `copy_strided_f32`: y (contiguous, `dims`) = x read at `offset + Σ idx·strides`.
    StridedArgs {
        n: i64,
        offset: i64,
        rank: i32,
        _pad: i32,
        dims: [i64; MAX_RANK],
        strides: [i64; MAX_RANK],
    }
);

kernel_struct!(
    /// `transpose_tiled_f32`: x [batch, rows, cols] -> y [batch, cols, rows].
    TransposeArgs { batch: i64, rows: i64, cols: i64, _pad: i64 }
);

kernel_struct!(
    /// `concat_slice_f32`: y[o·row + at + j] = x[o·width + j] for o < outer, j < width.
    ConcatArgs { outer: i64, width: i64, row: i64, at: i64 }
);

// ---- reduce.cu --------------------------------------------------------------------------------

pub const REDUCE_SUM: i32 = 0;
pub const REDUCE_MEAN: i32 = 1;
pub const REDUCE_MAX: i32 = 2;

pub fn reduce_code(op: ReduceOp) -> i32 {
    match op {
        ReduceOp::Sum => REDUCE_SUM,
        ReduceOp::Mean => REDUCE_MEAN,
        ReduceOp::Max => REDUCE_MAX,
    }
}

kernel_struct!(
    /// Reductions: output `o` (row-major over the kept dims) combines the `red_n` elements at
    /// `Σ kept_idx·kept_strides + Σ red_idx·red_strides`; a mean multiplies the sum by `scale`.
    ReduceArgs {
        out_n: i64,
        red_n: i64,
        kept_rank: i32,
        red_rank: i32,
        op: i32,
        scale: f32,
        kept_dims: [i64; MAX_RANK],
        kept_strides: [i64; MAX_RANK],
        red_dims: [i64; MAX_RANK],
        red_strides: [i64; MAX_RANK],
    }
);

// ---- matmul.cu --------------------------------------------------------------------------------

pub const MATMUL_THREADS: u32 = 256;
pub const MATMUL_BK: u32 = 8;

kernel_struct!(
    /// C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] with leading dims and batch strides in
    /// elements (stride 0 broadcasts an operand); C is not read when beta = 0.
    MatmulArgs {
        m: i64,
        n: i64,
        k: i64,
        batch: i64,
        lda: i64,
        ldb: i64,
        ldc: i64,
        stride_a: i64,
        stride_b: i64,
        stride_c: i64,
        trans_a: i32,
        trans_b: i32,
        alpha: f32,
        beta: f32,
    }
);

// ---- conv.cu ----------------------------------------------------------------------------------

pub const CONV_THREADS: u32 = 256;
pub const CONV_BK: u32 = 8;

kernel_struct!(
    /// conv2d over NCHW x [n, c_in, h, w] and w [c_out, c_in/groups, kh, kw] -> [n, c_out, oh, ow].
    /// The weight gradient splits the n·oh·ow sum into `splits` chunks of `split_len` (partials
    /// [splits, c_out, c_in/groups·kh·kw], summed afterwards by the reduce kernels).
    ConvArgs {
        n: i64,
        c_in: i64,
        h: i64,
        w: i64,
        c_out: i64,
        oh: i64,
        ow: i64,
        split_len: i64,
        kh: i32,
        kw: i32,
        stride_h: i32,
        stride_w: i32,
        pad_h: i32,
        pad_w: i32,
        dil_h: i32,
        dil_w: i32,
        groups: i32,
        reflect: i32,
        has_bias: i32,
        splits: i32,
    }
);

// ---- pool.cu, resize.cu, unfold.cu ------------------------------------------------------------

kernel_struct!(
    /// Pooling of `planes` = N·C planes of h × w into oh × ow.
    PoolArgs {
        planes: i64,
        h: i64,
        w: i64,
        oh: i64,
        ow: i64,
        kh: i32,
        kw: i32,
        stride_h: i32,
        stride_w: i32,
        pad_h: i32,
        pad_w: i32,
        count_include_pad: i32,
        _pad: i32,
    }
);

pub const RESIZE_NEAREST: i32 = 0;
pub const RESIZE_BILINEAR: i32 = 1;

kernel_struct!(
    /// Resizing of `planes` = N·C planes of h × w to oh × ow.
    ResizeArgs {
        planes: i64,
        h: i64,
        w: i64,
        oh: i64,
        ow: i64,
        mode: i32,
        align_corners: i32,
    }
);

kernel_struct!(
    /// unfold [n, c, h, w] -> [n, c·kh·kw, oh·ow] (zero padding) and fold, its adjoint.
    UnfoldArgs {
        n: i64,
        c: i64,
        h: i64,
        w: i64,
        oh: i64,
        ow: i64,
        kh: i32,
        kw: i32,
        stride_h: i32,
        stride_w: i32,
        pad_h: i32,
        pad_w: i32,
        dil_h: i32,
        dil_w: i32,
    }
);

// ---- norm.cu ----------------------------------------------------------------------------------

/// Block of the column kernels (PONO, corr_warp's normalisation): NORM_COL_X positions ×
/// NORM_COL_Y slices of the reduced axis.
pub const NORM_COL_X: u32 = 32;
pub const NORM_COL_Y: u32 = 8;
/// Instance-norm and SPADE-instance rows longer than this many elements take the chunked
/// kernels: a block per NORM_CHUNK elements of a row, so a few long rows still fill the GPU.
pub const NORM_CHUNK: u32 = 8192;

kernel_struct!(
    /// x viewed as [outer, red, inner], normalised over `red`; statistic `o·inner + i`.
    /// Instance norm: [N·C, spatial, 1] with `channels` = C for the affine parameters; PONO:
    /// [N, C, H·W]. Variance divisor `red − ddof`.
    NormArgs {
        outer: i64,
        red: i64,
        inner: i64,
        channels: i64,
        eps: f32,
        ddof: i32,
        has_weight: i32,
        has_bias: i32,
    }
);

// ---- softmax.cu -------------------------------------------------------------------------------

/// Rows per 256-thread block of the warp-per-row softmax kernels.
pub const SOFTMAX_WARP_ROWS: u32 = 8;

kernel_struct!(
    /// Softmax over the last axis: `rows` rows of `len`.
    SoftmaxArgs { rows: i64, len: i64 }
);

// ---- corr_warp.cu -----------------------------------------------------------------------------

/// Tiles of the fused forward: query rows and keys per tile, channels per step, value columns
/// per block (grid.y covers V in chunks of CORR_VT), threads per block.
pub const CORR_BQ: u32 = 64;
pub const CORR_BKEY: u32 = 64;
pub const CORR_BC: u32 = 16;
pub const CORR_VT: u32 = 64;
pub const CORR_THREADS: u32 = 256;

kernel_struct!(
    /// Centre + L2-normalise x [b, c, l] over c per (b, l): x̂ = (x − mean)/(‖x − mean‖ + eps).
    CorrNormArgs { b: i64, c: i64, l: i64, eps: f32, _pad: i32 }
);

kernel_struct!(
    /// corr_warp: q̂ [b, c, n], k̂ [b, c, m], v [b, m, v] -> out [b, n, v]. The backward's row
    /// kernel works on `rows` rows of length m (slabs of the score matrix).
    CorrWarpArgs {
        b: i64,
        c: i64,
        n: i64,
        m: i64,
        v: i64,
        rows: i64,
        scale: f32,
        _pad: i32,
    }
);

// ---- corr_warp_bf16.cu ------------------------------------------------------------------------

/// bf16 corr_warp: query rows / keys per tile, the padding granule of packed positions;
/// channels per staged chunk, the padding granule of packed channels; threads per block (4
/// warps × 16 query rows); the widest packed v (wider v stays on the f32 kernels).
pub const CB_TILE: u32 = 64;
pub const CB_BC: u32 = 64;
pub const CB_THREADS: u32 = 128;
pub const CB_VMAX: u32 = 64;
/// Block tile of the bf16 GEMM (m × n, k step); CB_THREADS threads.
pub const CG_BM: u32 = 64;
pub const CG_BN: u32 = 64;
pub const CG_BK: u32 = 32;

kernel_struct!(
    /// f32 `src[b·s_b + r·s_row + c·s_col]` (r < rows, c < cols) -> bf16 [b, rows_p, cols_p],
    /// zeros in the padding.
    CorrPackArgs {
        b: i64,
        rows: i64,
        cols: i64,
        rows_p: i64,
        cols_p: i64,
        s_b: i64,
        s_row: i64,
        s_col: i64,
    }
);

kernel_struct!(
    /// bf16 corr_warp sizes: (b, c, n, m, v), the packed (padded) cp, np, mp, vp, and the
    /// backward slab: query rows [r0, r0 + rows) held in `rs` (a multiple of CB_TILE) rows.
    CorrBf16Args {
        b: i64,
        c: i64,
        n: i64,
        m: i64,
        v: i64,
        cp: i64,
        np: i64,
        mp: i64,
        vp: i64,
        r0: i64,
        rows: i64,
        rs: i64,
        scale: f32,
        _pad: i32,
    }
);

kernel_struct!(
    /// bf16 GEMM with f32 output at any strides (kernels/corr_warp_bf16.cu): m, n, k bound the
    /// operand reads, m_out, n_out the written block; `accumulate` adds to the output.
    CorrGemmArgs {
        m: i64,
        n: i64,
        k: i64,
        batch: i64,
        lda: i64,
        ldb: i64,
        a_off: i64,
        b_off: i64,
        stride_a: i64,
        stride_b: i64,
        o_off: i64,
        o_sb: i64,
        o_si: i64,
        o_sj: i64,
        m_out: i64,
        n_out: i64,
        accumulate: i32,
        _pad: i32,
    }
);

// ---- loss.cu, adam.cu -------------------------------------------------------------------------

pub const LOSS_L1: i32 = 0;
pub const LOSS_MSE: i32 = 1;
pub const LOSS_THREADS: u32 = 256;

kernel_struct!(
    /// Mean L1 / MSE of `n` elements: `blocks` partial sums of `per_block` elements each; the
    /// backward multiplies the elementwise derivative by `scale` (= upstream gradient / n).
    LossArgs { n: i64, per_block: i64, blocks: i64, op: i32, scale: f32 }
);

kernel_struct!(
    /// One Adam/AdamW step over `n` values; `step_size` = lr / (1 − β1^t), `bc2_sqrt` =
    /// √(1 − β2^t), `decay` = 1 − lr·wd for AdamW (else 1), `l2` = wd for Adam (else 0).
    AdamArgs {
        n: i64,
        step_size: f32,
        bc2_sqrt: f32,
        decay: f32,
        l2: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        _pad: i32,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_fixed_and_multiples_of_eight() {
        let expected = [
            (UnaryArgs::LAYOUT, 16),
            (BinaryArgs::LAYOUT, 16 + 3 * 8 * MAX_RANK),
            (PreluArgs::LAYOUT, 32),
            (StridedArgs::LAYOUT, 24 + 2 * 8 * MAX_RANK),
            (TransposeArgs::LAYOUT, 32),
            (ConcatArgs::LAYOUT, 32),
            (ReduceArgs::LAYOUT, 32 + 4 * 8 * MAX_RANK),
            (MatmulArgs::LAYOUT, 96),
            (ConvArgs::LAYOUT, 112),
            (PoolArgs::LAYOUT, 72),
            (ResizeArgs::LAYOUT, 48),
            (UnfoldArgs::LAYOUT, 80),
            (NormArgs::LAYOUT, 48),
            (SoftmaxArgs::LAYOUT, 16),
            (CorrNormArgs::LAYOUT, 32),
            (CorrWarpArgs::LAYOUT, 56),
            (CorrPackArgs::LAYOUT, 64),
            (CorrBf16Args::LAYOUT, 104),
            (CorrGemmArgs::LAYOUT, 136),
            (LossArgs::LAYOUT, 32),
            (AdamArgs::LAYOUT, 40),
        ];
        for (l, size) in expected {
            assert_eq!(l.size, size, "{}", l.name);
            assert_eq!(l.size % 8, 0, "{}", l.name);
            // No padding anywhere: each field starts where the previous one ends. With the
            // same field sizes and order checked on the C++ side, the offsets agree.
            let mut at = 0;
            for &(f, off, size) in l.fields {
                assert_eq!(off, at, "{}.{f}", l.name);
                at += size;
            }
            assert_eq!(at, l.size, "{}: trailing padding", l.name);
        }
    }

    #[test]
    fn op_codes_are_distinct() {
        use UnaryOp::*;
        let ops = [
            Neg,
            AddScalar(1.0),
            MulScalar(1.0),
            PowScalar(2.0),
            Relu,
            LeakyRelu(0.2),
            Tanh,
            Sigmoid,
            Exp,
            Log,
            Sqrt,
            Abs,
        ];
        let codes: Vec<i32> = ops.iter().map(|&o| unary_code(o).0).collect();
        assert_eq!(codes, (0..12).collect::<Vec<_>>());
        assert_eq!(unary_code(LeakyRelu(0.2)).1, 0.2);
        let b: Vec<i32> = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]
            .iter()
            .map(|&o| binary_code(o))
            .collect();
        assert_eq!(b, vec![0, 1, 2, 3]);
        assert_eq!(reduce_code(ReduceOp::Max), REDUCE_MAX);
    }

    #[test]
    fn conv_args_field_offsets() {
        let f = ConvArgs::LAYOUT.fields;
        assert_eq!(f[0], ("n", 0, 8));
        assert_eq!(f[7], ("split_len", 56, 8));
        assert_eq!(f[8], ("kh", 64, 4));
        assert_eq!(f[19], ("splits", 108, 4));
    }
}

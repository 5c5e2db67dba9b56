//! The kernel sources, embedded in the binary, with what each file must define: the `extern "C"`
//! symbols a launcher may load, the parameter structs it shares with Rust (checked field by
//! field at compile time) and the launch constants a launcher computes grids from.

use super::params::*;

/// `kernels/common.cuh`, given to NVRTC as an in-memory header.
pub const COMMON_HEADER: &str = include_str!("../../../kernels/common.cuh");

/// Every header a kernel file may include, by name: all are handed to every compile.
pub const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", COMMON_HEADER),
    (
        "mma_bf16.cuh",
        include_str!("../../../kernels/mma_bf16.cuh"),
    ),
];

/// One `.cu` file of `kernels/`.
#[derive(Debug)]
pub struct KernelFile {
    /// File name inside `kernels/`.
    pub name: &'static str,
    pub source: &'static str,
    /// Every `extern "C"` kernel the file defines (`<op>_<variant>_<dtype>`: f32, tf32, bf16).
    pub symbols: &'static [&'static str],
    /// The parameter structs defined in the file, with their Rust layouts.
    pub structs: &'static [&'static StructLayout],
    /// `#define`d launch constants the launchers rely on, with the value Rust assumes.
    pub consts: &'static [(&'static str, i64)],
}

impl KernelFile {
    /// C++ appended to the source before compiling: `static_assert`s that each struct has the
    /// Rust size, fields of the Rust names and sizes in the Rust order, and no padding (NVRTC has
    /// no `offsetof`; with no padding and the same order and sizes, the offsets agree, and the
    /// Rust side asserts it has no padding either), and that each launch constant has the Rust
    /// value. A `.cu` file that drifts from `params.rs` fails to compile.
    pub fn layout_checks(&self) -> String {
        let mut s = String::from("// ---- generated from src/backend/cuda/params.rs ----\n");
        for l in self.structs {
            let name = l.name;
            s += &format!(
                "static_assert(sizeof({name}) == {0}, \"{name}: size differs from the Rust mirror ({0} bytes)\");\n",
                l.size
            );
            let mut sum = Vec::new();
            for (f, _, size) in l.fields {
                s += &format!(
                    "static_assert(sizeof({name}::{f}) == {size}, \"{name}.{f}: size differs from the Rust mirror ({size})\");\n"
                );
                sum.push(format!("sizeof({name}::{f})"));
            }
            s += &format!(
                "static_assert({} == sizeof({name}), \"{name}: padding between fields (the Rust mirror has none)\");\n",
                sum.join(" + ")
            );
            let order: Vec<String> = l
                .fields
                .windows(2)
                .map(|w| format!("(const void*)&v.{} < (const void*)&v.{}", w[0].0, w[1].0))
                .collect();
            if !order.is_empty() {
                s += &format!(
                    "__host__ __device__ constexpr bool layout_order_{name}() {{ {name} v{{}}; return {}; }}\n\
                     static_assert(layout_order_{name}(), \"{name}: field order differs from the Rust mirror\");\n",
                    order.join(" && ")
                );
            }
        }
        for (name, v) in self.consts {
            s += &format!(
                "static_assert({name} == {v}, \"{name} differs from the Rust side ({v})\");\n"
            );
        }
        s
    }
}

macro_rules! kernel_file {
    ($name:literal, symbols: [$($sym:literal),* $(,)?], structs: [$($st:ident),* $(,)?], consts: [$($c:ident),* $(,)?]) => {
        KernelFile {
            name: $name,
            source: include_str!(concat!("../../../kernels/", $name)),
            symbols: &[$($sym),*],
            structs: &[$(&$st::LAYOUT),*],
            consts: &[$((stringify!($c), $c as i64)),*],
        }
    };
}

/// Every kernel file, in the order of `src/backend/cpu/`.
pub const KERNEL_FILES: &[KernelFile] = &[
    kernel_file!("elementwise.cu",
        symbols: ["unary_forward_f32", "unary_backward_f32", "binary_same_f32", "binary_broadcast_f32",
                  "prelu_forward_f32", "prelu_backward_input_f32", "prelu_backward_alpha_f32"],
        structs: [UnaryArgs, BinaryArgs, PreluArgs],
        consts: [UNARY_NEG, UNARY_ADD_SCALAR, UNARY_MUL_SCALAR, UNARY_POW_SCALAR, UNARY_RELU,
                 UNARY_LEAKY_RELU, UNARY_TANH, UNARY_SIGMOID, UNARY_EXP, UNARY_LOG, UNARY_SQRT,
                 UNARY_ABS, BINARY_ADD, BINARY_SUB, BINARY_MUL, BINARY_DIV, MAX_RANK]),
    kernel_file!("layout.cu",
        symbols: ["copy_strided_f32", "transpose_tiled_f32", "concat_slice_f32"],
        structs: [StridedArgs, TransposeArgs, ConcatArgs],
        consts: [MAX_RANK, TRANSPOSE_TILE, TRANSPOSE_ROWS]),
    kernel_file!("reduce.cu",
        symbols: ["reduce_block_f32", "reduce_thread_f32", "reduce_max_backward_block_f32",
                  "reduce_max_backward_thread_f32"],
        structs: [ReduceArgs],
        consts: [REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, MAX_RANK]),
    kernel_file!("matmul.cu",
        symbols: ["matmul_tile128_f32", "matmul_tile64_f32", "matmul_tile128_tf32", "matmul_tile64_tf32"],
        structs: [MatmulArgs],
        consts: [MATMUL_THREADS, MATMUL_BK]),
    kernel_file!("conv.cu",
        symbols: ["conv2d_forward_igemm128_f32", "conv2d_forward_igemm64_f32",
                  "conv2d_backward_input_igemm128_f32", "conv2d_backward_input_igemm64_f32",
                  "conv2d_backward_weight_igemm128_f32", "conv2d_backward_weight_igemm64_f32",
                  "conv2d_forward_igemm128_tf32", "conv2d_forward_igemm64_tf32",
                  "conv2d_backward_input_igemm128_tf32", "conv2d_backward_input_igemm64_tf32",
                  "conv2d_backward_weight_igemm128_tf32", "conv2d_backward_weight_igemm64_tf32",
                  "conv2d_direct_forward_f32", "conv2d_direct_backward_input_f32",
                  "conv2d_direct_backward_weight_f32", "conv2d_backward_bias_f32"],
        structs: [ConvArgs],
        consts: [CONV_THREADS, CONV_BK]),
    kernel_file!("pool.cu",
        symbols: ["avg_pool2d_forward_f32", "avg_pool2d_backward_f32", "max_pool2d_forward_f32",
                  "max_pool2d_backward_f32"],
        structs: [PoolArgs],
        consts: []),
    kernel_file!("resize.cu",
        symbols: ["resize2d_forward_f32", "resize2d_backward_f32"],
        structs: [ResizeArgs],
        consts: [RESIZE_NEAREST, RESIZE_BILINEAR]),
    kernel_file!("unfold.cu",
        symbols: ["unfold_forward_f32", "fold_forward_f32"],
        structs: [UnfoldArgs],
        consts: []),
    kernel_file!("norm.cu",
        symbols: ["instance_norm_forward_f32", "instance_norm_backward_f32",
                  "instance_norm_backward_affine_f32", "pono_forward_f32", "pono_backward_f32",
                  "spade_modulate_instance_forward_f32", "spade_modulate_instance_backward_f32",
                  "spade_modulate_pono_forward_f32", "spade_modulate_pono_backward_f32",
                  "norm_row_stats_chunks_f32", "instance_norm_forward_chunks_f32",
                  "instance_norm_grad_chunks_f32", "instance_norm_backward_chunks_f32",
                  "spade_modulate_instance_forward_chunks_f32",
                  "spade_modulate_instance_grad_chunks_f32",
                  "spade_modulate_instance_backward_chunks_f32"],
        structs: [NormArgs],
        consts: [NORM_COL_X, NORM_COL_Y, NORM_CHUNK]),
    kernel_file!("softmax.cu",
        symbols: ["softmax_forward_block_f32", "softmax_forward_warp_f32",
                  "softmax_backward_block_f32", "softmax_backward_warp_f32"],
        structs: [SoftmaxArgs],
        consts: [SOFTMAX_WARP_ROWS]),
    kernel_file!("corr_warp.cu",
        symbols: ["corr_norm_forward_f32", "corr_norm_backward_f32", "corr_warp_forward_fused_f32",
                  "corr_warp_backward_rows_f32"],
        structs: [CorrNormArgs, CorrWarpArgs],
        consts: [CORR_BQ, CORR_BKEY, CORR_BC, CORR_VT, CORR_THREADS, NORM_COL_X, NORM_COL_Y]),
    kernel_file!("corr_warp_bf16.cu",
        symbols: ["corr_warp_pack_bf16", "corr_warp_forward_v16_bf16", "corr_warp_forward_v32_bf16",
                  "corr_warp_forward_v48_bf16", "corr_warp_forward_v64_bf16", "corr_warp_delta_bf16",
                  "corr_warp_backward_ds_v16_bf16", "corr_warp_backward_ds_v32_bf16",
                  "corr_warp_backward_ds_v48_bf16", "corr_warp_backward_ds_v64_bf16",
                  "corr_warp_gemm_nn_bf16", "corr_warp_gemm_tn_bf16"],
        structs: [CorrPackArgs, CorrBf16Args, CorrGemmArgs],
        consts: [CB_TILE, CB_BC, CB_THREADS, CB_VMAX, CG_BM, CG_BN, CG_BK]),
    kernel_file!("loss.cu",
        symbols: ["loss_forward_partial_f32", "loss_forward_finish_f32", "loss_backward_f32"],
        structs: [LossArgs],
        consts: [LOSS_L1, LOSS_MSE, LOSS_THREADS]),
    kernel_file!("adam.cu",
        symbols: ["adam_step_f32"],
        structs: [AdamArgs],
        consts: []),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_embedded_and_names_its_symbols() {
        for f in KERNEL_FILES {
            assert!(f.name.ends_with(".cu"), "{}", f.name);
            assert!(!f.symbols.is_empty(), "{} lists no symbols", f.name);
            for s in f.symbols {
                assert!(
                    ["_f32", "_tf32", "_bf16"].iter().any(|d| s.ends_with(d)),
                    "{s}: symbols are <op>_<variant>_<dtype>"
                );
                let decl = format!("{s}(");
                assert!(f.source.contains(&decl), "{}: {s} is not defined", f.name);
            }
            assert!(f.source.contains("#include \"common.cuh\""), "{}", f.name);
        }
    }

    #[test]
    fn layout_checks_cover_every_field() {
        let conv = KERNEL_FILES.iter().find(|f| f.name == "conv.cu").unwrap();
        let checks = conv.layout_checks();
        for (f, _, size) in ConvArgs::LAYOUT.fields {
            assert!(
                checks.contains(&format!("sizeof(ConvArgs::{f}) == {size}")),
                "{f}"
            );
        }
        assert!(checks.contains("sizeof(ConvArgs) == 112"));
        assert!(checks.contains("&v.split_len < (const void*)&v.kh"));
    }
}

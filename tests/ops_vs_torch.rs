//! Every backend primitive, through the autograd API (`Var`), against PyTorch.
//!
//! The fixtures are written by tools/make_op_fixtures.py (see tests/fixtures/README.md). For every
//! case of every file this builds the op from leaves with `requires_grad`, compares the forward
//! output, runs `backward_with(gy)` and compares the gradient of every input, each with an explicit
//! tolerance. The op parameters come from the case's metadata only; a case whose tensors or params
//! are not all read, a tensor that belongs to no case, or a fixture file with no test here fails.
//! Run with `-- --nocapture` to see the share of the tolerance each case used.

mod common;

use common::*;
use engine::backend::{
    AdamParams, Conv2dParams, CorrWarpParams, PadMode, Pool2dParams, ResizeMode, SpadeNorm,
    UnfoldParams,
};
use engine::{Device, Tensor, Var};

/// Adam's first moment sums terms of size ≈ |g + wd·p| ≈ 0.1 that can cancel: float32 leaves an
/// absolute error of a few ulp(0.01) ≈ 1e-9 on a value that may be ~1e-5.
const MOMENT_M: Tol = Tol {
    rtol: 1e-5,
    atol: 5e-8,
};
/// The second moment v ≈ (1 − β2)·g² is tiny but a sum of positive terms: relative error only.
const MOMENT_V: Tol = Tol {
    rtol: 1e-5,
    atol: 1e-10,
};

fn run_case(c: &Case, log: &mut Log) -> R<()> {
    match c.op.as_str() {
        "add" | "sub" | "mul" | "div" => binary(c, log),
        "neg" | "add_scalar" | "mul_scalar" | "powf" | "relu" | "leaky_relu" | "tanh"
        | "sigmoid" | "exp" | "log" | "sqrt" | "abs" => unary(c, log),
        "prelu" => {
            let ins = leaves(c, &["x", "alpha"])?;
            let y = ins[0].1.prelu(&ins[1].1).ctx(c)?;
            finish(c, log, &y, &ins, STRICT, |n| {
                if n == "alpha" {
                    REDUCE
                } else {
                    STRICT
                }
            })
        }
        "sum" | "mean" | "max" | "sum_all" | "mean_all" => reduce(c, log),
        "matmul" => {
            let ins = leaves(c, &["a", "b"])?;
            let (ta, tb) = (c.bool("trans_a")?, c.bool("trans_b")?);
            let (a, b) = (&ins[0].1, &ins[1].1);
            // The plain product goes through `matmul`, the transposed ones through `matmul_t`.
            let y = if ta || tb {
                a.matmul_t(b, ta, tb)
            } else {
                a.matmul(b)
            }
            .ctx(c)?;
            finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
        }
        "permute" | "narrow" | "concat" | "broadcast_to" | "reshape" => layout(c, log),
        "conv2d" => conv2d(c, log),
        "avg_pool2d" | "max_pool2d" => pool(c, log),
        "resize2d" => resize(c, log),
        "instance_norm" | "pono" | "spade_modulate" => norm(c, log),
        "softmax" => {
            let ins = leaves(c, &["x"])?;
            let y = ins[0].1.softmax().ctx(c)?;
            finish(c, log, &y, &ins, REDUCE, |_| REDUCE)
        }
        "unfold" | "fold" => unfold(c, log),
        "corr_warp" => corr_warp(c, log),
        "l1_loss" | "mse_loss" => {
            let ins = leaves(c, &["a", "b"])?;
            let (a, b) = (&ins[0].1, &ins[1].1);
            let y = if c.op == "l1_loss" {
                a.l1_loss(b)
            } else {
                a.mse_loss(b)
            }
            .ctx(c)?;
            finish(c, log, &y, &ins, REDUCE, |_| STRICT)
        }
        "adam" => adam(c, log),
        other => Err(format!("{}: no test for op {other:?}", c.id())),
    }
}

fn binary(c: &Case, log: &mut Log) -> R<()> {
    let ins = leaves(c, &["a", "b"])?;
    let (a, b) = (&ins[0].1, &ins[1].1);
    let y = match c.op.as_str() {
        "add" => a.add(b),
        "sub" => a.sub(b),
        "mul" => a.mul(b),
        _ => a.div(b),
    }
    .ctx(c)?;
    // A broadcast operand's gradient is a sum over the broadcast dims.
    let out = y.dims().to_vec();
    let (da, db) = (a.dims() == out.as_slice(), b.dims() == out.as_slice());
    finish(c, log, &y, &ins, STRICT, |n| {
        if (n == "a" && da) || (n == "b" && db) {
            STRICT
        } else {
            REDUCE
        }
    })
}

fn unary(c: &Case, log: &mut Log) -> R<()> {
    let ins = leaves(c, &["x"])?;
    let x = &ins[0].1;
    let y = match c.op.as_str() {
        "neg" => x.neg(),
        "add_scalar" => x.add_scalar(c.f32("scalar")?),
        "mul_scalar" => x.mul_scalar(c.f32("scalar")?),
        "powf" => x.powf(c.f32("exponent")?),
        "relu" => x.relu(),
        "leaky_relu" => x.leaky_relu(c.f32("slope")?),
        "tanh" => x.tanh(),
        "sigmoid" => x.sigmoid(),
        "exp" => x.exp(),
        "log" => x.log(),
        "sqrt" => x.sqrt(),
        _ => x.abs(),
    }
    .ctx(c)?;
    finish(c, log, &y, &ins, STRICT, |_| STRICT)
}

fn reduce(c: &Case, log: &mut Log) -> R<()> {
    let ins = leaves(c, &["x"])?;
    let x = &ins[0].1;
    let y = match c.op.as_str() {
        "sum_all" => x.sum_all(),
        "mean_all" => x.mean_all(),
        op => {
            let (axes, keepdim) = (c.usizes("axes")?, c.bool("keepdim")?);
            match op {
                "sum" => x.sum(&axes, keepdim),
                "mean" => x.mean(&axes, keepdim),
                _ => x.max(&axes, keepdim),
            }
        }
    }
    .ctx(c)?;
    // A maximum is one of the inputs: exact. Its gradient splits gy over ties: one division.
    let tol_y = if c.op == "max" { EXACT } else { REDUCE };
    finish(c, log, &y, &ins, tol_y, |_| STRICT)
}

fn layout(c: &Case, log: &mut Log) -> R<()> {
    if c.op == "concat" {
        let n = c.usize("n")?;
        let names: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let ins = leaves(c, &refs)?;
        let vars: Vec<&Var> = ins.iter().map(|(_, v)| v).collect();
        let y = Var::concat(&vars, c.usize("axis")?).ctx(c)?;
        return finish(c, log, &y, &ins, EXACT, |_| EXACT);
    }
    let ins = leaves(c, &["x"])?;
    let x = &ins[0].1;
    let y = match c.op.as_str() {
        "permute" => x.permute(&c.usizes("dims")?),
        "narrow" => x.narrow(c.usize("axis")?, c.usize("start")?, c.usize("len")?),
        "broadcast_to" => x.broadcast_to(&c.usizes("shape")?),
        _ => x.reshape(&c.usizes("shape")?),
    }
    .ctx(c)?;
    // broadcast_to's gradient sums over the repeated dims; the others only move values.
    let tol_grad = if c.op == "broadcast_to" {
        REDUCE
    } else {
        EXACT
    };
    finish(c, log, &y, &ins, EXACT, |_| tol_grad)
}

fn conv2d(c: &Case, log: &mut Log) -> R<()> {
    let pad_mode = match c.str("pad_mode")?.as_str() {
        "zeros" => PadMode::Zeros,
        "reflect" => PadMode::Reflect,
        m => return Err(format!("{}: unknown pad_mode {m}", c.id())),
    };
    let p = Conv2dParams {
        stride: c.pair("stride")?,
        padding: c.pair("padding")?,
        dilation: c.pair("dilation")?,
        groups: c.usize("groups")?,
        pad_mode,
    };
    let names: &[&str] = if c.bool("bias")? {
        &["x", "w", "b"]
    } else {
        &["x", "w"]
    };
    let ins = leaves(c, names)?;
    let bias = ins.get(2).map(|(_, v)| v);
    let y = Var::conv2d(&ins[0].1, &ins[1].1, bias, p).ctx(c)?;
    finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
}

fn pool(c: &Case, log: &mut Log) -> R<()> {
    let p = Pool2dParams {
        kernel: c.pair("kernel")?,
        stride: c.pair("stride")?,
        padding: c.pair("padding")?,
        count_include_pad: c.bool("count_include_pad")?,
    };
    let ins = leaves(c, &["x"])?;
    let x = &ins[0].1;
    if c.op == "avg_pool2d" {
        let y = x.avg_pool2d(p).ctx(c)?;
        finish(c, log, &y, &ins, REDUCE, |_| REDUCE)
    } else {
        // The maximum is an input value; overlapping windows sum their gradients.
        let y = x.max_pool2d(p).ctx(c)?;
        finish(c, log, &y, &ins, EXACT, |_| REDUCE)
    }
}

fn resize(c: &Case, log: &mut Log) -> R<()> {
    let size = c.pair("size")?;
    let mode = match c.str("mode")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "bilinear" => ResizeMode::Bilinear {
            align_corners: c.bool("align_corners")?,
        },
        m => return Err(format!("{}: unknown mode {m}", c.id())),
    };
    let ins = leaves(c, &["x"])?;
    let y = ins[0].1.resize2d(size, mode).ctx(c)?;
    if mode == ResizeMode::Nearest {
        // Copies forward; the backward sums the few outputs that read each input.
        finish(c, log, &y, &ins, EXACT, |_| REDUCE)
    } else {
        // The weights come from float32 source coordinates, whose rounding grows with the size.
        finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
    }
}

fn norm(c: &Case, log: &mut Log) -> R<()> {
    let eps = c.f32("eps")?;
    match c.op.as_str() {
        "instance_norm" => {
            let names: &[&str] = if c.bool("affine")? {
                &["x", "weight", "bias"]
            } else {
                &["x"]
            };
            let ins = leaves(c, names)?;
            let (w, b) = (ins.get(1).map(|(_, v)| v), ins.get(2).map(|(_, v)| v));
            let y = ins[0].1.instance_norm(w, b, eps).ctx(c)?;
            finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
        }
        "pono" => {
            let ins = leaves(c, &["x"])?;
            let y = ins[0].1.pono(eps).ctx(c)?;
            finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
        }
        _ => {
            let norm = match c.str("norm")?.as_str() {
                "pono" => SpadeNorm::Pono,
                "instance" => SpadeNorm::Instance,
                m => return Err(format!("{}: unknown norm {m}", c.id())),
            };
            let ins = leaves(c, &["x", "gamma", "beta"])?;
            let y = ins[0]
                .1
                .spade_modulate(&ins[1].1, &ins[2].1, norm, eps)
                .ctx(c)?;
            finish(c, log, &y, &ins, BALANCED, |_| BALANCED)
        }
    }
}

fn unfold(c: &Case, log: &mut Log) -> R<()> {
    let p = UnfoldParams {
        kernel: c.pair("kernel")?,
        stride: c.pair("stride")?,
        padding: c.pair("padding")?,
        dilation: c.pair("dilation")?,
    };
    if c.op == "unfold" {
        // unfold copies; its adjoint (fold) sums overlapping windows.
        let ins = leaves(c, &["x"])?;
        let y = ins[0].1.unfold(p).ctx(c)?;
        finish(c, log, &y, &ins, EXACT, |_| REDUCE)
    } else {
        let ins = leaves(c, &["cols"])?;
        let y = ins[0].1.fold(c.pair("output_size")?, p).ctx(c)?;
        finish(c, log, &y, &ins, REDUCE, |_| EXACT)
    }
}

fn corr_warp(c: &Case, log: &mut Log) -> R<()> {
    let p = CorrWarpParams {
        scale: c.f32("scale")?,
        normalize: c.bool("normalize")?,
        eps: c.f32("eps")?,
    };
    // Normalised descriptors at a large scale make logits of ±scale: errors grow with the scale.
    let tol = if p.normalize && p.scale > 10.0 {
        PERMISSIVE
    } else {
        BALANCED
    };
    let ins = leaves(c, &["q", "k", "v"])?;
    let (q, k, v) = (&ins[0].1, &ins[1].1, &ins[2].1);
    let y = if c.bool("attn")? {
        let (y, attn) = Var::corr_warp_with_attn(q, k, v, p).ctx(c)?;
        log.check(c, "attn", &attn, tol);
        y
    } else {
        Var::corr_warp(q, k, v, p).ctx(c)?
    };
    finish(c, log, &y, &ins, tol, |_| tol)
}

fn adam(c: &Case, log: &mut Log) -> R<()> {
    let backend = engine::backend::for_device(Device::Cpu).ctx(c)?;
    let mut param = c.t("p0")?;
    let mut m = Tensor::zeros(param.dims());
    let mut v = Tensor::zeros(param.dims());
    let steps = c.usize("steps")?;
    for step in 1..=steps {
        let p = AdamParams {
            lr: c.f32("lr")?,
            beta1: c.f32("beta1")?,
            beta2: c.f32("beta2")?,
            eps: c.f32("eps")?,
            weight_decay: c.f32("weight_decay")?,
            decoupled: c.bool("decoupled")?,
            step: step as u64,
        };
        backend
            .adam_step(&mut param, &c.t(&format!("g{step}"))?, &mut m, &mut v, p)
            .ctx(c)?;
        log.check(c, &format!("p{step}"), &param, STRICT);
    }
    log.check(c, "m", &m, MOMENT_M);
    log.check(c, "v", &v, MOMENT_V);
    Ok(())
}

/// Runs every case of one fixture file through [`run_case`].
fn run_family(stem: &str) {
    run_fixture(stem, run_case);
}

/// One test per fixture file, named after it (`family::conv` runs tests/fixtures/conv.safetensors),
/// and the list `FAMILIES` of those files, from one list so the two cannot drift apart.
macro_rules! family_tests {
    ($($name:ident),*) => {
        const FAMILIES: &[&str] = &[$(stringify!($name)),*];
        mod family {
            $( #[test] fn $name() { super::run_family(stringify!($name)); } )*
        }
    };
}

family_tests!(
    elementwise,
    reduce,
    matmul,
    layout,
    conv,
    pool,
    resize,
    norm,
    softmax,
    unfold,
    corr_warp,
    loss,
    adam
);

#[test]
fn every_fixture_file_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".safetensors")
                .map(str::to_string)
        })
        .collect();
    on_disk.sort();
    // Fixtures of other tests, each consumed whole by its own test.
    const ELSEWHERE: [&str; 4] = [
        "metrics_reference",       // src/metrics/ssim.rs and psnr.rs
        "model_tiny",              // tests/model_parity.rs
        "model_tiny_stages",       // tests/model_parity_stages.rs
        "model_tiny_train_stages", // tests/model_parity_train_stages.rs
    ];
    let mut tested: Vec<String> = FAMILIES
        .iter()
        .chain(ELSEWHERE.iter())
        .map(|s| s.to_string())
        .collect();
    tested.sort();
    assert_eq!(
        on_disk, tested,
        "fixture files vs the families this test runs"
    );
}

/// Every op of the backend contract has at least one fixture case.
#[test]
fn every_primitive_has_a_case() {
    let wanted = [
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "add_scalar",
        "mul_scalar",
        "powf",
        "relu",
        "leaky_relu",
        "tanh",
        "sigmoid",
        "exp",
        "log",
        "sqrt",
        "abs",
        "prelu",
        "sum",
        "mean",
        "max",
        "sum_all",
        "mean_all",
        "matmul",
        "permute",
        "narrow",
        "concat",
        "broadcast_to",
        "conv2d",
        "avg_pool2d",
        "max_pool2d",
        "resize2d",
        "unfold",
        "fold",
        "instance_norm",
        "pono",
        "spade_modulate",
        "softmax",
        "corr_warp",
        "l1_loss",
        "mse_loss",
        "adam",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for &stem in FAMILIES {
        let fx = Fixture::load(stem).unwrap_or_else(|e| panic!("{e}"));
        for name in fx.case_names() {
            seen.insert(fx.case(&name).unwrap_or_else(|e| panic!("{e}")).op);
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|op| !seen.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "ops without a fixture case: {missing:?}"
    );
}

/// The bookkeeping that makes "every case consumed" hold: unread tensors and params are reported.
#[test]
fn unread_tensors_and_params_are_reported() {
    let mut fx = Fixture {
        name: "synthetic".into(),
        meta: Default::default(),
        tensors: Default::default(),
    };
    fx.meta.insert(
        "c1".into(),
        r#"{"op": "relu", "params": {"unused": 1}}"#.into(),
    );
    for key in ["c1.x", "c1.y", "c1.gy", "c1.dx", "c1.extra", "nocase.x"] {
        fx.tensors
            .insert(key.into(), Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    }
    assert_eq!(fx.orphan_tensors(), vec!["nocase.x".to_string()]);
    let case = fx.case("c1").unwrap();
    let mut log = Log::default();
    run_case(&case, &mut log).unwrap();
    assert!(log.errs.is_empty(), "{:?}", log.errs);
    assert_eq!(
        case.unconsumed(),
        vec!["tensor extra".to_string(), "param unused".to_string()]
    );
    // A param the test reads but the metadata lacks is an error, not a default.
    fx.meta
        .insert("c2".into(), r#"{"op": "leaky_relu", "params": {}}"#.into());
    for key in ["c2.x", "c2.y", "c2.gy", "c2.dx"] {
        fx.tensors
            .insert(key.into(), Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    }
    let err = run_case(&fx.case("c2").unwrap(), &mut Log::default()).unwrap_err();
    assert!(err.contains("missing param \"slope\""), "{err}");
}

#[test]
fn assert_close_reports_shape_nan_and_tolerance() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap();
    assert!(check_close("same", &a, &a, EXACT).is_ok());
    let b = Tensor::from_vec(vec![1.0, 2.0, 3.1], [3]).unwrap();
    let err = check_close("off", &b, &a, STRICT).unwrap_err();
    assert!(
        err.contains("worst at [2]") && err.contains("max abs err"),
        "{err}"
    );
    assert!(check_close(
        "loose",
        &b,
        &a,
        Tol {
            rtol: 0.05,
            atol: 0.0
        }
    )
    .is_ok());
    let nan = Tensor::from_vec(vec![1.0, f32::NAN, 3.0], [3]).unwrap();
    assert!(check_close("nan", &nan, &a, PERMISSIVE)
        .unwrap_err()
        .contains("non-finite"));
    let shaped = a.reshape([3, 1]).unwrap();
    assert!(check_close("shape", &shaped, &a, PERMISSIVE)
        .unwrap_err()
        .contains("shape"));
}

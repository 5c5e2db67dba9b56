#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures for every backend primitive (tests/fixtures/*.safetensors).

How to run (from anywhere; CPU only, ~10 s):
    python3 tools/make_op_fixtures.py            # writes tests/fixtures/<family>.safetensors
    python3 tools/make_op_fixtures.py OUT_DIR    # or into another folder

Checked by tests/ops_vs_torch.rs (helpers in tests/common/mod.rs).

Layout of each file (one per op family: elementwise, reduce, matmul, layout, conv, pool, resize,
norm, softmax, unfold, corr_warp, loss, adam):
  * tensors `<case>.<name>`, float32, row-major: the inputs (`x`, `a`, `w`, ...), the outputs (`y`,
    and `attn` for corr_warp), the upstream gradient `gy` (same shape as `y`) and the gradient of
    every input `d<name>` (`dx`, `dw`, `db`, ...) for the loss `sum(y * gy)`;
  * `__metadata__` (string -> string): `torch_version`, `seed`, `generator` (this script's path),
    `reference_dtype`, and, under each case name, a JSON object {"op": ..., "params": {...}} that
    the Rust test reads its op parameters from (nothing is duplicated in Rust).

Determinism: every case draws its inputs from its own generator seeded with SEED + crc32(case name),
so adding a case changes no other case. Scalar parameters are rounded to float32 first so that the
engine sees exactly the value the reference used.

Precision: the inputs are float32; the reference outputs and gradients are computed by PyTorch in
float64 from those exact float32 values and rounded to float32, so a test's tolerance measures the
engine's float32 error only. Every case is also run in float32 PyTorch and must agree with the
float64 result (a guard against discrete differences: ties, nearest-neighbour indices).

Adam: 3 steps of torch.optim.Adam / AdamW on a parameter with given per-step gradients (`g1..g3`),
storing the parameter after each step (`p1..p3`) and the final moments (`m`, `v`).
"""
import json
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611
GENERATOR = "tools/make_op_fixtures.py"


def f32(v):
    """A Python float that is exactly representable in float32."""
    return float(np.float32(v))


class Family:
    """One fixture file: its cases' tensors and metadata."""

    def __init__(self, name):
        self.name = name
        self.tensors = {}
        self.meta = {}

    def case(self, name, op, **params):
        assert name not in self.meta and "." not in name, name
        self.meta[name] = json.dumps({"op": op, "params": params}, sort_keys=True)
        return Case(self, name)


class Case:
    def __init__(self, fam, name):
        self.fam = fam
        self.name = name
        self.g = torch.Generator().manual_seed(SEED + zlib.crc32(name.encode()))

    # ---- inputs (float32) ----
    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g, dtype=torch.float32) * scale

    def uniform(self, lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(shape, generator=self.g, dtype=torch.float32)

    def ints(self, lo, hi, *shape):
        """Small integers as floats: many exact ties."""
        return torch.randint(lo, hi, shape, generator=self.g).float()

    def away_from_zero(self, *shape, lo=0.5):
        sign = torch.where(torch.rand(shape, generator=self.g) < 0.5, -1.0, 1.0)
        return sign * self.uniform(lo, lo + 1.5, *shape)

    def put(self, key, t):
        full = f"{self.name}.{key}"
        assert full not in self.fam.tensors, full
        self.fam.tensors[full] = t.detach().to(torch.float32).contiguous().clone()

    # ---- reference computation ----
    def run(self, fn, inputs, grads=None, check_f32=(1e-3, 1e-4)):
        """fn(dict of tensors) -> dict of outputs; `y` is differentiated with a random `gy`.

        `grads` lists the inputs whose gradient is stored (default: all)."""
        grads = list(inputs) if grads is None else grads
        for k, t in inputs.items():
            assert t.dtype == torch.float32, (self.name, k)
            self.put(k, t)

        def evaluate(dtype, gy):
            leaves = {k: t.to(dtype).requires_grad_(k in grads) for k, t in inputs.items()}
            outs = fn(leaves)
            y = outs["y"]
            if gy is None:
                gy = self.randn(*y.shape)
            y.backward(gy.to(dtype))
            gs = {k: leaves[k].grad for k in grads}
            for k in grads:
                assert gs[k] is not None, (self.name, k)
            return {k: v.detach() for k, v in outs.items()}, gs, gy

        outs64, grads64, gy = evaluate(torch.float64, None)
        outs32, grads32, _ = evaluate(torch.float32, gy)
        rtol, atol = check_f32
        pairs = [(k, outs64[k], outs32[k]) for k in outs64] + [("d" + k, grads64[k], grads32[k]) for k in grads]
        for k, a, b in pairs:
            scale = max(1.0, a.abs().max().item()) if a.numel() else 1.0
            if not torch.allclose(a, b.double(), rtol=rtol, atol=atol * scale):
                err = (a - b.double()).abs().max().item()
                raise SystemExit(f"{self.name}.{k}: float32 torch disagrees with float64 (max err {err:.3g})")
        for k, v in outs64.items():
            self.put(k, v)
        self.put("gy", gy)
        for k, v in grads64.items():
            self.put("d" + k, v)


# ------------------------------------------------------------------------------------------------
# families


def elementwise():
    fam = Family("elementwise")
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    shapes = [
        ("same", (3, 5), (3, 5)),
        ("bcast_mid", (3, 1, 5), (4, 1)),
        ("bcast_rank", (2, 3, 4, 5), (5,)),
        ("bcast_one", (1,), (3, 2)),
        ("bcast_both", (2, 1, 3), (1, 4, 1)),
    ]
    for op, fn in binary.items():
        for tag, sa, sb in shapes:
            c = fam.case(f"{op}_{tag}", op)
            a = c.randn(*sa)
            b = c.away_from_zero(*sb) if op == "div" else c.randn(*sb)
            c.run(lambda t, fn=fn: {"y": fn(t["a"], t["b"])}, {"a": a, "b": b})

    def unary(name, op, fn, x, **params):
        c = fam.case(name, op, **params)
        c.run(lambda t: {"y": fn(t["x"])}, {"x": x})

    def mk(name):  # a generator for the inputs of a case, seeded like the case itself
        return Case(fam, name)

    unary("neg", "neg", torch.neg, mk("neg").randn(3, 7))
    s = f32(-0.7)
    unary("add_scalar", "add_scalar", lambda x: x + s, mk("add_scalar").randn(2, 3, 5), scalar=s)
    m = f32(2.5)
    unary("mul_scalar", "mul_scalar", lambda x: x * m, mk("mul_scalar").randn(4, 1, 3), scalar=m)
    for tag, p, pos in [("2", 2.0, False), ("3", 3.0, False), ("half", 0.5, True), ("m1_5", -1.5, True), ("0_3", 0.3, True)]:
        g = mk(f"powf_{tag}")
        x = g.uniform(0.3, 2.5, 3, 5) if pos else g.randn(3, 5)
        p = f32(p)
        unary(f"powf_{tag}", "powf", lambda x, p=p: x.pow(p), x, exponent=p)
    unary("relu", "relu", torch.relu, mk("relu").randn(5, 7))
    with_zeros = mk("zeros").randn(4, 6)
    with_zeros[::2, 1::2] = 0.0
    unary("relu_at_zero", "relu", torch.relu, with_zeros.clone())
    for tag, sl in [("0_2", 0.2), ("0_01", 0.01)]:
        sl = f32(sl)
        unary(f"leaky_relu_{tag}", "leaky_relu", lambda x, sl=sl: F.leaky_relu(x, sl), mk(f"leaky_{tag}").randn(3, 4, 5), slope=sl)
    sl = f32(0.2)
    unary("leaky_relu_at_zero", "leaky_relu", lambda x: F.leaky_relu(x, sl), with_zeros.clone(), slope=sl)
    unary("tanh", "tanh", torch.tanh, mk("tanh").randn(3, 9, scale=2.0))
    unary("sigmoid", "sigmoid", torch.sigmoid, mk("sigmoid").randn(3, 9, scale=3.0))
    big = mk("sigmoid_big").randn(2, 5, scale=30.0)
    unary("sigmoid_large", "sigmoid", torch.sigmoid, big)
    unary("exp", "exp", torch.exp, mk("exp").randn(2, 7, scale=2.0))
    unary("log", "log", torch.log, mk("log").uniform(0.05, 5.0, 3, 7))
    unary("sqrt", "sqrt", torch.sqrt, mk("sqrt").uniform(0.05, 5.0, 3, 7))
    unary("abs", "abs", torch.abs, mk("abs").randn(5, 3))
    unary("abs_at_zero", "abs", torch.abs, with_zeros.clone())

    # PReLU: one slope, per channel (dim 1), and with exact zeros in x.
    for tag, xs, cs in [("single", (3, 4, 5), 1), ("per_channel", (2, 4, 3, 5), 4), ("per_channel_2d", (5, 3), 3)]:
        c = fam.case(f"prelu_{tag}", "prelu")
        x = c.randn(*xs)
        alpha = c.uniform(0.05, 0.5, cs)
        c.run(lambda t: {"y": F.prelu(t["x"], t["alpha"])}, {"x": x, "alpha": alpha})
    c = fam.case("prelu_at_zero", "prelu")
    x = c.randn(2, 3, 4)
    x[:, :, ::2] = 0.0
    c.run(lambda t: {"y": F.prelu(t["x"], t["alpha"])}, {"x": x, "alpha": c.uniform(0.05, 0.5, 3)})
    return fam


def reduce():
    fam = Family("reduce")
    fns = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}
    cases = [
        ("sum_axis1_keep", "sum", (3, 5, 7), [1], True, False),
        ("sum_axes02", "sum", (3, 5, 7), [0, 2], False, False),
        ("sum_all", "sum", (3, 4, 5), [], False, False),
        ("sum_all_keep", "sum", (2, 3, 5), [], True, False),
        ("sum_size1_axis", "sum", (3, 1, 5), [1], False, False),
        ("sum_long_row", "sum", (2, 4099), [1], False, False),
        ("mean_axis2", "mean", (2, 3, 9), [2], False, False),
        ("mean_axes13_keep", "mean", (2, 3, 4, 5), [1, 3], True, False),
        ("mean_all", "mean", (3, 1, 5), [], False, False),
        ("mean_long_row_keep", "mean", (3, 4097), [1], True, False),
        ("max_axis1", "max", (4, 6, 3), [1], False, False),
        ("max_last_keep", "max", (3, 7), [1], True, False),
        ("max_axes02", "max", (3, 4, 5), [0, 2], False, False),
        ("max_all", "max", (3, 4, 5), [], False, False),
        ("max_ties_last", "max", (4, 5, 6), [2], False, True),
        ("max_ties_axes02_keep", "max", (4, 5, 6), [0, 2], True, True),
        ("max_ties_all", "max", (3, 4), [], False, True),
    ]
    for name, op, shape, axes, keepdim, ties in cases:
        c = fam.case(name, op, axes=axes, keepdim=keepdim)
        x = c.ints(-3, 3, *shape) if ties else c.randn(*shape)
        dims = tuple(axes) if axes else tuple(range(len(shape)))
        c.run(lambda t, op=op, dims=dims, k=keepdim: {"y": fns[op](t["x"], dim=dims, keepdim=k)}, {"x": x})
    for op, fn in [("sum_all", torch.sum), ("mean_all", torch.mean)]:
        c = fam.case(f"{op}_fn", op)
        c.run(lambda t, fn=fn: {"y": fn(t["x"])}, {"x": c.randn(3, 7, 2)})
    return fam


def matmul():
    fam = Family("matmul")
    # (name, a stored shape, b stored shape, trans_a, trans_b)
    cases = [
        ("mm", (5, 7), (7, 3), False, False),
        ("mm_ta", (7, 5), (7, 3), True, False),
        ("mm_tb", (5, 7), (3, 7), False, True),
        ("mm_ta_tb", (7, 5), (3, 7), True, True),
        ("mm_outer_k1", (4, 1), (1, 6), False, False),
        ("bmm", (3, 5, 17), (3, 17, 9), False, False),
        ("bmm_m1_ta_tb", (2, 17, 1), (2, 9, 17), True, True),
        ("bmm_rank4", (2, 3, 4, 6), (2, 3, 6, 5), False, False),
        ("bmm_bcast_b", (3, 5, 7), (7, 4), False, False),
        ("bmm_bcast_b_tb", (3, 5, 7), (4, 7), False, True),
        ("bmm_bcast_a_tb", (5, 7), (3, 4, 7), False, True),
        ("bmm_bcast_a_ta", (7, 5), (2, 7, 3), True, False),
    ]
    for name, sa, sb, ta, tb in cases:
        c = fam.case(name, "matmul", trans_a=ta, trans_b=tb)

        def fn(t, ta=ta, tb=tb):
            a = t["a"].transpose(-1, -2) if ta else t["a"]
            b = t["b"].transpose(-1, -2) if tb else t["b"]
            return {"y": torch.matmul(a, b)}

        c.run(fn, {"a": c.randn(*sa), "b": c.randn(*sb)})
    return fam


def layout():
    fam = Family("layout")
    for name, shape, dims in [("permute_3d", (2, 3, 5), [2, 0, 1]), ("permute_nchw_nhwc", (2, 3, 4, 5), [0, 2, 3, 1]), ("permute_size1", (3, 1, 4), [1, 2, 0])]:
        c = fam.case(name, "permute", dims=dims)
        c.run(lambda t, d=dims: {"y": t["x"].permute(*d)}, {"x": c.randn(*shape)})
    for name, shape, axis, start, ln in [("narrow_mid", (3, 7, 4), 1, 2, 3), ("narrow_last_one", (2, 5), 1, 4, 1), ("narrow_first", (5, 3, 2), 0, 1, 3)]:
        c = fam.case(name, "narrow", axis=axis, start=start, len=ln)
        c.run(lambda t, a=axis, s=start, n=ln: {"y": t["x"].narrow(a, s, n)}, {"x": c.randn(*shape)})
    for name, shapes, axis in [("concat_axis1_three", [(2, 3, 4), (2, 1, 4), (2, 5, 4)], 1), ("concat_axis0", [(1, 3), (4, 3)], 0), ("concat_last", [(2, 3, 2), (2, 3, 5)], 2)]:
        c = fam.case(name, "concat", axis=axis, n=len(shapes))
        xs = {f"x{i}": c.randn(*s) for i, s in enumerate(shapes)}
        c.run(lambda t, a=axis, n=len(shapes): {"y": torch.cat([t[f"x{i}"] for i in range(n)], a)}, xs)
    for name, shape, to in [("broadcast_to_4d", (3, 1, 5), [2, 3, 4, 5]), ("broadcast_to_one", (1,), [4, 3]), ("broadcast_to_same", (2, 3), [2, 3])]:
        c = fam.case(name, "broadcast_to", shape=to)
        c.run(lambda t, s=to: {"y": t["x"].expand(*s)}, {"x": c.randn(*shape)})
    c = fam.case("reshape", "reshape", shape=[6, 4])
    c.run(lambda t: {"y": t["x"].reshape(6, 4)}, {"x": c.randn(2, 3, 4)})
    return fam


def conv():
    fam = Family("conv")
    # (name, N, Cin, Cout, H, W, k, stride, padding, dilation, groups, pad_mode, bias)
    cases = [
        ("conv_k3p1_b3", 3, 3, 5, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1), 1, "zeros", True),
        ("conv_reflect_s2", 1, 4, 6, 9, 7, (3, 3), (2, 2), (1, 1), (1, 1), 1, "reflect", True),
        ("conv_reflect_k7p3", 2, 3, 2, 8, 8, (7, 7), (1, 1), (3, 3), (1, 1), 1, "reflect", False),
        ("conv_reflect_rect", 1, 2, 3, 6, 9, (3, 5), (1, 2), (1, 2), (1, 1), 1, "reflect", True),
        ("conv_dil2_nobias", 2, 3, 4, 11, 10, (3, 3), (1, 1), (2, 2), (2, 2), 1, "zeros", False),
        ("conv_dil2_s2", 1, 2, 3, 12, 9, (3, 3), (2, 2), (1, 1), (2, 2), 1, "zeros", True),
        ("conv_groups2", 2, 6, 4, 5, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2, "zeros", True),
        ("conv_depthwise_s2", 1, 5, 5, 8, 9, (3, 3), (2, 2), (1, 1), (1, 1), 5, "zeros", False),
        ("conv_depthwise_mult2_reflect", 3, 3, 6, 7, 5, (3, 3), (1, 1), (1, 1), (1, 1), 3, "reflect", True),
        ("conv_1x1_nobias", 3, 7, 3, 5, 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, "zeros", False),
        ("conv_k4s2p1", 2, 3, 4, 9, 9, (4, 4), (2, 2), (1, 1), (1, 1), 1, "zeros", True),
        ("conv_rect_k1x3", 1, 3, 2, 4, 7, (1, 3), (1, 2), (0, 1), (1, 1), 1, "zeros", True),
        ("conv_cout1_hw1", 3, 4, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), 1, "zeros", True),
        ("conv_no_pad_valid", 2, 2, 3, 6, 5, (3, 3), (1, 1), (0, 0), (1, 1), 1, "zeros", True),
    ]
    for name, n, ci, co, h, w, k, s, p, d, g, mode, bias in cases:
        c = fam.case(name, "conv2d", stride=list(s), padding=list(p), dilation=list(d), groups=g, pad_mode=mode, bias=bias)
        inputs = {"x": c.randn(n, ci, h, w), "w": c.randn(co, ci // g, *k, scale=(ci // g * k[0] * k[1]) ** -0.5)}
        if bias:
            inputs["b"] = c.randn(co, scale=0.5)

        def fn(t, s=s, p=p, d=d, g=g, mode=mode):
            x = t["x"]
            if mode == "reflect":
                x = F.pad(x, (p[1], p[1], p[0], p[0]), mode="reflect")
                pad = 0
            else:
                pad = p
            return {"y": F.conv2d(x, t["w"], t.get("b"), stride=s, padding=pad, dilation=d, groups=g)}

        c.run(fn, inputs)
    return fam


def pool():
    fam = Family("pool")
    # (name, op, shape, kernel, stride, padding, count_include_pad, ties)
    cases = [
        ("avg_k3s2p1_excl", "avg_pool2d", (2, 3, 7, 9), 3, 2, 1, False, False),
        ("avg_k3s2p1_incl", "avg_pool2d", (2, 3, 7, 9), 3, 2, 1, True, False),
        ("avg_k2s2", "avg_pool2d", (1, 2, 6, 8), 2, 2, 0, False, False),
        ("avg_k2s2_odd", "avg_pool2d", (3, 1, 7, 5), 2, 2, 0, True, False),
        ("avg_k3s1p1_excl", "avg_pool2d", (1, 2, 4, 5), 3, 1, 1, False, False),
        ("max_k2s2", "max_pool2d", (2, 3, 6, 7), 2, 2, 0, False, False),
        ("max_k3s2p1", "max_pool2d", (1, 2, 9, 8), 3, 2, 1, False, False),
        ("max_k2s2_ties", "max_pool2d", (2, 2, 6, 6), 2, 2, 0, False, True),
        ("max_k3s2p1_ties", "max_pool2d", (1, 3, 7, 7), 3, 2, 1, False, True),
        ("max_k3s1p1_overlap", "max_pool2d", (3, 1, 5, 4), 3, 1, 1, False, False),
    ]
    for name, op, shape, k, s, p, cip, ties in cases:
        c = fam.case(name, op, kernel=[k, k], stride=[s, s], padding=[p, p], count_include_pad=cip)
        x = c.ints(-2, 2, *shape) if ties else c.randn(*shape)
        if op == "avg_pool2d":
            fn = lambda t, k=k, s=s, p=p, cip=cip: {"y": F.avg_pool2d(t["x"], k, s, p, count_include_pad=cip)}
        else:
            fn = lambda t, k=k, s=s, p=p: {"y": F.max_pool2d(t["x"], k, s, p)}
        c.run(fn, {"x": x})
    return fam


def resize():
    fam = Family("resize")
    # (name, shape, out, mode, align_corners)
    cases = [
        ("nearest_up2", (2, 3, 4, 5), (8, 10), "nearest", None),
        ("nearest_up3", (1, 2, 4, 3), (12, 9), "nearest", None),
        ("nearest_down", (2, 1, 9, 8), (3, 4), "nearest", None),
        ("nearest_odd_up", (1, 2, 5, 4), (7, 6), "nearest", None),
        ("bilinear_up_odd", (2, 2, 5, 7), (11, 16), "bilinear", False),
        ("bilinear_up2", (1, 3, 6, 5), (12, 10), "bilinear", False),
        ("bilinear_down", (1, 2, 9, 11), (4, 5), "bilinear", False),
        ("bilinear_down_to1", (2, 1, 5, 6), (1, 3), "bilinear", False),
        ("bilinear_ac_up", (2, 2, 5, 7), (11, 16), "bilinear", True),
        ("bilinear_ac_down", (1, 2, 9, 11), (4, 5), "bilinear", True),
        ("bilinear_ac_to1", (1, 2, 5, 6), (1, 4), "bilinear", True),
        ("bilinear_from1x1", (3, 2, 1, 1), (3, 5), "bilinear", False),
    ]
    for name, shape, out, mode, ac in cases:
        params = {"size": list(out), "mode": mode}
        if mode == "bilinear":
            params["align_corners"] = ac
        c = fam.case(name, "resize2d", **params)
        if mode == "nearest":
            check_nearest_indices(name, shape, out)
            fn = lambda t, out=out: {"y": F.interpolate(t["x"], size=out, mode="nearest")}
        else:
            fn = lambda t, out=out, ac=ac: {"y": F.interpolate(t["x"], size=out, mode="bilinear", align_corners=ac)}
        c.run(fn, {"x": c.randn(*shape)})
    return fam


def check_nearest_indices(name, shape, out):
    """PyTorch computes nearest indices in float; the engine's contract is floor(dst*in/out) in
    integers. Keep only sizes where the two agree, so the fixture tests the contract."""
    h, w = shape[2], shape[3]
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    y = F.interpolate(x, size=out, mode="nearest")[0, 0]
    for i in range(out[0]):
        for j in range(out[1]):
            want = (i * h // out[0]) * w + (j * w // out[1])
            assert y[i, j].item() == want, f"{name}: torch nearest index differs from floor(dst*in/out)"


def pono_ref(x, eps):
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=True)
    return (x - mean) / torch.sqrt(var + eps)


def norm():
    fam = Family("norm")
    eps = f32(1e-5)
    for name, shape, affine in [("instance_affine", (3, 4, 5, 7), True), ("instance_plain", (2, 3, 6, 5), False), ("instance_h1", (1, 2, 1, 9), True), ("instance_affine_b1", (1, 5, 3, 3), True)]:
        c = fam.case(name, "instance_norm", eps=eps, affine=affine)
        inputs = {"x": c.randn(*shape, scale=2.0) + 0.5}
        if affine:
            inputs["weight"] = c.uniform(0.5, 1.5, shape[1])
            inputs["bias"] = c.randn(shape[1], scale=0.3)
        c.run(lambda t: {"y": F.instance_norm(t["x"], weight=t.get("weight"), bias=t.get("bias"), eps=eps)}, inputs)
    for name, shape in [("pono", (2, 5, 3, 4)), ("pono_c2_w1", (1, 2, 4, 1)), ("pono_b3", (3, 7, 2, 3))]:
        c = fam.case(name, "pono", eps=eps)
        c.run(lambda t: {"y": pono_ref(t["x"], eps)}, {"x": c.randn(*shape, scale=1.5) - 0.3})
    for name, shape, nm in [("spade_pono", (2, 5, 3, 4), "pono"), ("spade_instance", (2, 3, 5, 4), "instance"), ("spade_pono_b1", (1, 3, 1, 5), "pono"), ("spade_instance_b3", (3, 2, 4, 3), "instance")]:
        c = fam.case(name, "spade_modulate", norm=nm, eps=eps)
        inputs = {"x": c.randn(*shape, scale=1.5) + 0.2, "gamma": c.randn(*shape, scale=0.5), "beta": c.randn(*shape, scale=0.5)}

        def fn(t, nm=nm):
            n = pono_ref(t["x"], eps) if nm == "pono" else F.instance_norm(t["x"], eps=eps)
            return {"y": n * (1 + t["gamma"]) + t["beta"]}

        c.run(fn, inputs)
    return fam


def softmax():
    fam = Family("softmax")
    for name, shape, scale in [("softmax_3x7", (3, 7), 1.0), ("softmax_row4096", (2, 4096), 3.0), ("softmax_len1", (2, 3, 1), 1.0), ("softmax_large_logits", (1, 5, 33), 30.0), ("softmax_rank4", (2, 1, 3, 5), 2.0)]:
        c = fam.case(name, "softmax")
        c.run(lambda t: {"y": F.softmax(t["x"], dim=-1)}, {"x": c.randn(*shape, scale=scale)})
    return fam


def unfold():
    fam = Family("unfold")
    # (name, shape of x or of the output of fold, kernel, stride, padding, dilation)
    cases = [
        ("k3p1", (2, 3, 5, 6), 3, 1, 1, 1),
        ("patch4_s4", (1, 3, 8, 12), 4, 4, 0, 1),
        ("k3s2p2d2", (1, 2, 9, 7), 3, 2, 2, 2),
        ("k2s1_b3", (3, 1, 4, 3), 2, 1, 0, 1),
    ]
    for tag, shape, k, s, p, d in cases:
        geo = dict(kernel=[k, k], stride=[s, s], padding=[p, p], dilation=[d, d])
        c = fam.case(f"unfold_{tag}", "unfold", **geo)
        c.run(lambda t, k=k, s=s, p=p, d=d: {"y": F.unfold(t["x"], k, dilation=d, padding=p, stride=s)}, {"x": c.randn(*shape)})
        # fold: the adjoint, on columns of the matching shape (overlaps summed).
        n, ch, h, w = shape
        oh, ow = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
        c = fam.case(f"fold_{tag}", "fold", output_size=[h, w], **geo)
        cols = c.randn(n, ch * k * k, oh * ow)
        c.run(lambda t, h=h, w=w, k=k, s=s, p=p, d=d: {"y": F.fold(t["cols"], (h, w), k, dilation=d, padding=p, stride=s)}, {"cols": cols})
    return fam


def corr_warp_ref(q, k, v, scale, normalize, eps):
    """The composition the fused primitive must equal: centre over C, divide by (L2 norm + eps),
    S = scale * q^T k, A = softmax over M, out = A v."""
    if normalize:
        q = q - q.mean(1, keepdim=True)
        q = q / (q.norm(dim=1, keepdim=True) + eps)
        k = k - k.mean(1, keepdim=True)
        k = k / (k.norm(dim=1, keepdim=True) + eps)
    s = scale * torch.bmm(q.transpose(1, 2), k)
    a = F.softmax(s, dim=-1)
    return torch.bmm(a, v), a


def corr_warp():
    fam = Family("corr_warp")
    eps = f32(1e-6)
    # (name, B, C, N, M, V, normalize, scale, store attn)
    cases = [
        ("norm_small", 2, 7, 12, 10, 3, True, 100.0, True),
        ("norm_scale10", 2, 5, 9, 13, 4, True, 10.0, True),
        ("plain_small", 2, 7, 12, 10, 3, False, 1.0, True),
        ("plain_scale_half", 1, 6, 8, 5, 2, False, 0.5, True),
        ("norm_c16_n64_v48", 1, 16, 64, 64, 48, True, 100.0, False),
    ]
    for name, b, ch, n, m, vd, normalize, scale, attn in cases:
        scale = f32(scale)
        c = fam.case(name, "corr_warp", scale=scale, normalize=normalize, eps=eps, attn=attn)
        inputs = {"q": c.randn(b, ch, n), "k": c.randn(b, ch, m), "v": c.randn(b, m, vd)}

        def fn(t, scale=scale, normalize=normalize, attn=attn):
            out, a = corr_warp_ref(t["q"], t["k"], t["v"], scale, normalize, eps)
            return {"y": out, "attn": a} if attn else {"y": out}

        # Scale 100 on unit vectors makes the float32 run noticeably noisier.
        c.run(fn, inputs, check_f32=(1e-2, 1e-3))
    return fam


def loss():
    fam = Family("loss")
    for name, op, shape in [("l1", "l1_loss", (3, 5)), ("l1_nchw_ties", "l1_loss", (2, 3, 4, 5)), ("mse", "mse_loss", (3, 5)), ("mse_nchw", "mse_loss", (2, 3, 4, 5)), ("l1_one", "l1_loss", (1,))]:
        c = fam.case(name, op)
        a = c.randn(*shape)
        b = c.randn(*shape)
        if "ties" in name:
            b.view(-1)[::3] = a.view(-1)[::3]  # exact equality: PyTorch's gradient is 0 there
        fn = F.l1_loss if op == "l1_loss" else F.mse_loss
        c.run(lambda t, fn=fn: {"y": fn(t["a"], t["b"])}, {"a": a, "b": b})
    return fam


def adam():
    fam = Family("adam")
    cases = [
        ("adam_b0_eps1e3", 0.0, 0.9, 1e-3, 0.0, False),
        ("adam_default", 0.9, 0.999, 1e-8, 0.0, False),
        ("adam_b0_eps1e8_wd", 0.0, 0.9, 1e-8, 0.1, False),
        ("adam_wd", 0.9, 0.999, 1e-8, 0.1, False),
        ("adam_eps1e3_wd", 0.9, 0.999, 1e-3, 0.1, False),
        ("adamw", 0.9, 0.999, 1e-8, 0.1, True),
    ]
    lr = f32(1e-2)
    steps = 3
    for name, b1, b2, eps, wd, decoupled in cases:
        b1, b2, eps, wd = f32(b1), f32(b2), f32(eps), f32(wd)
        c = fam.case(name, "adam", lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, decoupled=decoupled, steps=steps)
        p0 = c.randn(3, 5, 7)
        gs = [c.randn(3, 5, 7, scale=0.1) for _ in range(steps)]
        for g in gs:  # zero and tiny gradients make eps matter
            g.view(-1)[::11] = 0.0
            g.view(-1)[5::13] *= 1e-5
        c.put("p0", p0)
        for dtype in (torch.float32, torch.float64):
            p = torch.nn.Parameter(p0.to(dtype).clone())
            cls = torch.optim.AdamW if decoupled else torch.optim.Adam
            opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
            after = []
            for g in gs:
                p.grad = g.to(dtype).clone()
                opt.step()
                after.append(p.detach().clone())
            if dtype == torch.float32:
                ref32 = after
        for i, (g, pa, p32) in enumerate(zip(gs, after, ref32), start=1):
            assert torch.allclose(pa, p32.double(), rtol=1e-5, atol=1e-6), (name, i)
            c.put(f"g{i}", g)
            c.put(f"p{i}", pa)
        st = opt.state[p]
        c.put("m", st["exp_avg"])
        c.put("v", st["exp_avg_sq"])
    return fam


FAMILIES = [elementwise, reduce, matmul, layout, conv, pool, resize, norm, softmax, unfold, corr_warp, loss, adam]


def save_file(tensors, path, metadata):
    """safetensors writer with a sorted header, so the files are byte-identical from run to run
    (the library's writer orders the header through a hash map)."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for k in sorted(tensors):
        raw = tensors[k].numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-stable reductions from run to run
    total = 0
    for make in FAMILIES:
        fam = make()
        meta = {"torch_version": torch.__version__, "seed": str(SEED), "generator": GENERATOR, "reference_dtype": "float64"}
        for k in meta:
            assert k not in fam.meta, k
        meta.update(fam.meta)
        path = os.path.join(out_dir, f"{fam.name}.safetensors")
        save_file(fam.tensors, path, meta)
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {len(fam.meta)} cases, {len(fam.tensors)} tensors, {size / 1024:.1f} KiB")
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()

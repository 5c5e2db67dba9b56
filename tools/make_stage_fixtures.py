#!/usr/bin/env python3
"""Writes tests/fixtures/model_tiny_stages.safetensors: the `tiny` config's temporal generator G1
and face networks G2 / D2 against the PyTorch reference (tools/reference_stages.py), checked by
tests/model_parity_stages.rs.

How to run (CPU only, about a minute with the build):
    python3 tools/make_stage_fixtures.py              # exports the engine's init, writes the fixture
    python3 tools/make_stage_fixtures.py --export F   # or reuse an exported init file F

1. `cargo test --test model_parity_stages -- --ignored export --exact` writes the engine's
   stage-1 `gen.*` and its `face_gen.*` / `face_disc.*` (with spectral-norm u/v) and the config.
2. Case `g1`: G1 = the stage-1 G widened as init_from_stage1 does, its widened input channels
   set to `perturbation(i)` (flat index over the weight; same formula in the Rust test); inputs
   from `wave` (same formula in the Rust test, not stored); stores `out_eval`, `out_train` and
   summaries `grad.<param>` of sum(out_train · g), plus fingerprints `init.<name>` of every
   exported tensor. Case `g2`: stored crops, refined crop, input gradients, parameter gradient
   summaries. Case `d2`: stored input, logits in evaluation then training mode, gradient
   summaries. Summaries/fingerprints as in tools/make_model_fixtures.py.
All reference values are computed in float64 from float32 inputs and stored as float32.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402
import reference_stages as stages  # noqa: E402
from fixture_io import (  # noqa: E402
    Case, arg_parser, export_init, fingerprint, label_channels, load_tiny_export, perturbation,
    split, start, summary, wave, write_fixture, FINGERPRINT_N, SUMMARY_N)
from make_model_fixtures import render_labels, smooth_images  # noqa: E402

GENERATOR = "tools/make_stage_fixtures.py"
G_SEED, FACE_SEED = 1, 3  # the seeds of tests/model_parity_stages.rs
BATCH = 2
DT = torch.float64


def g1_case(out, meta, cfg, kinds, w32):
    s, cl = cfg["image_size"], label_channels(cfg)
    l = cfg["temporal_window"]
    base, full = 3 + cl, 3 + cl + 3 * (l - 1)
    gen = {n: t for n, t in w32.items() if n.startswith("gen.")}
    wide, widened = stages.widen_from_stage1(gen, base, full)
    assert len(widened) == int(meta["widened"]), (len(widened), meta["widened"])
    for n in widened:
        w = wide[n]
        kk = w.shape[2] * w.shape[3]
        chan = (torch.arange(w.numel()) // kk) % w.shape[1]
        flat = w.reshape(-1).clone()
        flat[chan >= base] = perturbation(w.numel())[chan >= base]
        wide[n] = flat.reshape(w.shape)
    c = Case(out, "g1", "temporal_generator", g_seed=G_SEED, face_seed=FACE_SEED, batch=BATCH,
             window=l, widened=len(widened), exported=len(w32), summary_n=SUMMARY_N,
             fingerprint_n=FINGERPRINT_N)
    for n, t in w32.items():
        c.put(f"init.{n}", fingerprint(t))
    params, buffers = split(kinds, wide, "gen.", DT)
    net = ref.Net(params, buffers)
    warped = wave((BATCH, 3, s, s), 0.013, 0.3, 0.0, 0.9).to(DT)
    label = wave((BATCH, cl, s, s), 0.0071, 1.1, 0.5, 0.5).to(DT)
    prev = wave((BATCH, 3, s, s), 0.029, 2.0, 0.0, 0.8).to(DT)
    g = wave((BATCH, 3, s, s), 0.11, 0.7, 0.0, 1.0).to(DT)
    with torch.no_grad():
        c.put("out_eval", stages.temporal_generator(net, cfg, warped, label, [prev], False))
    y = stages.temporal_generator(net, cfg, warped, label, [prev], True)
    c.put("out_train", y)
    (y * g).sum().backward()
    for n, p in params.items():
        c.put(f"grad.temporal_{n}", summary(p.grad))


def g2_case(out, cfg, kinds, w32):
    c = Case(out, "g2", "face_generator")
    f, cl = cfg["face_crop"], label_channels(cfg)
    label = render_labels(c, BATCH, cl, f)
    crop = smooth_images(c, BATCH, f)
    g = c.randn(BATCH, 3, f, f)
    for k, v in (("label_crop", label), ("crop", crop), ("g", g)):
        c.put(k, v)
    params, buffers = split(kinds, w32, "face_gen.", DT)
    net = ref.Net(params, buffers)
    ld, cd = label.to(DT).requires_grad_(True), crop.to(DT).requires_grad_(True)
    y = stages.face_generator(net, cfg, ld, cd, True)
    c.put("refined", y)
    (y * g.to(DT)).sum().backward()
    c.put("dlabel_crop", ld.grad)
    c.put("dcrop", cd.grad)
    for n, p in params.items():
        c.put(f"grad.{n}", summary(p.grad))


def d2_case(out, cfg, kinds, w32):
    c = Case(out, "d2", "face_discriminator")
    f, cl = cfg["face_crop"], label_channels(cfg)
    x = torch.cat([render_labels(c, BATCH, cl, f), smooth_images(c, BATCH, f)], 1)
    c.put("x", x)
    params, buffers = split(kinds, w32, "face_disc.", DT)
    net = ref.Net(params, buffers)
    xd = x.to(DT)
    with torch.no_grad():
        c.put("logits_eval", stages.face_discriminator(net, cfg, xd, False))
    y = stages.face_discriminator(net, cfg, xd, True)
    c.put("logits_train", y)
    g = c.randn(*y.shape)
    c.put("g", g)
    (y * g.to(DT)).sum().backward()
    for n, p in params.items():
        c.put(f"grad.{n}", summary(p.grad))


def main():
    ap = arg_parser(__doc__)
    args = ap.parse_args()
    root, out_dir, _ = start(ap, args)
    path = args.export or export_init(root, "model_parity_stages",
                                      "model_tiny_stages_init.safetensors")
    meta, cfg, kinds, w32 = load_tiny_export(path)
    out = {"tensors": {}, "meta": {}}
    g1_case(out, meta, cfg, kinds, w32)
    g2_case(out, cfg, kinds, w32)
    d2_case(out, cfg, kinds, w32)
    write_fixture(out, out_dir, "model_tiny_stages.safetensors", GENERATOR, DT)


if __name__ == "__main__":
    main()

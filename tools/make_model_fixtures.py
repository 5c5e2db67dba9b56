#!/usr/bin/env python3
"""Writes tests/fixtures/model_tiny.safetensors: the `tiny` config's stage-1 training against the
PyTorch reference (tools/reference_model.py), checked by tests/model_parity.rs.

How to run (from anywhere; CPU only, about a minute with the build):
    python3 tools/make_model_fixtures.py              # exports the engine's init, writes the fixture
    python3 tools/make_model_fixtures.py --export F   # or reuse an exported init file F

1. `cargo test --test model_parity -- --ignored export` writes the engine's initial weights (the
   init is seeded by name, so the fixture does not store them), the spectral-norm u/v buffers,
   the random VGG19 and the config JSON to a temporary folder.
2. The reference loads them in float64, runs the same inputs (stored) through 3 stage-1
   iterations (G step then D step, Adam with the config's lrs, betas and eps), and records:
   case `stage1`: fingerprints of every initial tensor (`init.<name>`: sum, sum of squares, 8
   elements), the inputs, forward intermediates of the first G step, every loss term of each
   iteration (`loss.<term>`, one value per iteration), summaries of every gradient of the first
   G step (`grad_g.<param>`) and D step (`grad_d.<param>`), of every u/v buffer and parameter
   after iterations 1 and 3 (`sn1.`, `sn3.`; for parameters the update since the start,
   `update1.`, `update3.`: Adam's updates are ~lr per element, far below the weights' size).
   A summary is [sum, L2 norm, max |x|, x[i_0], …, x[i_{n-1}]] with n = min(64, len) and
   i_k = (k·1000003 + 12345) mod len (the same formula in tests/model_parity.rs).
   Focused cases: `spectral_norm` (two training forwards of an SN conv: u, v, the weight used,
   output and gradients), `pono` and `spade` (SPADE layer with PONO: output and every gradient),
   `contextual` (the contextual loss on random features: value, gradients of both inputs).
All reference values are computed in float64 from float32 inputs and stored as float32.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402
from fixture_io import (  # noqa: E402
    Case, adam, arg_parser, export_init, f32, fingerprint, label_channels, load_tiny_export,
    split, start, summary, write_fixture, FINGERPRINT_N, SUMMARY_N)

GENERATOR = "tools/make_model_fixtures.py"
BATCH = 2
ITERATIONS = 3
# Rows of the correlation softmax stored (of the 16² = 256 grid positions).
ATTN_ROWS = [0, 1, 15, 16, 100, 137, 240, 255]
DUMP_DIR = None
DT = torch.float64  # --float32 switches the whole reference to float32 (a diagnostic)


# ---- inputs -------------------------------------------------------------------------------------


def render_labels(case, b, channels, size):
    """Pose-like label maps: 17 coloured limbs (3 channels, values in [0, 1]) between 18 random
    keypoints, plus one binary disk channel per keypoint; a few keypoints missing (nothing drawn)."""
    limbs = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
             (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
    out = torch.zeros(b, channels, size, size)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    for i in range(b):
        pts = 4 + torch.rand(18, 2, generator=case.g) * (size - 8)
        present = torch.rand(18, generator=case.g) > 0.15
        present[1] = True
        for li, (a, c) in enumerate(limbs):
            if not (present[a] and present[c]):
                continue
            p, q = pts[a], pts[c]
            d = q - p
            t = (((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / (d @ d).clamp_min(1e-6)).clamp(0, 1)
            dist = torch.hypot(xx - (p[0] + t * d[0]), yy - (p[1] + t * d[1]))
            colour = torch.rand(3, generator=case.g)
            mask = dist <= 1.0
            for ch in range(3):
                out[i, ch][mask] = colour[ch]
        for k in range(18):
            if present[k] and 3 + k < channels:
                disk = torch.hypot(xx - pts[k, 0], yy - pts[k, 1]) <= 1.5
                out[i, 3 + k][disk] = 1.0
    return out


def smooth_images(case, b, size):
    coarse = torch.randn(b, 3, 8, 8, generator=case.g)
    img = torch.tanh(F.interpolate(coarse, size=(size, size), mode="bilinear",
                                   align_corners=False))
    img = img + 0.05 * torch.randn(b, 3, size, size, generator=case.g)
    return img.clamp(-1, 1)


# ---- the stage-1 case ---------------------------------------------------------------------------


def stage1_case(out, export_path):
    meta, cfg, kinds, w32 = load_tiny_export(export_path)
    case = Case(out, "stage1", "stage1", batch=BATCH, iterations=ITERATIONS,
                attn_rows=ATTN_ROWS, g_seed=int(meta["g_seed"]), vgg_seed=int(meta["vgg_seed"]),
                vgg_div=int(meta["vgg_div"]), summary_n=SUMMARY_N, fingerprint_n=FINGERPRINT_N)
    for name, t in w32.items():
        case.put(f"init.{name}", fingerprint(t, DT))
    init = {n: t.to(DT) for n, t in w32.items()}
    params, buffers = split(kinds, w32, "", DT)
    net = ref.Net(params, buffers)
    g_names = [n for n in params if n.startswith(("corr.", "gen."))]
    d_names = [n for n in params if n.startswith("disc.")]
    assert len(g_names) + len(d_names) == len(params)
    g_opt = adam([params[n] for n in g_names], cfg["optim"], "g")
    d_opt = adam([params[n] for n in d_names], cfg["optim"], "d")

    s, cl = cfg["image_size"], label_channels(cfg)
    label = render_labels(case, BATCH, cl, s)
    exemplar, gt = smooth_images(case, BATCH, s), smooth_images(case, BATCH, s)
    for k, v in (("label", label), ("exemplar", exemplar), ("gt", gt)):
        case.put(k, v)
    label, exemplar, gt = label.to(DT), exemplar.to(DT), gt.to(DT)

    losses = {}
    for it in range(1, ITERATIONS + 1):
        g_opt.zero_grad(set_to_none=True)
        terms, g_total, fake, inter = ref.generator_loss_terms(net, cfg, label, exemplar, gt)
        g_total.backward()
        if it == 1:
            put_forward(case, inter)
            for n in g_names:
                case.put(f"grad_g.{n}", summary(params[n].grad, DT))
        g_opt.step()
        d_opt.zero_grad(set_to_none=True)
        gan_d, d_total = ref.discriminator_loss(net, cfg, label, fake, gt)
        d_total.backward()
        if it == 1:
            for n in d_names:
                case.put(f"grad_d.{n}", summary(params[n].grad, DT))
        d_opt.step()
        terms.update(g_total=g_total, gan_d=gan_d, d_total=d_total)
        for k, v in terms.items():
            losses.setdefault(k, []).append(float(v.detach()))
        if DUMP_DIR:
            dump_state(it, params, net.buffers)
        if it in (1, ITERATIONS):
            for n, t in buffers.items():
                if not n.startswith("vgg."):
                    case.put(f"sn{it}.{n}", summary(net.buffers[n], DT))
            for n, p in params.items():
                case.put(f"update{it}.{n}", summary(p.detach() - init[n], DT))
        print(f"iteration {it}: " + ", ".join(f"{k} {float(v.detach()):.6g}" for k, v in terms.items()))
    for k, v in losses.items():
        case.put(f"loss.{k}", torch.tensor(v, dtype=DT))


def dump_state(it, params, buffers):
    """--dump: every parameter, gradient and u/v buffer after iteration `it`, whole."""
    from safetensors.torch import save_file as st_save
    dump = {f"param{it}.{n}": p.detach().float() for n, p in params.items()}
    dump.update({f"grad{it}.{n}": p.grad.float() for n, p in params.items()
                 if p.grad is not None})
    dump.update({f"buf{it}.{n}": b.float() for n, b in buffers.items()
                 if not n.startswith("vgg.")})
    st_save(dump, os.path.join(DUMP_DIR, f"ref_it{it}.safetensors"))


def put_forward(case, inter):
    corr = inter["corr"]
    case.put("fwd.pose_features", corr["pose_features"])
    case.put("fwd.image_features", corr["image_features"])
    case.put("fwd.gt_features", inter["gt_features"])
    case.put("fwd.attn_rows", corr["attn"][:, ATTN_ROWS, :])
    case.put("fwd.warped", corr["warped"])
    case.put("fwd.fake", inter["fake"])
    for i, (logits, feats) in enumerate(inter["d"]["raw"]):
        case.put(f"fwd.d{i}.logits", logits)
        for j, f in enumerate(feats):
            case.put(f"fwd.d{i}.feat{j}", f)


# ---- focused cases ------------------------------------------------------------------------------


def spectral_norm_case(out):
    c = Case(out, "spectral_norm", "spectral_norm", stride=2, padding=1)
    w, b = c.randn(5, 3, 3, 3, scale=0.5), c.randn(5, scale=0.1)
    u0 = ref._unit(c.randn(5).to(DT)).float()
    v0 = ref._unit(c.randn(27).to(DT)).float()
    x, gy = c.randn(2, 3, 7, 9), c.randn(2, 5, 4, 5)
    for k, v in (("w", w), ("b", b), ("u0", u0), ("v0", v0), ("x", x), ("gy", gy)):
        c.put(k, v)
    wd, bd, xd = (t.to(DT).requires_grad_(True) for t in (w, b, x))
    net = ref.Net({"conv.weight": wd, "conv.bias": bd},
                  {"conv.weight_u": u0.to(DT), "conv.weight_v": v0.to(DT)})
    for i in (1, 2):
        w_used = ref.sn_weight(net, "conv", True)
        c.put(f"u{i}", net.buffers["conv.weight_u"])
        c.put(f"v{i}", net.buffers["conv.weight_v"])
        c.put(f"w_sn{i}", w_used)
    y = F.conv2d(xd, w_used, bd, stride=2, padding=1)
    (y * gy.to(DT)).sum().backward()
    c.put("y", y)
    c.put("dw", wd.grad)
    c.put("db", bd.grad)
    c.put("dx", xd.grad)


def pono_case(out):
    c = Case(out, "pono", "pono", eps=ref.SPADE_EPS)
    x, gy = c.randn(2, 5, 3, 7, scale=2.0) + 0.5, c.randn(2, 5, 3, 7)
    c.put("x", x)
    c.put("gy", gy)
    xd = x.to(DT).requires_grad_(True)
    y = ref.pono(xd)
    (y * gy.to(DT)).sum().backward()
    c.put("y", y)
    c.put("dx", xd.grad)


SPADE_SHAPES = {"mlp_shared": (6, 4), "mlp_gamma": (5, 6), "mlp_beta": (5, 6)}


def spade_case(out):
    c = Case(out, "spade", "spade", channels=5, cond=4, hidden=6)
    x, cond = c.randn(2, 5, 6, 7), c.randn(2, 4, 12, 14)
    gy = c.randn(2, 5, 6, 7)
    params = {}
    for m, (co, ci) in SPADE_SHAPES.items():
        params[f"spade.{m}.weight"] = c.randn(co, ci, 3, 3, scale=0.3)
        params[f"spade.{m}.bias"] = c.randn(co, scale=0.1)
    for k, v in (("x", x), ("cond", cond), ("gy", gy)):
        c.put(k, v)
    for k, v in params.items():
        c.put(k, v)
    pd = {k: v.to(DT).requires_grad_(True) for k, v in params.items()}
    xd, cd = x.to(DT).requires_grad_(True), cond.to(DT).requires_grad_(True)
    y = ref.spade(ref.Net(pd, {}), "spade", xd, cd, True)
    (y * gy.to(DT)).sum().backward()
    c.put("y", y)
    c.put("dx", xd.grad)
    c.put("dcond", cd.grad)
    for k, v in pd.items():
        c.put("d" + k, v.grad)


def contextual_case(out):
    c = Case(out, "contextual", "contextual", bandwidth=0.1)
    x = F.relu(c.randn(2, 6, 5, 4) + 0.3)
    y = F.relu(c.randn(2, 6, 5, 4) + 0.3)
    c.put("x", x)
    c.put("y", y)
    xd, yd = x.to(DT).requires_grad_(True), y.to(DT).requires_grad_(True)
    loss = ref.contextual_loss(xd, yd, f32(0.1))
    loss.backward()
    c.put("loss", loss.reshape(1))
    c.put("dx", xd.grad)
    c.put("dy", yd.grad)


def main():
    ap = arg_parser(__doc__, " over the 3 Adam iterations)")
    ap.add_argument("--dump", help="diagnostic: also write the whole parameters, gradients and "
                    "u/v after each iteration to DUMP/ref_it<i>.safetensors")
    args = ap.parse_args()
    global DT, DUMP_DIR
    root, out_dir, DT = start(ap, args)
    DUMP_DIR = args.dump
    export_path = args.export or export_init(root, "model_parity", "model_tiny_init.safetensors")
    out = {"tensors": {}, "meta": {}}
    stage1_case(out, export_path)
    spectral_norm_case(out)
    pono_case(out)
    spade_case(out)
    contextual_case(out)
    write_fixture(out, out_dir, "model_tiny.safetensors", GENERATOR, DT)


if __name__ == "__main__":
    main()

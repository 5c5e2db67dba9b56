#!/usr/bin/env python3
"""Writes tests/fixtures/model_tiny_train_stages.safetensors: 3 training iterations of stage 2
(TemporalTrainer: G1 then D1) and of stage 3 (FaceTrainer: G2 then D2) of the `tiny` config
against the PyTorch reference (tools/reference_stages.py), checked by
tests/model_parity_train_stages.rs.

How to run (CPU only, about a minute with the build):
    python3 tools/make_train_stage_fixtures.py             # exports the engine's init, writes it
    python3 tools/make_train_stage_fixtures.py --export F  # or reuse an exported init file F
    python3 tools/make_train_stage_fixtures.py --export F --float32 --out DIR  # diagnostic:
        # PyTorch's own float32 run, to compare with the float64 fixture (how the G1 gradient
        # and Adam tolerances of the Rust test were justified)

1. `cargo test --test model_parity_train_stages -- --ignored export --exact` writes the trainers'
   initial tensors (the frozen stage-1 `corr.*`/`gen.*`, G1 `temporal_gen.*` as the trainer
   built it from stage 1 with its previous-frame channels then set by a formula, D1
   `temporal_disc.*`, G2 `face_gen.*`, D2 `face_disc.*`, the random VGG19, every spectral-norm
   u/v) and the config.
2. Inputs are closed-form (`wave`, the same formula in the Rust test, not stored): stage 2 has
   FRAMES consecutive (label, frame) pairs and an exemplar per sample, stage 3 a label, an
   exemplar, a ground truth and the face boxes BOXES.
3. Per case (`temporal`, `face`): fingerprints `init.<name>` of every tensor the case uses; the
   first iteration's forward (`fwd.*`: the frozen networks' output, the generated frames or
   refined crops, the discriminator's logits in the G step and in the D step); every loss term
   of each iteration (`loss.<term>`, one value per iteration); summaries of every parameter
   gradient of the first G step (`grad_g.<param>`) and D step (`grad_d.<param>`); the u/v
   buffers (`sn<i>.<name>`) and the update since the start of every parameter (`update<i>.`)
   after iterations 1 and 3. Adam with the config's lrs, betas and eps (as float32 values).
Summaries/fingerprints as in tools/make_model_fixtures.py. All reference values are computed in
float64 from float32 inputs and stored as float32.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402
import reference_stages as stages  # noqa: E402
from fixture_io import (  # noqa: E402
    Case, adam, arg_parser, export_init, fingerprint, label_channels, load_tiny_export, start,
    summary, wave, write_fixture, FINGERPRINT_N, SUMMARY_N)

GENERATOR = "tools/make_train_stage_fixtures.py"
BATCH = 2
FRAMES = 3
ITERATIONS = 3
BOXES = [(48, 0), (9, 30)]  # (x, y) of each sample's face box: one at the top-right corner
DT = torch.float64


def temporal_inputs(cfg):
    """labels, frames (FRAMES each) and exemplar; the same formulas as the Rust test."""
    s, cl = cfg["image_size"], label_channels(cfg)
    labels = [wave((BATCH, cl, s, s), 0.0071, 1.1 + 0.4 * t, 0.5, 0.5) for t in range(FRAMES)]
    frames = [wave((BATCH, 3, s, s), 0.013, 0.3 + 0.25 * t, 0.0, 0.9) for t in range(FRAMES)]
    return labels, frames, wave((BATCH, 3, s, s), 0.029, 2.0, 0.0, 0.8)


def face_inputs(cfg):
    s, cl = cfg["image_size"], label_channels(cfg)
    return (wave((BATCH, cl, s, s), 0.0071, 0.6, 0.5, 0.5),
            wave((BATCH, 3, s, s), 0.013, 1.7, 0.0, 0.9),
            wave((BATCH, 3, s, s), 0.019, 0.9, 0.0, 0.85))


class State:
    """The exported tensors in float64: trainable parameters (leaves) and buffers by name."""

    def __init__(self, kinds, w32, prefixes):
        names = [n for n in w32 if n.startswith(prefixes)]
        self.w32 = {n: w32[n] for n in names}
        self.init = {n: w32[n].to(DT) for n in names}
        self.params = {n: self.init[n].clone().requires_grad_(True) for n in names
                       if kinds[n] == "Param"}
        self.buffers = {n: self.init[n].clone() for n in names if kinds[n] == "Buffer"}

    def net(self, old, new=None):
        """A reference Net over the tensors under `old.` (renamed to `new.`)."""
        new = new or old
        return ref.Net(stages.renamed(self.params, old, new), stages.renamed(self.buffers, old, new))

    def frozen(self):
        net = ref.Net({}, {})
        for p in ("corr", "gen"):
            net.params.update({n: t.detach() for n, t in stages.renamed(self.params, p, p).items()})
            net.buffers.update(stages.renamed(self.buffers, p, p))
        return net


def put_state(case, it, st, trained):
    """sn<it>.<buffer> and update<it>.<param> of the trained networks (prefix, net, renamed)."""
    for prefix, net, as_name in trained:
        for n, b in net.buffers.items():
            case.put(f"sn{it}.{prefix}{n[len(as_name):]}", summary(b))
    for n, p in st.params.items():
        if n.startswith(tuple(prefix + "." for prefix, _, _ in trained)):
            case.put(f"update{it}.{n}", summary(p.detach() - st.init[n]))


def run_case(case, cfg, st, trained, g_names, d_names, iterate):
    """Shared loop: `iterate(it)` runs one G forward and returns (terms, g_total, d_fn); d_fn()
    runs the D forward and returns (d_term_name, d_term, d_total)."""
    o = cfg["optim"]
    g_opt = adam([st.params[n] for n in g_names], o, "g")
    d_opt = adam([st.params[n] for n in d_names], o, "d")
    losses = {}
    for it in range(1, ITERATIONS + 1):
        g_opt.zero_grad(set_to_none=True)
        terms, g_total, d_fn = iterate(it)
        g_total.backward()
        if it == 1:
            for n in g_names:
                case.put(f"grad_g.{n}", summary(st.params[n].grad))
        g_opt.step()
        d_opt.zero_grad(set_to_none=True)
        d_name, d_term, d_total = d_fn()
        d_total.backward()
        if it == 1:
            for n in d_names:
                case.put(f"grad_d.{n}", summary(st.params[n].grad))
        d_opt.step()
        terms = dict(terms, g_total=g_total)
        terms[d_name] = d_term
        terms["d_total"] = d_total
        for k, v in terms.items():
            losses.setdefault(k, []).append(float(v.detach()))
        if it in (1, ITERATIONS):
            put_state(case, it, st, trained)
        print(f"{case.name} iteration {it}: "
              + ", ".join(f"{k} {float(v.detach()):.6g}" for k, v in terms.items()))
    for k, v in losses.items():
        case.put(f"loss.{k}", torch.tensor(v, dtype=DT))


def common_params(meta):
    return dict(batch=BATCH, iterations=ITERATIONS, g_seed=int(meta["g_seed"]),
                vgg_seed=int(meta["vgg_seed"]), vgg_div=int(meta["vgg_div"]),
                summary_n=SUMMARY_N, fingerprint_n=FINGERPRINT_N)


def temporal_case(out, meta, cfg, kinds, w32):
    pre = ("corr.", "gen.", "vgg.", "temporal_gen.", "temporal_disc.")
    st = State(kinds, w32, pre)
    case = Case(out, "temporal", "temporal_train_step", frames=FRAMES,
                window=cfg["temporal_window"], trainer_seed=int(meta["temporal_seed"]),
                exported=len(st.w32), **common_params(meta))
    for n, t in st.w32.items():
        case.put(f"init.{n}", fingerprint(t))
    nets = {"frozen": st.frozen(), "g1": st.net("temporal_gen", "gen"),
            "d1": st.net("temporal_disc", "disc"), "vgg": st.net("vgg")}
    labels, frames, exemplar = temporal_inputs(cfg)
    labels, frames, exemplar = [x.to(DT) for x in labels], [x.to(DT) for x in frames], \
        exemplar.to(DT)
    g_names = [n for n in st.params if n.startswith("temporal_gen.")]
    d_names = [n for n in st.params if n.startswith("temporal_disc.")]

    def iterate(it):
        terms, total, fake_windows, inter = stages.temporal_g_step(nets, cfg, labels, frames,
                                                                   exemplar)
        if it == 1:
            case.put("fwd.warped", summary(inter["warped"]))
            for t, f in enumerate(inter["fakes"]):
                case.put(f"fwd.fake{t}", summary(f))
            for i, lg in enumerate(inter["g_logits"]):
                case.put(f"fwd.g_logits{i}", lg)

        def d_fn():
            d, d_total, logits = stages.temporal_d_step(nets, cfg, labels, frames, fake_windows)
            if it == 1:
                for i, lg in enumerate(logits):
                    case.put(f"fwd.d_logits{i}", lg)
            return "gan_ts_d", d, d_total
        return terms, total, d_fn

    trained = [("temporal_gen", nets["g1"], "gen"), ("temporal_disc", nets["d1"], "disc")]
    run_case(case, cfg, st, trained, g_names, d_names, iterate)


def face_case(out, meta, cfg, kinds, w32):
    st = State(kinds, w32, ("corr.", "gen.", "vgg.", "face_gen.", "face_disc."))
    case = Case(out, "face", "face_train_step", boxes=[v for b in BOXES for v in b],
                trainer_seed=int(meta["face_seed"]), exported=len(st.w32),
                **common_params(meta))
    for n, t in st.w32.items():
        case.put(f"init.{n}", fingerprint(t))
    nets = {"frozen": st.frozen(), "g2": st.net("face_gen"), "d2": st.net("face_disc"),
            "vgg": st.net("vgg")}
    label, exemplar, gt = (x.to(DT) for x in face_inputs(cfg))
    g_names = [n for n in st.params if n.startswith("face_gen.")]
    d_names = [n for n in st.params if n.startswith("face_disc.")]

    def iterate(it):
        terms, total, face, inter = stages.face_g_step(nets, cfg, label, exemplar, gt, BOXES)
        if it == 1:
            case.put("fwd.fake", summary(inter["fake"]))
            case.put("fwd.face", face)
            case.put("fwd.g_logits", inter["g_logits"])

        def d_fn():
            d, d_total, logits = stages.face_d_step(nets, cfg, inter["label_crop"], face,
                                                    inter["real_crop"])
            if it == 1:
                case.put("fwd.d_logits", logits)
            return "gan_face_d", d, d_total
        return terms, total, d_fn

    trained = [("face_gen", nets["g2"], "face_gen"), ("face_disc", nets["d2"], "face_disc")]
    run_case(case, cfg, st, trained, g_names, d_names, iterate)


def main():
    ap = arg_parser(__doc__, "; needs --out)")
    args = ap.parse_args()
    global DT
    root, out_dir, DT = start(ap, args)
    path = args.export or export_init(root, "model_parity_train_stages",
                                      "model_tiny_train_stages_init.safetensors")
    meta, cfg, kinds, w32 = load_tiny_export(path)
    assert cfg["temporal_window"] == 2
    out = {"tensors": {}, "meta": {}}
    temporal_case(out, meta, cfg, kinds, w32)
    face_case(out, meta, cfg, kinds, w32)
    write_fixture(out, out_dir, "model_tiny_train_stages.safetensors", GENERATOR, DT)


if __name__ == "__main__":
    main()

"""Shared pieces of the model fixture generators (make_model_fixtures.py, make_stage_fixtures.py,
make_train_stage_fixtures.py), so that the three write the same formats the Rust tests read
(tests/common/summary.rs, tests/common/parity.rs):

- `summary`: [sum, L2 norm, max |x|, x[i_0], …, x[i_{n-1}]] with n = min(SUMMARY_N, len) and
  i_k = (k·1000003 + 12345) mod len, for tensors too big to store whole;
- `fingerprint`: [sum, sum of squares, x[i_0], …] with n = min(FINGERPRINT_N, len), of an
  initial weight the engine exports (the init is seeded by name, so the fixture keeps only this);
- `Case`: one fixture case (its tensors `<case>.<key>` and its params in the metadata);
- the engine's exported init (`export_init` runs the ignored `export` test, `load_tiny_export`
  reads it), the closed-form inputs mirrored in the Rust tests (`wave`, `perturbation`), and the
  command line / output plumbing every generator shares.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_op_fixtures import save_file  # noqa: E402

SEED = 20240917  # the Case generators are seeded from it
SUMMARY_N = 64
FINGERPRINT_N = 8


def f32(v):
    return float(np.float32(v))


def label_channels(cfg):
    return 21 if cfg["label"] == "paper" else 20


def sample_indices(length, n):
    return [(k * 1000003 + 12345) % length for k in range(min(n, length))]


def summary(t, dt=torch.float64):
    """[sum, L2, max|x|, elements at the fixed indices] of `t` computed in `dt`, as float32."""
    flat = t.detach().reshape(-1).to(dt)
    idx = sample_indices(flat.numel(), SUMMARY_N)
    head = torch.stack([flat.sum(), flat.norm(), flat.abs().max()])
    return torch.cat([head, flat[idx]]).float()


def fingerprint(t32, dt=torch.float64):
    flat = t32.reshape(-1)
    wide = flat.to(dt)
    idx = sample_indices(flat.numel(), FINGERPRINT_N)
    return torch.cat([torch.stack([wide.sum(), (wide * wide).sum()]).float(), flat[idx]])


class Case:
    def __init__(self, out, name, op, **params):
        self.out, self.name = out, name
        out["meta"][name] = json.dumps({"op": op, "params": params}, sort_keys=True)
        self.g = torch.Generator().manual_seed(SEED + zlib.crc32(name.encode()))

    def put(self, key, t):
        full = f"{self.name}.{key}"
        assert full not in self.out["tensors"], full
        t = t.detach().float().contiguous()
        assert torch.isfinite(t).all(), full
        self.out["tensors"][full] = t

    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g, dtype=torch.float32) * scale


def wave(shape, freq, phase, offset, amp):
    """offset + amp · sin(freq · i + phase) over the flat index, in float64, rounded to float32
    (the `wave` of tests/common/parity.rs)."""
    n = math.prod(shape)
    i = np.arange(n, dtype=np.float64)
    v = (offset + amp * np.sin(freq * i + phase)).astype(np.float32)
    return torch.from_numpy(v).reshape(shape)


def perturbation(numel):
    """The values given to G1's previous-frame input channels (`perturbation` in parity.rs)."""
    i = np.arange(numel, dtype=np.float64)
    return torch.from_numpy((0.02 * np.sin(0.37 * i + 1.0)).astype(np.float32))


# ---- the engine's exported init -----------------------------------------------------------------


def export_init(root, test, file):
    """Runs `cargo test --test <test> -- --ignored export --exact`, which writes `file` (the
    engine's initial tensors, their kinds and the config) to a temporary folder; its path."""
    tmp = tempfile.mkdtemp(prefix="engine_export_")
    env = dict(os.environ, ENGINE_EXPORT_DIR=tmp)
    cmd = ["cargo", "test", "--test", test, "--", "--ignored", "export", "--exact"]
    subprocess.run(cmd, cwd=root, env=env, check=True)
    return os.path.join(tmp, file)


def load_export(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        kinds = dict(e.split(":") for e in meta["kinds"].split(","))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert set(kinds) == set(tensors), "export: kinds and tensors disagree"
    return meta, kinds, tensors


def load_tiny_export(path):
    """(metadata, config, kinds, float32 tensors) of an export of the `tiny` config."""
    meta, kinds, w32 = load_export(path)
    cfg = json.loads(meta["config"])
    assert cfg["name"] == "tiny"
    return meta, cfg, kinds, w32


def split(kinds, tensors, prefix, dt):
    """The tensors under `prefix` in `dt`: parameters (leaves with gradients) and buffers."""
    params = {n: t.to(dt).requires_grad_(True) for n, t in tensors.items()
              if n.startswith(prefix) and kinds[n] == "Param"}
    buffers = {n: t.to(dt) for n, t in tensors.items()
               if n.startswith(prefix) and kinds[n] == "Buffer"}
    return params, buffers


def adam(params, o, side):
    lr, (b1, b2), eps = o[f"{side}_lr"], o[f"{side}_betas"], o[f"{side}_eps"]
    return torch.optim.Adam(params, lr=f32(lr), betas=(f32(b1), f32(b2)), eps=f32(eps))


# ---- command line and output --------------------------------------------------------------------


def arg_parser(doc, float32_help=None):
    """--export and --out; with `float32_help` (the end of its help text) also --float32."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--export", help="an init file already written by the export test")
    ap.add_argument("--out", help="output folder (default tests/fixtures)")
    if float32_help:
        ap.add_argument("--float32", action="store_true",
                        help="diagnostic: run the reference in float32 (shows how far PyTorch's "
                        "own float32 drifts from float64" + float32_help)
    return ap


def start(ap, args):
    """Checks --float32 and makes torch deterministic; (repo root, output folder, the
    reference's dtype)."""
    dt = torch.float64
    if getattr(args, "float32", False):
        if not args.out:
            ap.error("--float32 needs --out (it must not replace the float64 fixture)")
        dt = torch.float32
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = args.out or os.path.join(root, "tests", "fixtures")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bitwise-stable reductions from run to run
    return root, out_dir, dt


def write_fixture(out, out_dir, file, generator, dt):
    """Writes the cases of `out` with the reserved metadata to `out_dir/file`."""
    md = dict(out["meta"])
    md.update(torch_version=torch.__version__, seed=str(SEED), generator=generator,
              reference_dtype=str(dt).replace("torch.", ""))
    path = os.path.join(out_dir, file)
    save_file(out["tensors"], path, md)
    print(f"{path}: {len(out['tensors'])} tensors, {os.path.getsize(path) / 1024:.1f} KiB")

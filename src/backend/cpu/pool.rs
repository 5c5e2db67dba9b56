//! 2-D average and max pooling (PyTorch semantics, floor mode), forward and backward. One rayon
//! task per (sample, channel) plane; windows are clipped to the image, so padded positions
//! count as zeros (avg) or never win (max).

use crate::backend::checks;
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// The checked geometry of one pooling call over `h × w` planes.
#[derive(Clone, Copy, Debug)]
struct Geom {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    p: Pool2dParams,
}

impl Geom {
    /// Pooling `h × w` planes to `checks::pool`'s output size.
    fn new(op: &'static str, h: usize, w: usize, p: Pool2dParams) -> Result<Geom> {
        let (oh, ow) = checks::pool(op, h, w, p)?;
        Ok(Geom { h, w, oh, ow, p })
    }
    /// Input rows and columns `[y0, y1) × [x0, x1)` of output (oy, ox), clipped to the image.
    #[inline]
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let p = &self.p;
        let (y0, y1) = clip(oy * p.stride.0, p.padding.0, p.kernel.0, self.h);
        let (x0, x1) = clip(ox * p.stride.1, p.padding.1, p.kernel.1, self.w);
        (y0, y1, x0, x1)
    }
    fn avg_divisor(&self, (y0, y1, x0, x1): (usize, usize, usize, usize)) -> f32 {
        if self.p.count_include_pad {
            (self.p.kernel.0 * self.p.kernel.1) as f32
        } else {
            ((y1 - y0) * (x1 - x0)).max(1) as f32
        }
    }
    /// Plane offset of the first maximum of the window (row-major scan; NaN propagates the
    /// way PyTorch's kernel does).
    fn argmax(&self, plane: &[f32], oy: usize, ox: usize) -> usize {
        let (y0, y1, x0, x1) = self.window(oy, ox);
        let (mut best, mut at) = (f32::NEG_INFINITY, y0 * self.w + x0);
        for y in y0..y1 {
            for (i, &v) in plane[y * self.w + x0..y * self.w + x1].iter().enumerate() {
                if v > best || v.is_nan() {
                    best = v;
                    at = y * self.w + x0 + i;
                }
            }
        }
        at
    }
}

/// `[start, start + k)` in padded coordinates, shifted back by `pad` and clipped to `[0, size)`.
#[inline]
fn clip(start: usize, pad: usize, k: usize, size: usize) -> (usize, usize) {
    (
        start.saturating_sub(pad),
        (start + k).saturating_sub(pad).min(size),
    )
}

/// Input geometry of a backward call: `x_shape` must be NCHW and `dy` its pooled shape.
fn backward_geom(
    op: &'static str,
    dy: &Tensor,
    x_shape: &[usize],
    p: Pool2dParams,
) -> Result<([usize; 4], Geom)> {
    let ([n, c, h, w], (oh, ow)) = checks::pool_backward(op, dy, x_shape, p)?;
    Ok(([n, c, h, w], Geom { h, w, oh, ow, p }))
}

/// Runs `f(input plane index, output plane)` over every output plane in parallel.
fn per_plane(len: usize, plane: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    if plane > 0 {
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, o)| f(i, o));
    }
    out
}

pub fn avg_pool2d(x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    let [n, c, h, w] = checks::nchw("avg_pool2d", x)?;
    let g = Geom::new("avg_pool2d", h, w, p)?;
    let xs = x.cpu_data()?;
    let out = per_plane(n * c * g.oh * g.ow, g.oh * g.ow, |i, o| {
        let plane = &xs[i * h * w..(i + 1) * h * w];
        for (j, v) in o.iter_mut().enumerate() {
            let win = g.window(j / g.ow, j % g.ow);
            let (y0, y1, x0, x1) = win;
            let sum: f32 = (y0..y1)
                .map(|y| plane[y * w + x0..y * w + x1].iter().sum::<f32>())
                .sum();
            *v = sum / g.avg_divisor(win);
        }
    });
    Tensor::from_vec(out, [n, c, g.oh, g.ow])
}

pub fn avg_pool2d_backward(dy: &Tensor, x_shape: &[usize], p: Pool2dParams) -> Result<Tensor> {
    let ([n, c, h, w], g) = backward_geom("avg_pool2d_backward", dy, x_shape, p)?;
    let ds = dy.cpu_data()?;
    let l = g.oh * g.ow;
    let dx = per_plane(n * c * h * w, h * w, |i, dxp| {
        for (j, &d) in ds[i * l..(i + 1) * l].iter().enumerate() {
            let win = g.window(j / g.ow, j % g.ow);
            let (y0, y1, x0, x1) = win;
            let share = d / g.avg_divisor(win);
            for y in y0..y1 {
                dxp[y * w + x0..y * w + x1]
                    .iter_mut()
                    .for_each(|v| *v += share);
            }
        }
    });
    Tensor::from_vec(dx, [n, c, h, w])
}

pub fn max_pool2d(x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    let [n, c, h, w] = checks::nchw("max_pool2d", x)?;
    let g = Geom::new("max_pool2d", h, w, p)?;
    let xs = x.cpu_data()?;
    let out = per_plane(n * c * g.oh * g.ow, g.oh * g.ow, |i, o| {
        let plane = &xs[i * h * w..(i + 1) * h * w];
        for (j, v) in o.iter_mut().enumerate() {
            *v = plane[g.argmax(plane, j / g.ow, j % g.ow)];
        }
    });
    Tensor::from_vec(out, [n, c, g.oh, g.ow])
}

/// The gradient of each window goes to its first maximum, recomputed from `x`.
pub fn max_pool2d_backward(x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    let ([n, c, h, w], g) = backward_geom("max_pool2d_backward", dy, x.dims(), p)?;
    let (xs, ds) = (x.cpu_data()?, dy.cpu_data()?);
    let l = g.oh * g.ow;
    let dx = per_plane(n * c * h * w, h * w, |i, dxp| {
        let plane = &xs[i * h * w..(i + 1) * h * w];
        for (j, &d) in ds[i * l..(i + 1) * l].iter().enumerate() {
            dxp[g.argmax(plane, j / g.ow, j % g.ow)] += d;
        }
    });
    Tensor::from_vec(dx, [n, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x dims, kernel, stride, padding, count_include_pad)
    type Case = (
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        bool,
    );
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ([2, 3, 7, 9], (3, 3), (2, 2), (1, 1), true),
        ([2, 3, 7, 9], (3, 3), (2, 2), (1, 1), false),
        ([1, 2, 8, 7], (2, 3), (1, 2), (1, 1), false),
        ([3, 1, 5, 5], (2, 2), (2, 2), (0, 0), true),
        ([1, 2, 4, 6], (4, 4), (1, 3), (2, 2), false), // padding = half the kernel
        ([1, 1, 1, 1], (1, 1), (1, 1), (0, 0), true),
        ([2, 2, 6, 5], (3, 2), (3, 1), (1, 1), true),
    ];

    fn params(c: &Case) -> Pool2dParams {
        Pool2dParams {
            kernel: c.1,
            stride: c.2,
            padding: c.3,
            count_include_pad: c.4,
        }
    }

    /// For every output (plane index, output index), the in-image plane offsets of its window in
    /// row-major order and the number of window positions (padding included).
    fn windows(c: &Case) -> Vec<(usize, usize, Vec<usize>)> {
        let ([n, ch, h, w], (kh, kw), (sh, sw), (ph, pw), _) = *c;
        let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
        let mut out = Vec::new();
        for (plane, o) in (0..n * ch).flat_map(|p| (0..oh * ow).map(move |o| (p, o))) {
            let (oy, ox) = (o / ow, o % ow);
            let mut idx = Vec::new();
            for (ki, kj) in (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))) {
                let (iy, ix) = (
                    (oy * sh + ki) as isize - ph as isize,
                    (ox * sw + kj) as isize - pw as isize,
                );
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    idx.push(iy as usize * w + ix as usize);
                }
            }
            out.push((plane, plane * oh * ow + o, idx));
        }
        out
    }

    fn close(name: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{name}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn pools_match_naive_loops() {
        for (i, case) in CASES.iter().enumerate() {
            let p = params(case);
            let [_, _, h, w] = case.0;
            // rounded values: many ties, so the first-maximum rule is exercised
            let x = Tensor::randn(case.0, 0.0, 1.5, i as u64);
            let x = Tensor::from_vec(
                x.cpu_data().unwrap().iter().map(|v| v.round()).collect(),
                case.0,
            )
            .unwrap();
            let avg = avg_pool2d(&x, p).unwrap();
            let max = max_pool2d(&x, p).unwrap();
            let dy = Tensor::randn(avg.dims(), 0.0, 1.0, 50 + i as u64);
            let (xs, ds) = (x.cpu_data().unwrap(), dy.cpu_data().unwrap());
            let (mut want_avg, mut want_max) = (vec![0.0; avg.numel()], vec![0.0; avg.numel()]);
            let (mut dx_avg, mut dx_max) = (vec![0.0; x.numel()], vec![0.0; x.numel()]);
            for (plane, o, idx) in windows(case) {
                let base = plane * h * w;
                let div = if case.4 {
                    (case.1 .0 * case.1 .1) as f32
                } else {
                    idx.len() as f32
                };
                want_avg[o] = idx.iter().map(|&j| xs[base + j]).sum::<f32>() / div;
                idx.iter().for_each(|&j| dx_avg[base + j] += ds[o] / div);
                let first = idx.iter().copied().fold(idx[0], |b, j| {
                    if xs[base + j] > xs[base + b] {
                        j
                    } else {
                        b
                    }
                });
                want_max[o] = xs[base + first];
                dx_max[base + first] += ds[o];
            }
            close(&format!("avg {case:?}"), avg.cpu_data().unwrap(), &want_avg);
            assert_eq!(max.cpu_data().unwrap(), &want_max[..], "max {case:?}");
            let gx = avg_pool2d_backward(&dy, &case.0, p).unwrap();
            close(
                &format!("avg backward {case:?}"),
                gx.cpu_data().unwrap(),
                &dx_avg,
            );
            let gx = max_pool2d_backward(&x, &dy, p).unwrap();
            close(
                &format!("max backward {case:?}"),
                gx.cpu_data().unwrap(),
                &dx_max,
            );
        }
    }

    #[test]
    fn max_pool_ignores_padding_and_propagates_nan() {
        let p = Pool2dParams {
            kernel: (2, 2),
            stride: (1, 1),
            padding: (1, 1),
            count_include_pad: true,
        };
        // all negative: a zero from the padding must never win
        let x = Tensor::from_vec(vec![-3.0, -1.0, -2.0, -4.0], [1, 1, 2, 2]).unwrap();
        let y = max_pool2d(&x, p).unwrap();
        assert_eq!(
            y.cpu_data().unwrap(),
            &[-3.0, -1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -2.0, -4.0]
        );
        let x = Tensor::from_vec(vec![1.0, f32::NAN, 2.0, 0.0], [1, 1, 2, 2]).unwrap();
        let p = Pool2dParams {
            padding: (0, 0),
            ..p
        };
        assert!(max_pool2d(&x, p).unwrap().cpu_data().unwrap()[0].is_nan());
    }

    #[test]
    fn pools_reject_bad_input() {
        let p = params(&CASES[0]);
        let x = Tensor::zeros([1, 2, 5, 5]);
        for f in [avg_pool2d, max_pool2d] {
            assert!(f(&Tensor::zeros([2, 5, 5]), p).is_err());
            assert!(f(
                &x,
                Pool2dParams {
                    padding: (2, 1),
                    ..p
                }
            )
            .is_err()); // pad > kernel / 2
            assert!(f(
                &x,
                Pool2dParams {
                    stride: (1, 0),
                    ..p
                }
            )
            .is_err());
            assert!(f(
                &x,
                Pool2dParams {
                    kernel: (0, 3),
                    padding: (0, 0),
                    ..p
                }
            )
            .is_err());
            assert!(f(
                &x,
                Pool2dParams {
                    kernel: (8, 3),
                    ..p
                }
            )
            .is_err());
            assert!(f(
                &Tensor::zeros([1, 2, 0, 5]),
                Pool2dParams {
                    kernel: (2, 2),
                    ..p
                }
            )
            .is_err());
        }
        let dy = Tensor::zeros([1, 2, 3, 3]);
        assert!(avg_pool2d_backward(&dy, &[1, 2, 5, 5], p).is_ok());
        assert!(avg_pool2d_backward(&dy, &[1, 2, 7, 5], p).is_err());
        assert!(avg_pool2d_backward(&dy, &[2, 5, 5], p).is_err());
        assert!(max_pool2d_backward(&x, &Tensor::zeros([1, 2, 3, 2]), p).is_err());
    }
}

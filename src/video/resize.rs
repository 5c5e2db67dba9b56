//! Resampling a frame to another size: bilinear with half-pixel centres (the convention of
//! `pose::transform`, so keypoints follow the pixels), widened into a triangle filter of the
//! scale's width when shrinking, so a downscale averages every source pixel it covers instead of
//! aliasing (the "antialiased bilinear" of PIL and of PyTorch's `antialias=True`).

use rayon::prelude::*;

use super::frame::{rgb_len, Frame};
use crate::error::{Error, Result};

/// The source taps of one output coordinate: the first source index and normalised weights.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

/// Taps for resampling a line of `src` pixels to `dst` pixels (both > 0).
fn line_taps(src: usize, dst: usize) -> Vec<Taps> {
    let scale = src as f64 / dst as f64;
    // The filter widens with the downscale factor; upscaling keeps plain bilinear.
    let width = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            let lo = ((centre - width - 0.5).ceil().max(0.0)) as usize;
            let hi = ((centre + width - 0.5).floor() as usize).min(src - 1);
            let mut weights: Vec<f32> = (lo..=hi)
                .map(|j| (1.0 - ((j as f64 + 0.5 - centre) / width).abs()).max(0.0) as f32)
                .collect();
            // Near the borders part of the filter falls outside: renormalise what is inside
            // (equivalent to clamping the sample position, as bilinear resizers do).
            // The nearest source centre is always within half a pixel, so the sum is >= 0.5.
            let sum: f32 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
            Taps { start: lo, weights }
        })
        .collect()
}

impl Frame {
    /// The frame resampled to `width`×`height` (see the module note for the filter).
    pub fn resize(&self, width: u32, height: u32) -> Result<Frame> {
        let out_len = rgb_len("Frame::resize", width, height)?;
        if (width, height) == self.size() {
            return Ok(self.clone());
        }
        let (sw, sh) = (self.width() as usize, self.height() as usize);
        let (dw, dh) = (width as usize, height as usize);
        let xt = line_taps(sw, dw);
        let yt = line_taps(sh, dh);
        // Horizontal pass into f32 rows (source height × target width), then vertical.
        let mut mid = vec![0f32; sh * dw * 3];
        mid.par_chunks_mut(dw * 3).enumerate().for_each(|(y, row)| {
            let src = self.row(y as u32);
            for (px, t) in row.chunks_exact_mut(3).zip(&xt) {
                let mut acc = [0f32; 3];
                for (k, w) in t.weights.iter().enumerate() {
                    let s = &src[(t.start + k) * 3..(t.start + k) * 3 + 3];
                    for c in 0..3 {
                        acc[c] += w * s[c] as f32;
                    }
                }
                px.copy_from_slice(&acc);
            }
        });
        let mut out = vec![0u8; out_len];
        out.par_chunks_mut(dw * 3).zip(&yt).for_each(|(row, t)| {
            let mut acc = vec![0f32; dw * 3];
            for (k, w) in t.weights.iter().enumerate() {
                let src = &mid[(t.start + k) * dw * 3..(t.start + k + 1) * dw * 3];
                acc.iter_mut().zip(src).for_each(|(a, s)| *a += w * s);
            }
            row.iter_mut()
                .zip(&acc)
                .for_each(|(o, a)| *o = a.round().clamp(0.0, 255.0) as u8);
        });
        Frame::new(width, height, out)
            .map_err(|e| Error::invalid("Frame::resize", format!("internal size error: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Rng;

    fn random_frame(w: u32, h: u32, seed: u64) -> Frame {
        let mut rng = Rng::new(seed);
        let data = (0..w * h * 3)
            .map(|_| (rng.uniform() * 256.0) as u8)
            .collect();
        Frame::new(w, h, data).unwrap()
    }

    /// Weight of source pixel `j` for output pixel `i` along one axis, straight from the
    /// definition: a triangle of half-width max(scale, 1) centred on the output pixel's centre
    /// mapped into the source, restricted to the source and normalised.
    fn ref_weight(i: usize, j: usize, src: usize, dst: usize) -> f64 {
        let scale = src as f64 / dst as f64;
        let width = scale.max(1.0);
        let centre = (i as f64 + 0.5) * scale;
        let tri = |j: usize| (1.0 - ((j as f64 + 0.5 - centre) / width).abs()).max(0.0);
        let total: f64 = (0..src).map(tri).sum();
        tri(j) / total
    }

    fn ref_resize(f: &Frame, w: u32, h: u32) -> Vec<f64> {
        let (sw, sh) = (f.width() as usize, f.height() as usize);
        let mut out = Vec::new();
        for y in 0..h as usize {
            for x in 0..w as usize {
                for c in 0..3 {
                    let mut acc = 0.0;
                    for sy in 0..sh {
                        for sx in 0..sw {
                            let wt = ref_weight(y, sy, sh, h as usize)
                                * ref_weight(x, sx, sw, w as usize);
                            acc += wt * f.pixel(sx as u32, sy as u32).unwrap()[c] as f64;
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    #[test]
    fn resize_matches_reference_on_awkward_sizes() {
        let cases = [
            (7, 5, 3, 2),
            (7, 5, 13, 11),
            (1, 1, 4, 3),
            (9, 1, 2, 1),
            (5, 6, 5, 3),
            (16, 16, 5, 7),
            (3, 8, 1, 1),
        ];
        for (i, &(sw, sh, dw, dh)) in cases.iter().enumerate() {
            let f = random_frame(sw, sh, i as u64 + 1);
            let got = f.resize(dw, dh).unwrap();
            assert_eq!(got.size(), (dw, dh));
            let want = ref_resize(&f, dw, dh);
            let max_err = got
                .data()
                .iter()
                .zip(&want)
                .map(|(&g, &w)| (g as f64 - w).abs())
                .fold(0.0, f64::max);
            // Rounding to bytes plus f32 accumulation: at most half a level and a hair.
            assert!(
                max_err <= 0.5 + 1e-3,
                "{sw}×{sh} -> {dw}×{dh}: max error {max_err}"
            );
        }
    }

    #[test]
    fn resize_keeps_identity_and_constants() {
        let f = random_frame(6, 4, 9);
        assert_eq!(f.resize(6, 4).unwrap(), f);
        let c = Frame::filled(11, 7, [10, 200, 77]).unwrap();
        assert_eq!(
            c.resize(4, 9).unwrap(),
            Frame::filled(4, 9, [10, 200, 77]).unwrap()
        );
        assert_eq!(
            c.resize(23, 3).unwrap(),
            Frame::filled(23, 3, [10, 200, 77]).unwrap()
        );
    }

    #[test]
    fn upscale_by_two_is_bilinear_with_half_pixel_centres() {
        // One row 0, 100: output centres map to -0.25, 0.25, 0.75, 1.25 → 0, 25, 75, 100.
        let f = Frame::new(2, 1, vec![0, 0, 0, 100, 100, 100]).unwrap();
        let g = f.resize(4, 1).unwrap();
        let reds: Vec<u8> = g.data().chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0, 25, 75, 100]);
    }

    #[test]
    fn resize_rejects_empty_target() {
        let f = random_frame(3, 3, 1);
        assert!(f.resize(0, 3).is_err());
        assert!(f.resize(3, 0).is_err());
    }
}

//! SSIM as scikit-image computes it with `structural_similarity(a, b, channel_axis=-1,
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`:
//! per channel, local means, variances and covariance from an 11-tap Gaussian (σ = 1.5, truncated
//! at 3.5σ, normalised, `reflect` borders as in `scipy.ndimage`), the SSIM map averaged over the
//! pixels at least 5 from every edge, then the mean over R, G and B. All in f64, like skimage.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::video::Frame;

pub const SIGMA: f64 = 1.5;
/// skimage's truncation: radius = int(3.5·σ + 0.5) = 5.
pub const RADIUS: usize = 5;
/// Window side; frames smaller than this on either side are refused (as skimage does).
pub const WIN: usize = 2 * RADIUS + 1;
const K1: f64 = 0.01;
const K2: f64 = 0.03;
const DATA_RANGE: f64 = 255.0;

/// The normalised Gaussian taps exp(−x²/2σ²), x = −5..=5.
fn kernel() -> [f64; WIN] {
    let mut k = [0.0; WIN];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f64 - RADIUS as f64;
        *v = (-0.5 * x * x / (SIGMA * SIGMA)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// `scipy.ndimage` mode `reflect` (d c b a | a b c d | d c b a): the edge sample repeats.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

/// Separable Gaussian blur of a `w`×`h` plane: along columns, then along rows.
fn blur(src: &[f64], w: usize, h: usize, k: &[f64; WIN]) -> Vec<f64> {
    let r = RADIUS as isize;
    let mut mid = vec![0.0; w * h];
    mid.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (j, &kv) in k.iter().enumerate() {
            let sy = reflect(y as isize + j as isize - r, h);
            let s = &src[sy * w..(sy + 1) * w];
            row.iter_mut().zip(s).for_each(|(d, v)| *d += kv * v);
        }
    });
    let mut out = vec![0.0; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        // Pad the row by reflection once, so the taps below are a plain (vectorisable) loop.
        let s = &mid[y * w..(y + 1) * w];
        let padded: Vec<f64> = (-r..w as isize + r).map(|x| s[reflect(x, w)]).collect();
        for (j, &kv) in k.iter().enumerate() {
            row.iter_mut()
                .zip(&padded[j..j + w])
                .for_each(|(d, v)| *d += kv * v);
        }
    });
    out
}

/// Mean SSIM of one channel (`w`×`h` planes of values in 0..=255).
fn ssim_plane(a: &[f64], b: &[f64], w: usize, h: usize) -> f64 {
    let k = kernel();
    let prod =
        |f: fn(f64, f64) -> f64| -> Vec<f64> { a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect() };
    let maps: Vec<Vec<f64>> = [
        a.to_vec(),
        b.to_vec(),
        prod(|x, _| x * x),
        prod(|_, y| y * y),
        prod(|x, y| x * y),
    ]
    .par_iter()
    .map(|p| blur(p, w, h, &k))
    .collect();
    let (ux, uy, uxx, uyy, uxy) = (&maps[0], &maps[1], &maps[2], &maps[3], &maps[4]);
    let c1 = (K1 * DATA_RANGE).powi(2);
    let c2 = (K2 * DATA_RANGE).powi(2);
    let total: f64 = (RADIUS..h - RADIUS)
        .into_par_iter()
        .map(|y| {
            (RADIUS..w - RADIUS)
                .map(|x| {
                    let i = y * w + x;
                    let (mx, my) = (ux[i], uy[i]);
                    let vx = uxx[i] - mx * mx;
                    let vy = uyy[i] - my * my;
                    let vxy = uxy[i] - mx * my;
                    let num = (2.0 * mx * my + c1) * (2.0 * vxy + c2);
                    let den = (mx * mx + my * my + c1) * (vx + vy + c2);
                    num / den
                })
                .sum::<f64>()
        })
        .sum();
    total / ((w - 2 * RADIUS) * (h - 2 * RADIUS)) as f64
}

/// Checks that two frames can be compared: same size.
pub(crate) fn same_size(op: &'static str, a: &Frame, b: &Frame) -> Result<()> {
    if a.size() != b.size() {
        return Err(Error::shape(
            op,
            format!(
                "frames of {}×{} and {}×{}",
                a.width(),
                a.height(),
                b.width(),
                b.height()
            ),
        ));
    }
    Ok(())
}

/// SSIM of two RGB frames of the same size (each side at least 11 pixels), in [-1, 1]; 1 for
/// identical frames.
pub fn ssim(a: &Frame, b: &Frame) -> Result<f64> {
    same_size("ssim", a, b)?;
    let (w, h) = (a.width() as usize, a.height() as usize);
    if w < WIN || h < WIN {
        return Err(Error::invalid(
            "ssim",
            format!("frames of {w}×{h} are smaller than the {WIN}×{WIN} SSIM window"),
        ));
    }
    let plane = |f: &Frame, c: usize| -> Vec<f64> {
        f.data().chunks_exact(3).map(|p| p[c] as f64).collect()
    };
    let per_channel: Vec<f64> = (0..3)
        .into_par_iter()
        .map(|c| ssim_plane(&plane(a, c), &plane(b, c), w, h))
        .collect();
    Ok(per_channel.iter().sum::<f64>() / 3.0)
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

    /// Straight from the definition: a direct 2-D weighted window (no separation) per pixel.
    fn ssim_reference(a: &Frame, b: &Frame) -> f64 {
        let (w, h) = (a.width() as usize, a.height() as usize);
        let k = kernel();
        let mut total = 0.0;
        for c in 0..3 {
            let px = |f: &Frame, x: usize, y: usize| f.data()[(y * w + x) * 3 + c] as f64;
            let mut sum = 0.0;
            for y in RADIUS..h - RADIUS {
                for x in RADIUS..w - RADIUS {
                    let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for (dy, ky) in k.iter().enumerate() {
                        for (dx, kx) in k.iter().enumerate() {
                            let (sx, sy) = (x + dx - RADIUS, y + dy - RADIUS);
                            let (p, q) = (px(a, sx, sy), px(b, sx, sy));
                            let wt = ky * kx;
                            mx += wt * p;
                            my += wt * q;
                            xx += wt * p * p;
                            yy += wt * q * q;
                            xy += wt * p * q;
                        }
                    }
                    let (c1, c2) = ((K1 * 255.0f64).powi(2), (K2 * 255.0f64).powi(2));
                    let num = (2.0 * mx * my + c1) * (2.0 * (xy - mx * my) + c2);
                    let den = (mx * mx + my * my + c1) * (xx - mx * mx + yy - my * my + c2);
                    sum += num / den;
                }
            }
            total += sum / ((w - 2 * RADIUS) * (h - 2 * RADIUS)) as f64;
        }
        total / 3.0
    }

    #[test]
    fn matches_direct_window_reference() {
        // Only interior pixels are averaged, so borders never enter the direct reference.
        for (i, &(w, h)) in [(11, 11), (13, 17), (31, 12)].iter().enumerate() {
            let a = random_frame(w, h, 2 * i as u64);
            let mut b = a.clone();
            let mut rng = Rng::new(99 + i as u64);
            for v in b.data_mut() {
                *v = (*v as f64 + rng.normal() * 20.0).round().clamp(0.0, 255.0) as u8;
            }
            let got = ssim(&a, &b).unwrap();
            let want = ssim_reference(&a, &b);
            assert!((got - want).abs() < 1e-10, "{w}×{h}: {got} vs {want}");
        }
    }

    #[test]
    fn identical_frames_give_one_and_unrelated_frames_less() {
        let a = random_frame(20, 15, 1);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        let b = random_frame(20, 15, 2);
        assert!(ssim(&a, &b).unwrap() < 0.2);
    }

    #[test]
    fn reflect_matches_scipy_mode() {
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn rejects_small_or_mismatched_frames() {
        let a = random_frame(10, 20, 1);
        assert!(matches!(ssim(&a, &a), Err(Error::Invalid { .. })));
        let b = random_frame(20, 10, 1);
        assert!(matches!(ssim(&a, &b), Err(Error::Shape { .. })));
    }
}

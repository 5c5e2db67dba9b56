//! Sharpness: the variance of the Laplacian of the luma (a standard blur measure; generated frames
//! are usually blurrier than the truth, so pred − truth is negative for a blurry model).
//!
//! Luma is BT.601, Y = 0.299 R + 0.587 G + 0.114 B on 0..=255. The Laplacian is the 4-neighbour
//! kernel [0 1 0; 1 −4 1; 0 1 0] (OpenCV's `Laplacian` with ksize 1) with OpenCV's default border,
//! `reflect_101` (c b | a b c | b a); the variance is the population variance over all pixels.

use rayon::prelude::*;

use crate::video::Frame;

/// `reflect_101` index into 0..n: the edge sample is not repeated.
fn reflect101(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// The luma plane of a frame.
pub fn luma(f: &Frame) -> Vec<f64> {
    f.data()
        .par_chunks_exact(3)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect()
}

/// Variance of the Laplacian of the luma of `f`.
pub fn laplacian_variance(f: &Frame) -> f64 {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let y = luma(f);
    let at = |x: isize, r: isize| y[reflect101(r, h) * w + reflect101(x, w)];
    // Per row: (sum, sum of squares) of the Laplacian.
    let (s, ss) = (0..h)
        .into_par_iter()
        .map(|r| {
            let r = r as isize;
            (0..w as isize).fold((0.0, 0.0), |(s, ss), x| {
                let lap =
                    at(x - 1, r) + at(x + 1, r) + at(x, r - 1) + at(x, r + 1) - 4.0 * at(x, r);
                (s + lap, ss + lap * lap)
            })
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = (w * h) as f64;
    let mean = s / n;
    (ss / n - mean * mean).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_frame_has_zero_and_checkerboard_known_variance() {
        assert_eq!(
            laplacian_variance(&Frame::filled(5, 4, [9, 80, 200]).unwrap()),
            0.0
        );
        // A 4×4 grey checkerboard 0/100: every Laplacian is ±400 (reflect_101 keeps the
        // pattern at the borders), so the variance is 400².
        let mut data = Vec::new();
        for r in 0..4 {
            for c in 0..4 {
                let v = if (r + c) % 2 == 0 { 0 } else { 100 };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        let f = Frame::new(4, 4, data).unwrap();
        assert!((laplacian_variance(&f) - 160_000.0).abs() < 1e-6);
    }

    #[test]
    fn reflect101_indices() {
        let got: Vec<usize> = (-3..7).map(|i| reflect101(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect101(-2, 1), 0);
    }

    #[test]
    fn blurring_lowers_sharpness() {
        let mut data = Vec::new();
        for r in 0..32u32 {
            for c in 0..32u32 {
                let v = ((r * 37 + c * 91) % 256) as u8;
                data.extend_from_slice(&[v, v / 2, 255 - v]);
            }
        }
        let f = Frame::new(32, 32, data).unwrap();
        let blurred = f.resize(8, 8).unwrap().resize(32, 32).unwrap();
        assert!(laplacian_variance(&blurred) < laplacian_variance(&f));
    }
}

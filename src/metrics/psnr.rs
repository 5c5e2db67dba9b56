//! PSNR as scikit-image's `peak_signal_noise_ratio(truth, pred, data_range=255)`: the mean squared
//! error over every byte of the two RGB frames, 10·log10(255² / MSE) dB. Identical frames give
//! +∞, which the reports print as "inf" (and write to JSON as null plus a flag).

use rayon::prelude::*;

use super::ssim::same_size;
use crate::error::Result;
use crate::video::Frame;

/// Mean squared error over all bytes (all channels) of two frames of the same size.
pub fn mse(a: &Frame, b: &Frame) -> Result<f64> {
    same_size("mse", a, b)?;
    let se: f64 = a
        .data()
        .par_chunks(4096)
        .zip(b.data().par_chunks(4096))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| {
                    let d = p as f64 - q as f64;
                    d * d
                })
                .sum::<f64>()
        })
        .sum();
    Ok(se / a.data().len() as f64)
}

/// PSNR in dB for a data range of 255; `f64::INFINITY` for identical frames.
pub fn psnr(a: &Frame, b: &Frame) -> Result<f64> {
    same_size("psnr", a, b)?;
    let m = mse(a, b)?;
    Ok(if m == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / m).log10()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn matches_hand_computed_values() {
        let a = Frame::filled(3, 2, [10, 20, 30]).unwrap();
        let mut b = a.clone();
        b.data_mut()[0] = 20; // one byte off by 10 of 18: MSE = 100/18
        let want = 10.0 * (255.0f64 * 255.0 / (100.0 / 18.0)).log10();
        assert!((psnr(&a, &b).unwrap() - want).abs() < 1e-12);
        assert!((mse(&a, &b).unwrap() - 100.0 / 18.0).abs() < 1e-12);
        assert_eq!(psnr(&a, &a).unwrap(), f64::INFINITY);
        let black = Frame::filled(1, 1, [0, 0, 0]).unwrap();
        let white = Frame::filled(1, 1, [255, 255, 255]).unwrap();
        assert!(psnr(&black, &white).unwrap().abs() < 1e-12);
    }

    #[test]
    fn rejects_mismatched_sizes() {
        let a = Frame::filled(3, 2, [0, 0, 0]).unwrap();
        let b = Frame::filled(2, 3, [0, 0, 0]).unwrap();
        assert!(matches!(psnr(&a, &b), Err(Error::Shape { .. })));
    }
}

//! Constant learning rate for the first part of training, then linear decay to 0 at the end
//! (pix2pixHD / CoCosNet `niter` + `niter_decay`).

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearDecay {
    /// Total iterations of the run.
    pub total: u64,
    /// Iterations at the constant rate (`decay_start · total`, rounded down).
    pub constant: u64,
}

impl LinearDecay {
    /// `decay_start` in [0, 1]: the fraction of `total` at constant rate (0.5 by default).
    pub fn new(total: u64, decay_start: f32) -> Result<Self> {
        if total == 0 || !(0.0..=1.0).contains(&decay_start) {
            return Err(Error::invalid(
                "linear_decay",
                format!("total {total} must be positive and decay_start {decay_start} in [0, 1]"),
            ));
        }
        Ok(LinearDecay {
            total,
            constant: (decay_start as f64 * total as f64).floor() as u64,
        })
    }

    /// The factor of the base rate at 0-based iteration `iter`: 1 while `iter < constant`,
    /// then `(total − iter) / (total − constant)`, reaching 0 at `total` (and after it).
    pub fn factor(&self, iter: u64) -> f32 {
        if iter < self.constant {
            return 1.0;
        }
        let span = self.total - self.constant;
        if span == 0 || iter >= self.total {
            return 0.0;
        }
        ((self.total - iter) as f64 / span as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_then_linear_to_zero() {
        let s = LinearDecay::new(10, 0.5).unwrap();
        let f: Vec<f32> = (0..=11).map(|i| s.factor(i)).collect();
        assert_eq!(&f[..5], &[1.0; 5]);
        assert_eq!(&f[5..], &[1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0]);
        let odd = LinearDecay::new(7, 0.5).unwrap();
        assert_eq!(odd.constant, 3);
        assert!((odd.factor(5) - 0.5).abs() < 1e-6);
        assert_eq!(LinearDecay::new(4, 1.0).unwrap().factor(3), 1.0);
        assert_eq!(LinearDecay::new(4, 1.0).unwrap().factor(4), 0.0);
        assert!(LinearDecay::new(0, 0.5).is_err());
        assert!(LinearDecay::new(5, 1.5).is_err());
        assert!(LinearDecay::new(5, f32::NAN).is_err());
    }
}

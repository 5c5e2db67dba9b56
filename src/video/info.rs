//! What a frame source knows about itself: size, frame rate and (when known) frame count.

use crate::error::{Error, Result};

/// A frame rate as an exact fraction (`30000/1001` for NTSC), as containers store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// A rate of `num/den` frames per second; both must be positive.
    pub fn new(num: u32, den: u32) -> Result<FrameRate> {
        if num == 0 || den == 0 {
            return Err(Error::invalid(
                "FrameRate",
                format!("frame rate {num}/{den} must have a positive numerator and denominator"),
            ));
        }
        let g = gcd(num, den);
        Ok(FrameRate {
            num: num / g,
            den: den / g,
        })
    }

    /// The nearest fraction to `fps`: whole thousandths (`12.5` → 25/2), or NTSC-style
    /// `n·1000/1001` rates (`29.97` → 30000/1001), since those are what cameras write.
    pub fn from_f64(fps: f64) -> Result<FrameRate> {
        if !(fps.is_finite() && fps > 0.0 && fps <= 10_000.0) {
            return Err(Error::invalid(
                "FrameRate",
                format!("frame rate {fps} is not in (0, 10000]"),
            ));
        }
        let ntsc = fps * 1.001;
        if (ntsc - ntsc.round()).abs() < 5e-4 && (fps - fps.round()).abs() > 1e-6 {
            return FrameRate::new(ntsc.round() as u32 * 1000, 1001);
        }
        FrameRate::new((fps * 1000.0).round().max(1.0) as u32, 1000)
    }

    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl std::fmt::Display for FrameRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{} fps", self.num)
        } else {
            write!(f, "{}/{} fps ({:.3})", self.num, self.den, self.as_f64())
        }
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A frame source's description. Frame folders have no frame rate; a container may not store its
/// frame count (then it is `None` and only decoding tells).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<FrameRate>,
    pub frame_count: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rate_reduces_and_rejects_zero() {
        assert_eq!(
            FrameRate::new(50, 2).unwrap(),
            FrameRate { num: 25, den: 1 }
        );
        assert!(FrameRate::new(0, 1).is_err());
        assert!(FrameRate::new(25, 0).is_err());
    }

    #[test]
    fn frame_rate_from_f64() {
        assert_eq!(
            FrameRate::from_f64(25.0).unwrap(),
            FrameRate { num: 25, den: 1 }
        );
        assert_eq!(
            FrameRate::from_f64(12.5).unwrap(),
            FrameRate { num: 25, den: 2 }
        );
        assert_eq!(
            FrameRate::from_f64(29.97).unwrap(),
            FrameRate {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(
            FrameRate::from_f64(30000.0 / 1001.0).unwrap(),
            FrameRate {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(
            FrameRate::from_f64(23.976).unwrap(),
            FrameRate {
                num: 24000,
                den: 1001
            }
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert!(FrameRate::from_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(
            FrameRate {
                num: 30000,
                den: 1001
            }
            .to_string(),
            "30000/1001 fps (29.970)"
        );
    }
}

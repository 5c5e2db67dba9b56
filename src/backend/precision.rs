//! The arithmetic precision of the matrix products (conv2d, matmul, corr_warp): one process-wide
//! setting.
//!
//! `F32` (the default) computes every product in f32. `Tf32` lets the CUDA backend run its conv
//! and matmul launchers on the tensor cores: each operand rounded to tf32 (10 mantissa bits),
//! products accumulated in f32; shapes where that path does not apply (depthwise convs, tiny
//! GEMMs) keep the f32 kernels. `Bf16` is meant as `Tf32` plus corr_warp's N × M products on bf16
//! tensor cores (q̂, k̂, v, the softmax weights and the gradients rounded to bf16, 8 significant
//! bits; f32 accumulation, f32 softmax statistics and normalisation; v wider than 64 keeps f32):
//! `tf32_products()` says whether conv and matmul take tf32, the corr_warp launcher reads
//! `Bf16` itself. The CPU backend always computes in f32, whatever the setting.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    Tf32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Tf32, Precision::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether conv and matmul may run on tf32 tensor cores (Tf32, and Bf16 which includes it).
    pub fn tf32_products(self) -> bool {
        matches!(self, Precision::Tf32 | Precision::Bf16)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "precision",
                    format!("unknown precision {s:?} (expected f32, tf32 or bf16)"),
                )
            })
    }
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets the process-wide precision of the CUDA conv and matmul launchers (stored as the index
/// of `p` in `ALL`).
pub fn set_precision(p: Precision) {
    let i = Precision::ALL.iter().position(|&q| q == p).unwrap_or(0);
    PRECISION.store(i as u8, Ordering::Relaxed);
}

/// The process-wide precision (F32 unless `set_precision` said otherwise).
pub fn precision() -> Precision {
    let i = PRECISION.load(Ordering::Relaxed) as usize;
    Precision::ALL.get(i).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_its_names() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert_eq!("tf32".parse::<Precision>().unwrap(), Precision::Tf32);
        assert_eq!(Precision::default(), Precision::F32);
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert!(Precision::Bf16.tf32_products() && !Precision::F32.tf32_products());
        let err = "fp16".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("precision") && err.contains("fp16"), "{err}");
        assert!("TF32 ".parse::<Precision>().is_err());
    }

    #[test]
    fn the_setting_round_trips() {
        // The only test that touches the global; the CPU backend never reads it.
        assert_eq!(precision(), Precision::F32);
        set_precision(Precision::Tf32);
        assert_eq!(precision(), Precision::Tf32);
        set_precision(Precision::F32);
        assert_eq!(precision(), Precision::F32);
    }
}

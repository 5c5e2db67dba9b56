//! Parameter and forward-MAC counts, analytic from the layer shapes (never by running or timing):
//! every `*Spec` returns a `Count` at a given input size, and `count(cfg)` walks the networks of a
//! config without allocating a parameter, so the `paper` numbers cost microseconds.
//!
//! MACs are the multiply-accumulates of the convolutions and of the `corr_warp` products
//! (correlation N·M·C, warp N·M·V); norms, activations, pooling and resizes are not counted.
//! Each module's forward also records the MACs it performed (`record_macs`), so a test can check
//! that the analytic walk and a real forward agree (`measure_macs`).

use crate::error::Result;
use crate::model::config::ModelConfig;
use crate::model::correspondence::{CorrCounts, CorrespondenceSpec};
use crate::model::discriminator::DiscriminatorSpec;
use crate::model::face::{FaceDiscriminatorSpec, FaceGeneratorSpec};
use crate::model::generator::{GeneratorCounts, GeneratorSpec};
use std::cell::Cell;
use std::iter::Sum;
use std::ops::{Add, Mul};

/// Trainable parameters and forward multiply-accumulates (per sample unless stated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub params: u64,
    pub macs: u64,
}

impl Count {
    pub fn new(params: u64, macs: u64) -> Self {
        Count { params, macs }
    }

    /// Parameters in millions.
    pub fn mparams(&self) -> f64 {
        self.params as f64 / 1e6
    }

    /// MACs in billions.
    pub fn gmacs(&self) -> f64 {
        self.macs as f64 / 1e9
    }
}

impl Add for Count {
    type Output = Count;
    fn add(self, o: Count) -> Count {
        Count::new(self.params + o.params, self.macs + o.macs)
    }
}

impl Mul<u64> for Count {
    type Output = Count;
    fn mul(self, k: u64) -> Count {
        Count::new(self.params * k, self.macs * k)
    }
}

impl Sum for Count {
    fn sum<I: Iterator<Item = Count>>(iter: I) -> Count {
        iter.fold(Count::default(), Add::add)
    }
}

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Adds `macs` to the running measurement of this thread, if one is active.
pub fn record_macs(macs: u64) {
    MACS.with(|m| {
        if let Some(total) = m.get() {
            m.set(Some(total + macs));
        }
    });
}

/// Runs `f` and returns the MACs its forwards recorded (nested measurements restart the count).
pub fn measure_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let saved = MACS.with(|m| m.replace(Some(0)));
    let r = f();
    let total = MACS.with(|m| m.replace(saved)).unwrap_or(0);
    if let Some(outer) = saved {
        MACS.with(|m| m.set(Some(outer + total)));
    }
    (r, total)
}

/// The counts of every network of a config at batch 1 and `image_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelCounts {
    pub correspondence: CorrCounts,
    pub generator: GeneratorCounts,
    /// Multiscale image discriminator, all scales, one image.
    pub discriminator: Count,
    /// Temporal discriminator D1 over one window of l frames.
    pub temporal_discriminator: Count,
    /// Temporal generator G1 (G with the previous l−1 frames in its conditioning).
    pub temporal_generator: GeneratorCounts,
    /// Face residual generator G2, one face crop.
    pub face_generator: Count,
    /// Face PatchGAN D2, one face crop.
    pub face_discriminator: Count,
}

impl ModelCounts {
    /// Correspondence + translation generator (what the generator-side optimiser trains).
    pub fn generator_side(&self) -> Count {
        self.correspondence.total() + self.generator.total
    }

    /// (name, count, note) rows for printing.
    pub fn rows(&self) -> Vec<(&'static str, Count, &'static str)> {
        let c = &self.correspondence;
        let mut rows = vec![
            ("corr.pose_adaptor", c.pose_adaptor, ""),
            ("corr.image_adaptor", c.image_adaptor, ""),
            (
                "corr.shared + theta/phi",
                c.shared,
                "stack run on both branches",
            ),
            ("corr.correlation", c.correlation, "inside corr_warp"),
            ("corr.warp", c.warp, "inside corr_warp"),
        ];
        if let Some(cycle) = c.cycle {
            rows.push(("corr.warp_cycle", cycle, "second corr_warp"));
        }
        rows.extend([
            ("gen", self.generator.total, "translation generator"),
            ("gen.attn", self.generator.attention, "included in gen"),
            ("generator side total", self.generator_side(), ""),
            ("disc", self.discriminator, "all scales, per image"),
            (
                "temporal gen",
                self.temporal_generator.total,
                "G1: gen + previous frames",
            ),
            (
                "temporal disc",
                self.temporal_discriminator,
                "D1: all scales, per window",
            ),
            ("face gen", self.face_generator, "G2: per face crop"),
            ("face disc", self.face_discriminator, "D2: per face crop"),
        ]);
        rows
    }
}

/// The analytic counts of `cfg`'s networks (no parameters are built).
pub fn count(cfg: &ModelConfig) -> Result<ModelCounts> {
    Ok(ModelCounts {
        correspondence: CorrespondenceSpec::from_config(cfg).count()?,
        generator: GeneratorSpec::from_config(cfg).count()?,
        discriminator: DiscriminatorSpec::from_config(cfg).count()?,
        temporal_discriminator: DiscriminatorSpec::temporal(cfg).count()?,
        temporal_generator: GeneratorSpec::with_cond(cfg, cfg.temporal_cond_channels()).count()?,
        face_generator: FaceGeneratorSpec::from_config(cfg).count()?,
        face_discriminator: FaceDiscriminatorSpec::from_config(cfg).count()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_nest_and_stay_off_outside() {
        record_macs(5); // no measurement active: ignored
        let ((_, inner), outer) = measure_macs(|| {
            record_macs(2);
            let r = measure_macs(|| record_macs(3));
            record_macs(1);
            r
        });
        assert_eq!((inner, outer), (3, 6));
        let (_, none) = measure_macs(|| ());
        assert_eq!(none, 0);
    }

    /// G1 differs from G only by the 3·(l−1) extra conditioning channels of the first conv and
    /// of every SPADE MLP's first conv (3×3, `spade_hidden` out): 7 blocks, 2 or 3 SPADE layers
    /// each (a shortcut SPADE where fin ≠ fout: up_0 … up_3).
    #[test]
    fn temporal_generator_adds_only_conditioning_inputs() {
        let cfg = ModelConfig::preset("paper").unwrap();
        let c = count(&cfg).unwrap();
        let extra = 3 * (cfg.temporal_window as u64 - 1);
        let spade_layers = 7 * 2 + 4;
        let want = extra * 9 * (16 * cfg.ngf as u64 + spade_layers * cfg.spade_hidden as u64);
        assert_eq!(
            c.temporal_generator.total.params - c.generator.total.params,
            want
        );
        let names: Vec<&str> = c.rows().iter().map(|r| r.0).collect();
        for n in ["temporal gen", "temporal disc", "face gen", "face disc"] {
            assert!(names.contains(&n), "{n} missing in {names:?}");
        }
    }

    #[test]
    fn count_arithmetic() {
        let a = Count::new(1, 10);
        assert_eq!(a + a * 2, Count::new(3, 30));
        assert_eq!([a, a].into_iter().sum::<Count>(), Count::new(2, 20));
        assert_eq!(Count::new(1_500_000, 2_000_000_000).mparams(), 1.5);
        assert_eq!(Count::new(0, 2_000_000_000).gmacs(), 2.0);
    }
}

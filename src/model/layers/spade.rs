//! SPADE (MODEL.md §3): the modulation layer and the SPADE residual block.
//!
//! SPADE layer: the conditioning map, nearest-resized to the feature size, goes through a small
//! MLP (reflect-pad 3×3 conv cond→hidden, ReLU; γ and β each reflect-pad 3×3 conv hidden→C), then
//! the fused `norm(x)·(1+γ)+β` with PONO (or instance norm).
//! Block: shortcut = identity or SPADE → 1×1 conv (no bias, SN); main = SPADE → LReLU 0.2 →
//! 3×3 conv fin→fmid → SPADE → LReLU 0.2 → 3×3 conv fmid→fout; fmid = min(fin, fout).

use super::conv::{Conv2d, ConvSpec};
use crate::autograd::Var;
use crate::backend::{ResizeMode, SpadeNorm};
use crate::error::{Error, Result};
use crate::model::config::SpadeNormKind;
use crate::model::count::Count;
use crate::nn::Scope;

/// eps of the parameter-free normalisation inside SPADE (PONO and instance norm).
pub const SPADE_EPS: f32 = 1e-5;
/// Slope of the LeakyReLU inside SPADE blocks.
pub const SPADE_LRELU: f32 = 0.2;

/// The shape of one SPADE layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpadeSpec {
    /// Channels of the normalised feature.
    pub channels: usize,
    /// Channels of the conditioning map.
    pub cond: usize,
    pub hidden: usize,
    pub norm: SpadeNormKind,
}

impl SpadeSpec {
    fn shared(&self) -> ConvSpec {
        ConvSpec::new(self.cond, self.hidden, 3).reflect(1)
    }

    fn gamma_beta(&self) -> ConvSpec {
        ConvSpec::new(self.hidden, self.channels, 3).reflect(1)
    }

    /// Parameters and MACs of one sample at feature size `hw` (the MLP runs at that size).
    pub fn count(&self, hw: (usize, usize)) -> Result<Count> {
        let (shared, _) = self.shared().count(hw)?;
        let (gb, _) = self.gamma_beta().count(hw)?;
        Ok(shared + gb + gb)
    }
}

/// One SPADE layer: `mlp_shared`, `mlp_gamma`, `mlp_beta`.
pub struct Spade {
    spec: SpadeSpec,
    shared: Conv2d,
    gamma: Conv2d,
    beta: Conv2d,
}

impl Spade {
    pub fn new(scope: &Scope<'_>, spec: SpadeSpec, gain: f32) -> Result<Self> {
        Ok(Spade {
            spec,
            shared: Conv2d::new(&scope.scope("mlp_shared"), spec.shared(), gain)?,
            gamma: Conv2d::new(&scope.scope("mlp_gamma"), spec.gamma_beta(), gain)?,
            beta: Conv2d::new(&scope.scope("mlp_beta"), spec.gamma_beta(), gain)?,
        })
    }

    /// `norm(x)·(1+γ(cond))+β(cond)`; `cond` is nearest-resized to `x`'s size when it differs.
    pub fn forward(&self, x: &Var, cond: &Var, training: bool) -> Result<Var> {
        let hw = match *x.dims() {
            [_, _, h, w] => (h, w),
            _ => {
                return Err(Error::shape(
                    "spade",
                    format!("expected NCHW features, got {:?}", x.dims()),
                ))
            }
        };
        let cond = match *cond.dims() {
            [_, _, h, w] if (h, w) == hw => cond.clone(),
            [_, _, _, _] => cond.resize2d(hw, ResizeMode::Nearest)?,
            _ => {
                return Err(Error::shape(
                    "spade",
                    format!("expected an NCHW conditioning map, got {:?}", cond.dims()),
                ))
            }
        };
        let actv = self.shared.forward(&cond, training)?.relu()?;
        let gamma = self.gamma.forward(&actv, training)?;
        let beta = self.beta.forward(&actv, training)?;
        let norm = match self.spec.norm {
            SpadeNormKind::Pono => SpadeNorm::Pono,
            SpadeNormKind::Instance => SpadeNorm::Instance,
        };
        x.spade_modulate(&gamma, &beta, norm, SPADE_EPS)
    }
}

/// The shape of one SPADE residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpadeBlockSpec {
    pub fin: usize,
    pub fout: usize,
    pub cond: usize,
    pub hidden: usize,
    pub norm: SpadeNormKind,
    /// Spectral norm on the block's convs (all MODEL.md blocks use it).
    pub spectral_norm: bool,
}

impl SpadeBlockSpec {
    pub fn new(fin: usize, fout: usize, cond: usize, hidden: usize, norm: SpadeNormKind) -> Self {
        SpadeBlockSpec {
            fin,
            fout,
            cond,
            hidden,
            norm,
            spectral_norm: true,
        }
    }

    fn fmid(&self) -> usize {
        self.fin.min(self.fout)
    }

    fn learned_shortcut(&self) -> bool {
        self.fin != self.fout
    }

    fn spade(&self, channels: usize) -> SpadeSpec {
        SpadeSpec {
            channels,
            cond: self.cond,
            hidden: self.hidden,
            norm: self.norm,
        }
    }

    fn conv_0(&self) -> ConvSpec {
        ConvSpec::new(self.fin, self.fmid(), 3)
            .reflect(1)
            .sn(self.spectral_norm)
    }

    fn conv_1(&self) -> ConvSpec {
        ConvSpec::new(self.fmid(), self.fout, 3)
            .reflect(1)
            .sn(self.spectral_norm)
    }

    fn conv_s(&self) -> ConvSpec {
        ConvSpec::new(self.fin, self.fout, 1)
            .bias(false)
            .sn(self.spectral_norm)
    }

    /// Parameters and MACs of one sample at size `hw` (the block keeps the size).
    pub fn count(&self, hw: (usize, usize)) -> Result<Count> {
        let mut c = self.spade(self.fin).count(hw)?
            + self.conv_0().count(hw)?.0
            + self.spade(self.fmid()).count(hw)?
            + self.conv_1().count(hw)?.0;
        if self.learned_shortcut() {
            c = c + self.spade(self.fin).count(hw)? + self.conv_s().count(hw)?.0;
        }
        Ok(c)
    }
}

/// A SPADE residual block: `norm_0`, `conv_0`, `norm_1`, `conv_1` and, when fin ≠ fout,
/// `norm_s`, `conv_s`.
pub struct SpadeBlock {
    norm_0: Spade,
    conv_0: Conv2d,
    norm_1: Spade,
    conv_1: Conv2d,
    shortcut: Option<(Spade, Conv2d)>,
}

impl SpadeBlock {
    pub fn new(scope: &Scope<'_>, spec: SpadeBlockSpec, gain: f32) -> Result<Self> {
        let shortcut = if spec.learned_shortcut() {
            Some((
                Spade::new(&scope.scope("norm_s"), spec.spade(spec.fin), gain)?,
                Conv2d::new(&scope.scope("conv_s"), spec.conv_s(), gain)?,
            ))
        } else {
            None
        };
        Ok(SpadeBlock {
            norm_0: Spade::new(&scope.scope("norm_0"), spec.spade(spec.fin), gain)?,
            conv_0: Conv2d::new(&scope.scope("conv_0"), spec.conv_0(), gain)?,
            norm_1: Spade::new(&scope.scope("norm_1"), spec.spade(spec.fmid()), gain)?,
            conv_1: Conv2d::new(&scope.scope("conv_1"), spec.conv_1(), gain)?,
            shortcut,
        })
    }

    pub fn forward(&self, x: &Var, cond: &Var, training: bool) -> Result<Var> {
        let skip = match &self.shortcut {
            Some((norm, conv)) => conv.forward(&norm.forward(x, cond, training)?, training)?,
            None => x.clone(),
        };
        let dx = self.norm_0.forward(x, cond, training)?;
        let dx = self
            .conv_0
            .forward(&dx.leaky_relu(SPADE_LRELU)?, training)?;
        let dx = self.norm_1.forward(&dx, cond, training)?;
        let dx = self
            .conv_1
            .forward(&dx.leaky_relu(SPADE_LRELU)?, training)?;
        skip.add(&dx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::count::measure_macs;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    /// PONO reference: per pixel over channels, unbiased variance.
    fn pono_ref(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        for p in 0..x.len() / c {
            let (n, s) = (p / hw, p % hw);
            let at = |ch: usize| n * c * hw + ch * hw + s;
            let mean = (0..c).map(|ch| f64::from(x[at(ch)])).sum::<f64>() / c as f64;
            let var = (0..c)
                .map(|ch| (f64::from(x[at(ch)]) - mean).powi(2))
                .sum::<f64>()
                / (c - 1) as f64;
            for ch in 0..c {
                out[at(ch)] =
                    ((f64::from(x[at(ch)]) - mean) / (var + f64::from(SPADE_EPS)).sqrt()) as f32;
            }
        }
        out
    }

    #[test]
    fn spade_layer_matches_its_composition() {
        let store = ParamStore::new(2);
        let spec = SpadeSpec {
            channels: 5,
            cond: 2,
            hidden: 4,
            norm: SpadeNormKind::Pono,
        };
        // Large init so γ and β matter.
        let spade = Spade::new(&store.scope("s"), spec, 1.0).unwrap();
        let x = Var::constant(Tensor::randn([2, 5, 3, 5], 0.5, 2.0, 7));
        let cond = Var::constant(Tensor::randn([2, 2, 7, 9], 0.0, 1.0, 8));
        let (y, macs) = measure_macs(|| spade.forward(&x, &cond, true));
        let y = y.unwrap();
        assert_eq!(macs, 2 * spec.count((3, 5)).unwrap().macs);
        let c = cond.resize2d((3, 5), ResizeMode::Nearest).unwrap();
        let a = spade.shared.forward(&c, false).unwrap().relu().unwrap();
        let g = spade
            .gamma
            .forward(&a, false)
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        let b = spade
            .beta
            .forward(&a, false)
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        let n = pono_ref(&x.value().to_vec().unwrap(), 5, 15);
        let y = y.value().to_vec().unwrap();
        for i in 0..y.len() {
            let want = n[i] * (1.0 + g[i]) + b[i];
            assert!(
                (y[i] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{i}: {} vs {want}",
                y[i]
            );
        }
        let bad = Var::constant(Tensor::zeros([2, 2, 7]));
        assert!(matches!(
            spade.forward(&x, &bad, true),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn block_names_counts_and_shapes() {
        let store = ParamStore::new(3);
        let spec = SpadeBlockSpec::new(6, 4, 3, 5, SpadeNormKind::Instance);
        let block = SpadeBlock::new(&store.scope("b"), spec, 0.02).unwrap();
        let names = store.names();
        for n in [
            "b.norm_s.mlp_shared.weight",
            "b.conv_s.weight",
            "b.conv_s.weight_u",
            "b.norm_0.mlp_gamma.bias",
            "b.conv_0.weight_v",
            "b.norm_1.mlp_beta.weight",
            "b.conv_1.bias",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "b.conv_s.bias"));
        let count = spec.count((4, 3)).unwrap();
        assert_eq!(count.params, store.num_params() as u64);
        let x = Var::constant(Tensor::randn([2, 6, 4, 3], 0.0, 1.0, 1));
        let cond = Var::constant(Tensor::randn([2, 3, 8, 6], 0.0, 1.0, 2));
        let (y, macs) = measure_macs(|| block.forward(&x, &cond, true));
        assert_eq!(y.unwrap().dims(), &[2, 4, 4, 3]);
        assert_eq!(macs, 2 * count.macs);
        // Identity shortcut: no norm_s / conv_s.
        let store = ParamStore::new(3);
        let spec = SpadeBlockSpec::new(4, 4, 3, 5, SpadeNormKind::Pono);
        SpadeBlock::new(&store.root(), spec, 0.02).unwrap();
        assert!(!store.names().iter().any(|x| x.contains("_s.")));
        assert_eq!(
            spec.count((2, 2)).unwrap().params,
            store.num_params() as u64
        );
    }
}

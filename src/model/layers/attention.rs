//! SAGAN self-attention (MODEL.md §3 step 6, §4): θ, φ 1×1 convs to C/8, g to C/2, φ and g 2×2
//! max-pooled, `softmax(θᵀφ)·gᵀ`, 1×1 conv `o` back to C, `out = x + γ·o` with a scalar γ that
//! starts at 0. All projections without bias, with spectral norm.
//!
//! The attention itself is the engine's `corr_warp` primitive with `normalize = false, scale = 1`
//! (q = θ [B, C/8, N], k = φ [B, C/8, N/4], v = gᵀ [B, N/4, C/2]), so the CUDA backend can fuse
//! it without storing the N×N/4 matrix.

use super::conv::{Conv2d, ConvSpec};
use crate::autograd::Var;
use crate::backend::{CorrWarpParams, Pool2dParams};
use crate::error::{Error, Result};
use crate::model::count::{record_macs, Count};
use crate::nn::{Init, Scope};

/// The shape of one self-attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionSpec {
    pub channels: usize,
    pub spectral_norm: bool,
}

impl AttentionSpec {
    pub fn new(channels: usize) -> Self {
        AttentionSpec {
            channels,
            spectral_norm: true,
        }
    }

    fn proj(&self, c_in: usize, c_out: usize) -> ConvSpec {
        ConvSpec::new(c_in, c_out, 1)
            .bias(false)
            .sn(self.spectral_norm)
    }

    fn check(&self, hw: (usize, usize)) -> Result<()> {
        let c = self.channels;
        let even = |v: usize| v >= 2 && v.is_multiple_of(2);
        if c < 8 || !c.is_multiple_of(8) || !even(hw.0) || !even(hw.1) {
            return Err(Error::shape(
                "self_attention",
                format!(
                    "{c} channels at {}×{}: needs C a multiple of 8 and an even size >= 2",
                    hw.0, hw.1
                ),
            ));
        }
        Ok(())
    }

    /// MACs of θᵀφ and of the product with g at `hw` (the part outside the 1×1 convs).
    fn attention_macs(&self, hw: (usize, usize)) -> u64 {
        let n = (hw.0 * hw.1) as u64;
        let m = n / 4;
        let c = self.channels as u64;
        n * m * (c / 8 + c / 2)
    }

    /// Parameters and MACs of one sample at `hw` (the size is kept).
    pub fn count(&self, hw: (usize, usize)) -> Result<Count> {
        self.check(hw)?;
        let c = self.channels;
        let convs = self.proj(c, c / 8).count(hw)?.0 * 2
            + self.proj(c, c / 2).count(hw)?.0
            + self.proj(c / 2, c).count(hw)?.0;
        Ok(convs + Count::new(1, self.attention_macs(hw)))
    }
}

/// Self-attention: `theta`, `phi`, `g`, `o` (1×1 convs) and the scalar `gamma`.
pub struct SelfAttention {
    spec: AttentionSpec,
    theta: Conv2d,
    phi: Conv2d,
    g: Conv2d,
    o: Conv2d,
    gamma: Var,
}

impl SelfAttention {
    pub fn new(scope: &Scope<'_>, spec: AttentionSpec, gain: f32) -> Result<Self> {
        let c = spec.channels;
        Ok(SelfAttention {
            spec,
            theta: Conv2d::new(&scope.scope("theta"), spec.proj(c, c / 8), gain)?,
            phi: Conv2d::new(&scope.scope("phi"), spec.proj(c, c / 8), gain)?,
            g: Conv2d::new(&scope.scope("g"), spec.proj(c, c / 2), gain)?,
            o: Conv2d::new(&scope.scope("o"), spec.proj(c / 2, c), gain)?,
            gamma: scope.param("gamma", &[], Init::Zeros)?,
        })
    }

    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let (b, c, h, w) = match *x.dims() {
            [b, c, h, w] if c == self.spec.channels => (b, c, h, w),
            _ => {
                return Err(Error::shape(
                    "self_attention",
                    format!(
                        "input {:?} for a layer of {} channels",
                        x.dims(),
                        self.spec.channels
                    ),
                ))
            }
        };
        self.spec.check((h, w))?;
        let (n, m) = (h * w, h * w / 4);
        let pool = Pool2dParams {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            count_include_pad: false,
        };
        let theta = self.theta.forward(x, training)?.reshape(&[b, c / 8, n])?;
        let phi = self
            .phi
            .forward(x, training)?
            .max_pool2d(pool)?
            .reshape(&[b, c / 8, m])?;
        let g = self
            .g
            .forward(x, training)?
            .max_pool2d(pool)?
            .reshape(&[b, c / 2, m])?
            .permute(&[0, 2, 1])?;
        let p = CorrWarpParams {
            scale: 1.0,
            normalize: false,
            eps: 0.0,
        };
        let attended = Var::corr_warp(&theta, &phi, &g, p)?; // [B, N, C/2]
        record_macs(self.spec.attention_macs((h, w)) * b as u64);
        let attended = attended.permute(&[0, 2, 1])?.reshape(&[b, c / 2, h, w])?;
        let o = self.o.forward(&attended, training)?;
        x.add(&o.mul(&self.gamma)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::count::measure_macs;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    #[test]
    fn matches_plain_matmul_softmax_reference() {
        let store = ParamStore::new(9);
        let spec = AttentionSpec::new(16);
        let attn = SelfAttention::new(&store.scope("attn"), spec, 1.0).unwrap();
        attn.gamma.set_value(Tensor::scalar(0.7)).unwrap();
        let (b, c, h, w) = (2, 16, 4, 6);
        let x = Var::constant(Tensor::randn([b, c, h, w], 0.0, 1.0, 3));
        let (y, macs) = measure_macs(|| attn.forward(&x, false));
        let y = y.unwrap().value().to_vec().unwrap();
        assert_eq!(macs, b as u64 * spec.count((h, w)).unwrap().macs);
        assert_eq!(
            spec.count((h, w)).unwrap().params,
            store.num_params() as u64
        );

        // Reference with plain loops over the projections' outputs.
        let proj = |conv: &Conv2d| conv.forward(&x, false).unwrap().value().to_vec().unwrap();
        let (th, ph, g) = (proj(&attn.theta), proj(&attn.phi), proj(&attn.g));
        let (n, m, c8, c2) = (h * w, h * w / 4, c / 8, c / 2);
        let pooled = |t: &[f32], ch: usize, bi: usize, k: usize, j: usize| {
            let (pi, pj) = (j / (w / 2) * 2, j % (w / 2) * 2);
            let at = |di: usize, dj: usize| t[((bi * ch + k) * h + pi + di) * w + pj + dj];
            at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1))
        };
        let mut att = vec![0.0f32; b * c2 * n];
        for bi in 0..b {
            for i in 0..n {
                let logits: Vec<f64> = (0..m)
                    .map(|j| {
                        (0..c8)
                            .map(|k| {
                                f64::from(th[(bi * c8 + k) * n + i])
                                    * f64::from(pooled(&ph, c8, bi, k, j))
                            })
                            .sum()
                    })
                    .collect();
                let mx = logits.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for k in 0..c2 {
                    let v: f64 = (0..m)
                        .map(|j| e[j] / z * f64::from(pooled(&g, c2, bi, k, j)))
                        .sum();
                    att[(bi * c2 + k) * n + i] = v as f32;
                }
            }
        }
        let att = Var::constant(Tensor::from_vec(att, [b, c2, h, w]).unwrap());
        let o = attn
            .o
            .forward(&att, false)
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        let xv = x.value().to_vec().unwrap();
        for i in 0..y.len() {
            let want = xv[i] + 0.7 * o[i];
            assert!(
                (y[i] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{i}: {} vs {want}",
                y[i]
            );
        }
    }

    #[test]
    fn rejects_odd_sizes_and_channels() {
        assert!(AttentionSpec::new(16).count((3, 4)).is_err());
        assert!(AttentionSpec::new(12).count((4, 4)).is_err());
        let store = ParamStore::new(0);
        let attn = SelfAttention::new(&store.root(), AttentionSpec::new(8), 0.02).unwrap();
        let x = Var::constant(Tensor::zeros([1, 8, 5, 4]));
        assert!(matches!(attn.forward(&x, false), Err(Error::Shape { .. })));
        let x = Var::constant(Tensor::zeros([1, 16, 4, 4]));
        assert!(matches!(attn.forward(&x, false), Err(Error::Shape { .. })));
    }
}

//! The correspondence network's residual stack (MODEL.md §2), one instance shared by the pose and
//! the exemplar branch. Each block: reflect-pad 1 → 3×3 conv (bias) → InstanceNorm → PReLU →
//! reflect-pad 1 → 3×3 conv → InstanceNorm → + skip → PReLU, where both PReLUs are the same
//! module (one parameter per block, PyTorch's init 0.25). No spectral norm.

use super::conv::{Conv2d, ConvSpec};
use crate::autograd::Var;
use crate::error::Result;
use crate::model::count::Count;
use crate::nn::{Init, Scope};

/// eps of the (non-affine) instance norms of the model.
pub const IN_EPS: f32 = 1e-5;
/// PyTorch's `nn.PReLU()` initial slope.
pub const PRELU_INIT: f32 = 0.25;

/// The shape of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResStackSpec {
    pub channels: usize,
    pub blocks: usize,
}

impl ResStackSpec {
    fn conv(&self) -> ConvSpec {
        ConvSpec::new(self.channels, self.channels, 3).reflect(1)
    }

    /// Parameters and MACs of one pass of one sample at `hw` (the size is kept).
    pub fn count(&self, hw: (usize, usize)) -> Result<Count> {
        let (conv, _) = self.conv().count(hw)?;
        Ok((conv * 2 + Count::new(1, 0)) * self.blocks as u64)
    }
}

struct ResBlock {
    conv_0: Conv2d,
    conv_1: Conv2d,
    prelu: Var,
}

/// `blocks` residual blocks named `block_<i>` with `conv_0`, `conv_1`, `prelu.weight`.
pub struct ResStack {
    blocks: Vec<ResBlock>,
}

impl ResStack {
    pub fn new(scope: &Scope<'_>, spec: ResStackSpec, gain: f32) -> Result<Self> {
        let blocks = (0..spec.blocks)
            .map(|i| {
                let s = scope.scope(&format!("block_{i}"));
                Ok(ResBlock {
                    conv_0: Conv2d::new(&s.scope("conv_0"), spec.conv(), gain)?,
                    conv_1: Conv2d::new(&s.scope("conv_1"), spec.conv(), gain)?,
                    prelu: s
                        .scope("prelu")
                        .param("weight", &[1], Init::Constant(PRELU_INIT))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ResStack { blocks })
    }

    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let mut x = x.clone();
        for b in &self.blocks {
            let y = b.conv_0.forward(&x, training)?;
            let y = y.instance_norm(None, None, IN_EPS)?.prelu(&b.prelu)?;
            let y = b.conv_1.forward(&y, training)?;
            let y = y.instance_norm(None, None, IN_EPS)?;
            x = y.add(&x)?.prelu(&b.prelu)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::count::measure_macs;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    #[test]
    fn one_block_matches_its_composition() {
        let store = ParamStore::new(5);
        let spec = ResStackSpec {
            channels: 3,
            blocks: 1,
        };
        let stack = ResStack::new(&store.scope("stack"), spec, 1.0).unwrap();
        assert_eq!(
            spec.count((5, 4)).unwrap().params,
            store.num_params() as u64
        );
        let alpha = store.get("stack.block_0.prelu.weight").unwrap();
        alpha.set_value(Tensor::full(0.1, [1])).unwrap();
        let x = Var::constant(Tensor::randn([2, 3, 5, 4], 0.0, 1.0, 1));
        let (y, macs) = measure_macs(|| stack.forward(&x, true));
        let y = y.unwrap().value().to_vec().unwrap();
        assert_eq!(macs, 2 * spec.count((5, 4)).unwrap().macs);
        // Reference: PReLU written out as max(0, v) + 0.1·min(0, v) on the conv outputs.
        let prelu = |v: f32| v.max(0.0) + 0.1 * v.min(0.0);
        let b = &stack.blocks[0];
        let inorm = |v: Var| v.instance_norm(None, None, IN_EPS).unwrap();
        let h = inorm(b.conv_0.forward(&x, false).unwrap())
            .value()
            .to_vec()
            .unwrap();
        let h = Tensor::from_vec(h.into_iter().map(prelu).collect(), [2, 3, 5, 4]).unwrap();
        let h = inorm(b.conv_1.forward(&Var::constant(h), false).unwrap());
        let xv = x.value().to_vec().unwrap();
        for (i, v) in h.value().to_vec().unwrap().iter().enumerate() {
            let want = prelu(v + xv[i]);
            assert!(
                (y[i] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{} vs {want}",
                y[i]
            );
        }
    }

    #[test]
    fn stack_names_and_sizes() {
        let store = ParamStore::new(5);
        let spec = ResStackSpec {
            channels: 4,
            blocks: 4,
        };
        ResStack::new(&store.scope("shared"), spec, 0.02).unwrap();
        assert!(store.contains("shared.block_3.conv_1.bias"));
        assert!(store.contains("shared.block_0.prelu.weight"));
        assert_eq!(store.num_params(), 4 * (2 * (4 * 4 * 9 + 4) + 1));
        assert!(spec.count((1, 3)).is_err()); // reflect pad 1 needs a size >= 2
    }
}

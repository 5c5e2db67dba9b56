//! 2-D convolution with optional bias, spectral norm and zero or reflect padding.
//!
//! `ConvSpec` is the shape of the layer (pure data: parameter and MAC counts come from it without
//! building anything); `Conv2d` is the layer with its parameters in a `ParamStore` scope.

use crate::autograd::Var;
use crate::backend::{Conv2dParams, PadMode};
use crate::error::{Error, Result};
use crate::model::count::{record_macs, Count};
use crate::nn::{Init, Scope, SpectralNorm};

/// The shape of one square-kernel convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub pad_mode: PadMode,
    pub bias: bool,
    pub spectral_norm: bool,
}

impl ConvSpec {
    /// A `kernel`×`kernel` conv, stride 1, no padding, with bias, without spectral norm.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        ConvSpec {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: 0,
            pad_mode: PadMode::Zeros,
            bias: true,
            spectral_norm: false,
        }
    }

    pub fn stride(self, stride: usize) -> Self {
        ConvSpec { stride, ..self }
    }

    /// Zero padding of `padding` on every side.
    pub fn pad(self, padding: usize) -> Self {
        ConvSpec {
            padding,
            pad_mode: PadMode::Zeros,
            ..self
        }
    }

    /// Reflect padding of `padding` on every side.
    pub fn reflect(self, padding: usize) -> Self {
        ConvSpec {
            padding,
            pad_mode: PadMode::Reflect,
            ..self
        }
    }

    pub fn bias(self, bias: bool) -> Self {
        ConvSpec { bias, ..self }
    }

    pub fn sn(self, spectral_norm: bool) -> Self {
        ConvSpec {
            spectral_norm,
            ..self
        }
    }

    pub fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: (self.stride, self.stride),
            padding: (self.padding, self.padding),
            pad_mode: self.pad_mode,
            ..Conv2dParams::default()
        }
    }

    /// Trainable scalars (weight and bias; spectral-norm u/v are buffers).
    pub fn num_params(&self) -> u64 {
        let w = self.c_out * self.c_in * self.kernel * self.kernel;
        (w + if self.bias { self.c_out } else { 0 }) as u64
    }

    /// Output size for an `hw` input, or a typed error when the window does not fit.
    pub fn out_hw(&self, hw: (usize, usize)) -> Result<(usize, usize)> {
        let reflect_ok =
            self.pad_mode != PadMode::Reflect || (self.padding < hw.0 && self.padding < hw.1);
        match self.params().out_size(hw.0, hw.1, self.kernel, self.kernel) {
            Some(o) if reflect_ok && self.c_in > 0 && self.c_out > 0 => Ok(o),
            _ => Err(Error::shape(
                "conv2d",
                format!("{self:?} does not fit an input of {}×{}", hw.0, hw.1),
            )),
        }
    }

    /// Parameters and multiply-accumulates of one sample at input size `hw`, and the output size.
    pub fn count(&self, hw: (usize, usize)) -> Result<(Count, (usize, usize))> {
        let (oh, ow) = self.out_hw(hw)?;
        let per_pixel = self.c_out * self.c_in * self.kernel * self.kernel;
        let macs = (oh * ow) as u64 * per_pixel as u64;
        Ok((Count::new(self.num_params(), macs), (oh, ow)))
    }
}

/// A convolution layer: `weight` [C_out, C_in, k, k] (Xavier-normal), `bias` [C_out] (zeros),
/// and with spectral norm the buffers `weight_u`, `weight_v`.
pub struct Conv2d {
    spec: ConvSpec,
    weight: Var,
    bias: Option<Var>,
    sn: Option<SpectralNorm>,
}

impl Conv2d {
    /// Registers the parameters of `spec` in `scope`; conv weights use Xavier-normal `gain`.
    pub fn new(scope: &Scope<'_>, spec: ConvSpec, gain: f32) -> Result<Self> {
        let k = spec.kernel;
        let weight = scope.param(
            "weight",
            &[spec.c_out, spec.c_in, k, k],
            Init::XavierNormal { gain },
        )?;
        let bias = if spec.bias {
            Some(scope.param("bias", &[spec.c_out], Init::Zeros)?)
        } else {
            None
        };
        let sn = if spec.spectral_norm {
            Some(SpectralNorm::new(scope, "weight", &weight)?)
        } else {
            None
        };
        Ok(Conv2d {
            spec,
            weight,
            bias,
            sn,
        })
    }

    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    /// The convolution of NCHW `x`; with spectral norm, `training` runs one power iteration.
    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let (b, hw) = match *x.dims() {
            [b, c, h, w] if c == self.spec.c_in => (b, (h, w)),
            _ => {
                return Err(Error::shape(
                    "conv2d",
                    format!(
                        "input {:?} for a layer expecting [B, {}, H, W]",
                        x.dims(),
                        self.spec.c_in
                    ),
                ))
            }
        };
        let (count, _) = self.spec.count(hw)?;
        let weight = match &self.sn {
            Some(sn) => sn.forward(training)?,
            None => self.weight.clone(),
        };
        let y = Var::conv2d(x, &weight, self.bias.as_ref(), self.spec.params())?;
        record_macs(count.macs * b as u64);
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::count::measure_macs;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    #[test]
    fn counts_follow_the_shapes() {
        let s = ConvSpec::new(5, 7, 3).stride(2).pad(1).bias(false);
        let (c, hw) = s.count((9, 6)).unwrap();
        assert_eq!(hw, (5, 3));
        assert_eq!(c.params, 7 * 5 * 9);
        assert_eq!(c.macs, 15 * 7 * 5 * 9);
        let s = ConvSpec::new(4, 1, 4).pad(1);
        assert_eq!(s.count((2, 3)).unwrap().1, (1, 2));
        assert_eq!(s.num_params(), 4 * 16 + 1);
        // Reflect padding must be smaller than the input; windows must fit.
        assert!(ConvSpec::new(1, 1, 3).reflect(1).out_hw((1, 4)).is_err());
        assert!(ConvSpec::new(1, 1, 5).out_hw((3, 3)).is_err());
    }

    #[test]
    fn forward_matches_plain_conv_and_records_macs() {
        let store = ParamStore::new(4);
        let spec = ConvSpec::new(3, 6, 3).reflect(1).sn(true);
        let conv = Conv2d::new(&store.scope("c"), spec, 0.02).unwrap();
        assert_eq!(
            store.names(),
            ["c.weight", "c.bias", "c.weight_u", "c.weight_v"]
        );
        let x = Var::constant(Tensor::randn([2, 3, 5, 4], 0.0, 1.0, 1));
        let (y, macs) = measure_macs(|| conv.forward(&x, false));
        let y = y.unwrap();
        assert_eq!(y.dims(), &[2, 6, 5, 4]);
        assert_eq!(macs, 2 * 20 * 6 * 27);
        // Eval spectral norm: W / σ with the stored u, v.
        let sigma = conv.sn.as_ref().unwrap().sigma().unwrap();
        let w = conv.weight.mul_scalar(1.0 / sigma).unwrap();
        let want = Var::conv2d(&x, &w, conv.bias.as_ref(), spec.params()).unwrap();
        let (a, b) = (y.value().to_vec().unwrap(), want.value().to_vec().unwrap());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
        }
        let bad = Var::constant(Tensor::zeros([2, 4, 5, 4]));
        assert!(matches!(
            conv.forward(&bad, false),
            Err(Error::Shape { .. })
        ));
        let bad = Var::constant(Tensor::zeros([3, 5, 4]));
        assert!(matches!(
            conv.forward(&bad, false),
            Err(Error::Shape { .. })
        ));
    }
}

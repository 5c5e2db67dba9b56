//! The multiscale PatchGAN discriminator (MODEL.md §4). Per scale: 4×4 convs with padding 1:
//! C_in→ndf s2 (bias, LReLU), ndf→2ndf s2 (SN + IN, LReLU), 2ndf→4ndf s2 (SN + IN, LReLU),
//! self-attention(4ndf), 4ndf→8ndf s1 (SN + IN, LReLU), 8ndf→1 s1 (bias). Scale i+1 sees the input
//! average-pooled k3 s2 p1 (padding not counted). The SN convs have no bias (InstanceNorm follows).
//!
//! The temporal discriminator D1 is the same network over the labels and images of l frames
//! (`DiscriminatorSpec::temporal`).

use crate::autograd::Var;
use crate::backend::Pool2dParams;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::count::Count;
use crate::model::layers::{AttentionSpec, Conv2d, ConvSpec, SelfAttention, IN_EPS};
use crate::nn::Scope;

const LRELU: f32 = 0.2;

/// The downsampling between scales.
const SCALE_POOL: Pool2dParams = Pool2dParams {
    kernel: (3, 3),
    stride: (2, 2),
    padding: (1, 1),
    count_include_pad: false,
};

/// The shape of the multiscale discriminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscriminatorSpec {
    pub c_in: usize,
    pub ndf: usize,
    pub num_d: usize,
    pub image_size: usize,
}

/// One conv layer of a scale: its spec and whether InstanceNorm and LReLU follow.
#[derive(Clone, Copy, Debug)]
struct DLayer {
    conv: ConvSpec,
    norm: bool,
    act: bool,
}

impl DiscriminatorSpec {
    /// The image discriminator: input = label + image.
    pub fn from_config(cfg: &ModelConfig) -> Self {
        Self::with_inputs(cfg, cfg.discriminator_in_channels())
    }

    /// The temporal discriminator D1: labels and images of `temporal_window` frames.
    pub fn temporal(cfg: &ModelConfig) -> Self {
        Self::with_inputs(cfg, cfg.temporal_in_channels())
    }

    pub fn with_inputs(cfg: &ModelConfig, c_in: usize) -> Self {
        DiscriminatorSpec {
            c_in,
            ndf: cfg.ndf,
            num_d: cfg.num_d,
            image_size: cfg.image_size,
        }
    }

    /// layer_0 … layer_2, then (after the attention) layer_3 and the final layer_4.
    fn layers(&self) -> [DLayer; 5] {
        let n = self.ndf;
        let c = |cin, cout, s| ConvSpec::new(cin, cout, 4).stride(s).pad(1);
        let sn = |cin, cout, s| DLayer {
            conv: c(cin, cout, s).bias(false).sn(true),
            norm: true,
            act: true,
        };
        [
            DLayer {
                conv: c(self.c_in, n, 2),
                norm: false,
                act: true,
            },
            sn(n, 2 * n, 2),
            sn(2 * n, 4 * n, 2),
            sn(4 * n, 8 * n, 1),
            DLayer {
                conv: c(8 * n, 1, 1),
                norm: false,
                act: false,
            },
        ]
    }

    fn attention(&self) -> AttentionSpec {
        AttentionSpec::new(4 * self.ndf)
    }

    /// Counts of one scale at input size `hw`.
    fn count_scale(&self, mut hw: (usize, usize)) -> Result<Count> {
        let mut total = Count::default();
        for (i, l) in self.layers().iter().enumerate() {
            let (c, out) = l.conv.count(hw)?;
            total = total + c;
            hw = out;
            if i == 2 {
                total = total + self.attention().count(hw)?;
            }
        }
        Ok(total)
    }

    /// Parameters and MACs of all scales for one input sample.
    pub fn count(&self) -> Result<Count> {
        let mut hw = (self.image_size, self.image_size);
        let mut total = Count::default();
        for i in 0..self.num_d {
            if i > 0 {
                hw = SCALE_POOL.out_size(hw.0, hw.1).ok_or_else(|| {
                    Error::shape("discriminator", format!("cannot pool a {hw:?} input"))
                })?;
            }
            total = total + self.count_scale(hw)?;
        }
        Ok(total)
    }
}

/// The output of one scale.
pub struct ScaleOutput {
    /// The 4 intermediate outputs for feature matching: layer_0, layer_1, the attention
    /// (after layer_2), layer_3.
    pub features: Vec<Var>,
    /// Patch logits [B, 1, h, w].
    pub logits: Var,
}

struct Scale {
    layers: Vec<(Conv2d, DLayer)>,
    attention: SelfAttention,
}

impl Scale {
    fn forward(&self, x: &Var, training: bool) -> Result<ScaleOutput> {
        let mut features = Vec::with_capacity(4);
        let mut y = x.clone();
        for (i, (conv, l)) in self.layers.iter().enumerate() {
            y = conv.forward(&y, training)?;
            if l.norm {
                y = y.instance_norm(None, None, IN_EPS)?;
            }
            if l.act {
                y = y.leaky_relu(LRELU)?;
            }
            if i == 2 {
                y = self.attention.forward(&y, training)?;
            }
            if l.act {
                features.push(y.clone());
            }
        }
        Ok(ScaleOutput {
            features,
            logits: y,
        })
    }
}

/// The multiscale discriminator: scopes `scale_<i>` with `layer_0` … `layer_4` and `attn`.
pub struct MultiscaleDiscriminator {
    spec: DiscriminatorSpec,
    scales: Vec<Scale>,
}

impl MultiscaleDiscriminator {
    pub fn new(scope: &Scope<'_>, spec: DiscriminatorSpec, gain: f32) -> Result<Self> {
        spec.count()?;
        let scales = (0..spec.num_d)
            .map(|i| {
                let s = scope.scope(&format!("scale_{i}"));
                let layers = (spec.layers().iter().enumerate())
                    .map(|(j, l)| {
                        Ok((
                            Conv2d::new(&s.scope(&format!("layer_{j}")), l.conv, gain)?,
                            *l,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let attention = SelfAttention::new(&s.scope("attn"), spec.attention(), gain)?;
                Ok(Scale { layers, attention })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiscaleDiscriminator { spec, scales })
    }

    pub fn spec(&self) -> &DiscriminatorSpec {
        &self.spec
    }

    /// One output per scale for `x` [B, c_in, S, S] (label and image concatenated by the caller;
    /// fake and real stacked on the batch axis go through in one pass).
    pub fn forward(&self, x: &Var, training: bool) -> Result<Vec<ScaleOutput>> {
        let s = self.spec.image_size;
        if !matches!(*x.dims(), [_, c, h, w] if c == self.spec.c_in && h == s && w == s) {
            return Err(Error::shape(
                "discriminator",
                format!(
                    "input {:?}, expected [B, {}, {s}, {s}]",
                    x.dims(),
                    self.spec.c_in
                ),
            ));
        }
        let mut x = x.clone();
        let mut out = Vec::with_capacity(self.scales.len());
        for (i, scale) in self.scales.iter().enumerate() {
            if i > 0 {
                x = x.avg_pool2d(SCALE_POOL)?;
            }
            out.push(scale.forward(&x, training)?);
        }
        Ok(out)
    }
}

//! The SPADE translation generator (MODEL.md §3): the conditioning (warped exemplar + pose label,
//! plus previous frames for the temporal G1) nearest-resized to image_size/32 → 3×3 conv to 16·ngf,
//! SPADE residual blocks with nearest ×2 upsampling between them, self-attention at image_size/2,
//! LReLU → 3×3 conv to RGB → tanh. Every block is conditioned on the full conditioning map.

use crate::autograd::Var;
use crate::backend::ResizeMode;
use crate::error::{Error, Result};
use crate::model::config::{ModelConfig, SpadeNormKind};
use crate::model::count::Count;
use crate::model::layers::{
    AttentionSpec, Conv2d, ConvSpec, SelfAttention, SpadeBlock, SpadeBlockSpec,
};
use crate::nn::Scope;

/// Slope of the LeakyReLU before the last conv.
const LRELU: f32 = 0.2;
/// Number of ×2 upsamplings from the start size to the image size.
const NUM_UP: usize = 5;

/// The shape of the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorSpec {
    pub cond: usize,
    pub ngf: usize,
    pub hidden: usize,
    pub norm: SpadeNormKind,
    pub image_size: usize,
}

/// One step of the generator body.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Up,
    Block(&'static str, SpadeBlockSpec),
    Attention(AttentionSpec),
}

/// Counts of the generator at batch 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneratorCounts {
    pub total: Count,
    /// The self-attention layer (included in `total`).
    pub attention: Count,
}

impl GeneratorSpec {
    /// The image generator G: conditioning = warped exemplar (3) + label.
    pub fn from_config(cfg: &ModelConfig) -> Self {
        Self::with_cond(cfg, cfg.generator_cond_channels())
    }

    /// A generator with `cond` conditioning channels (e.g. the temporal G1, whose conditioning
    /// also holds the previous l−1 generated frames).
    pub fn with_cond(cfg: &ModelConfig, cond: usize) -> Self {
        GeneratorSpec {
            cond,
            ngf: cfg.ngf,
            hidden: cfg.spade_hidden,
            norm: cfg.spade_norm,
            image_size: cfg.image_size,
        }
    }

    fn start(&self) -> usize {
        self.image_size >> NUM_UP
    }

    fn fc(&self) -> ConvSpec {
        ConvSpec::new(self.cond, 16 * self.ngf, 3).pad(1)
    }

    fn conv_img(&self) -> ConvSpec {
        ConvSpec::new(self.ngf, 3, 3).pad(1)
    }

    fn stages(&self) -> Vec<Stage> {
        let n = self.ngf;
        let b = |name, fin, fout| {
            Stage::Block(
                name,
                SpadeBlockSpec::new(fin, fout, self.cond, self.hidden, self.norm),
            )
        };
        vec![
            b("head_0", 16 * n, 16 * n),
            Stage::Up,
            b("G_middle_0", 16 * n, 16 * n),
            b("G_middle_1", 16 * n, 16 * n),
            Stage::Up,
            b("up_0", 16 * n, 8 * n),
            Stage::Up,
            b("up_1", 8 * n, 4 * n),
            Stage::Up,
            Stage::Attention(AttentionSpec::new(4 * n)),
            b("up_2", 4 * n, 2 * n),
            Stage::Up,
            b("up_3", 2 * n, n),
        ]
    }

    pub fn count(&self) -> Result<GeneratorCounts> {
        let s = self.start();
        if s << NUM_UP != self.image_size || s < 2 {
            return Err(Error::shape(
                "generator",
                format!(
                    "image_size {} is not 2^5 times a start size >= 2",
                    self.image_size
                ),
            ));
        }
        let mut hw = (s, s);
        let (mut total, _) = self.fc().count(hw)?;
        let mut attention = Count::default();
        for stage in self.stages() {
            match stage {
                Stage::Up => hw = (2 * hw.0, 2 * hw.1),
                Stage::Block(_, b) => total = total + b.count(hw)?,
                Stage::Attention(a) => {
                    attention = a.count(hw)?;
                    total = total + attention;
                }
            }
        }
        total = total + self.conv_img().count(hw)?.0;
        Ok(GeneratorCounts { total, attention })
    }
}

enum StageModule {
    Up,
    Block(Box<SpadeBlock>),
    Attention(Box<SelfAttention>),
}

/// The generator: `fc`, the blocks (`head_0`, `G_middle_0`, `G_middle_1`, `up_0` … `up_3`),
/// `attn`, `conv_img`.
pub struct Generator {
    spec: GeneratorSpec,
    fc: Conv2d,
    stages: Vec<StageModule>,
    conv_img: Conv2d,
}

impl Generator {
    pub fn new(scope: &Scope<'_>, spec: GeneratorSpec, gain: f32) -> Result<Self> {
        spec.count()?;
        let stages = spec
            .stages()
            .into_iter()
            .map(|st| {
                Ok(match st {
                    Stage::Up => StageModule::Up,
                    Stage::Block(name, b) => {
                        StageModule::Block(Box::new(SpadeBlock::new(&scope.scope(name), b, gain)?))
                    }
                    Stage::Attention(a) => StageModule::Attention(Box::new(SelfAttention::new(
                        &scope.scope("attn"),
                        a,
                        gain,
                    )?)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Generator {
            spec,
            fc: Conv2d::new(&scope.scope("fc"), spec.fc(), gain)?,
            stages,
            conv_img: Conv2d::new(&scope.scope("conv_img"), spec.conv_img(), gain)?,
        })
    }

    pub fn spec(&self) -> &GeneratorSpec {
        &self.spec
    }

    /// The generated image [B, 3, S, S] in [-1, 1] from the conditioning [B, cond, S, S].
    pub fn forward(&self, cond: &Var, training: bool) -> Result<Var> {
        let s = self.spec.image_size;
        if !matches!(*cond.dims(), [_, c, h, w] if c == self.spec.cond && h == s && w == s) {
            return Err(Error::shape(
                "generator",
                format!(
                    "conditioning {:?}, expected [B, {}, {s}, {s}]",
                    cond.dims(),
                    self.spec.cond
                ),
            ));
        }
        let start = self.spec.start();
        let x = cond.resize2d((start, start), ResizeMode::Nearest)?;
        let mut x = self.fc.forward(&x, training)?;
        for st in &self.stages {
            x = match st {
                StageModule::Up => {
                    let (h, w) = (x.dims()[2], x.dims()[3]);
                    x.resize2d((2 * h, 2 * w), ResizeMode::Nearest)?
                }
                StageModule::Block(b) => b.forward(&x, cond, training)?,
                StageModule::Attention(a) => a.forward(&x, training)?,
            };
        }
        self.conv_img
            .forward(&x.leaky_relu(LRELU)?, training)?
            .tanh()
    }
}

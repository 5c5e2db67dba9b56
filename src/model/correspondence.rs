//! The cross-domain correspondence network (MODEL.md §2, CoCosNet `NoVGGCorrespondence`).
//!
//! Two domain adaptors (pose label → features, RGB exemplar → features; no shared weights), each
//! followed by a per-position L2 normalisation; one residual stack shared by both branches; θ/φ
//! 1×1 convs; 3×3 (or 1×1) descriptors; then one `corr_warp` call (centre + L2-normalise the
//! descriptors, cosine correlation / τ, softmax over the exemplar, weighted sum of the exemplar's
//! 4×4 patches or of its 4×4-pooled pixels), folded back to a full-size warped exemplar.

use crate::autograd::Var;
use crate::backend::{CorrWarpParams, Pool2dParams, ResizeMode, UnfoldParams};
use crate::error::{Error, Result};
use crate::model::config::{ModelConfig, SpadeNormKind, Upsample, WarpMode};
use crate::model::count::{record_macs, Count};
use crate::model::layers::{
    Conv2d, ConvSpec, ResStack, ResStackSpec, SpadeBlock, SpadeBlockSpec, IN_EPS,
};
use crate::nn::Scope;
use crate::tensor::Tensor;

/// Slope of the adaptors' LeakyReLUs.
const LRELU: f32 = 0.2;
/// eps of the L2 normalisations: `x / sqrt(Σx² + eps²)` (finite gradient at a zero vector) and
/// the descriptor eps of `corr_warp`. Negligible next to the O(1) norms of real features.
pub const FEATURE_EPS: f32 = 1e-8;
/// Side of the exemplar patches warped per grid position (image_size / grid).
const PATCH: usize = 4;

/// The shape of one domain adaptor (MODEL.md §2 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptorSpec {
    pub c_in: usize,
    pub nf: usize,
    /// Kernel of the stride-2 layers 2 and 4 (3 or 4).
    pub kernel: usize,
    pub hidden: usize,
    pub norm: SpadeNormKind,
    /// Input side.
    pub size: usize,
}

impl AdaptorSpec {
    pub fn from_config(cfg: &ModelConfig, c_in: usize) -> Self {
        AdaptorSpec {
            c_in,
            nf: cfg.corr_nf,
            kernel: cfg.adaptor_kernel,
            hidden: cfg.spade_hidden,
            norm: cfg.spade_norm,
            size: cfg.image_size,
        }
    }

    /// Layers 1-5: SN conv (no bias, zero pad 1) + InstanceNorm; LReLU after 1-4.
    fn layers(&self) -> [ConvSpec; 5] {
        let nf = self.nf;
        let c = |cin, cout, k, s| {
            ConvSpec::new(cin, cout, k)
                .stride(s)
                .pad(1)
                .bias(false)
                .sn(true)
        };
        [
            c(self.c_in, nf, 3, 1),
            c(nf, 2 * nf, self.kernel, 2),
            c(2 * nf, 4 * nf, 3, 1),
            c(4 * nf, 8 * nf, self.kernel, 2),
            c(8 * nf, 8 * nf, 3, 1),
        ]
    }

    /// The three SPADE blocks, conditioned on the adaptor's input.
    fn blocks(&self) -> [(&'static str, SpadeBlockSpec); 3] {
        let nf = self.nf;
        let b = |fin, fout| SpadeBlockSpec::new(fin, fout, self.c_in, self.hidden, self.norm);
        [
            ("head_0", b(8 * nf, 8 * nf)),
            ("G_middle_0", b(8 * nf, 8 * nf)),
            ("G_middle_1", b(8 * nf, 4 * nf)),
        ]
    }

    /// Parameters and MACs of one sample, and the output size.
    pub fn count(&self) -> Result<(Count, (usize, usize))> {
        let mut hw = (self.size, self.size);
        let mut total = Count::default();
        for l in self.layers() {
            let (c, out) = l.count(hw)?;
            total = total + c;
            hw = out;
        }
        for (_, b) in self.blocks() {
            total = total + b.count(hw)?;
        }
        Ok((total, hw))
    }
}

/// One domain adaptor: `layer1` … `layer5`, then `head_0`, `G_middle_0`, `G_middle_1`.
pub struct Adaptor {
    spec: AdaptorSpec,
    layers: Vec<Conv2d>,
    blocks: Vec<SpadeBlock>,
}

impl Adaptor {
    pub fn new(scope: &Scope<'_>, spec: AdaptorSpec, gain: f32) -> Result<Self> {
        let layers = (spec.layers().iter().enumerate())
            .map(|(i, l)| Conv2d::new(&scope.scope(&format!("layer{}", i + 1)), *l, gain))
            .collect::<Result<Vec<_>>>()?;
        let blocks = (spec.blocks().iter())
            .map(|(name, b)| SpadeBlock::new(&scope.scope(name), *b, gain))
            .collect::<Result<Vec<_>>>()?;
        Ok(Adaptor {
            spec,
            layers,
            blocks,
        })
    }

    /// Raw (un-normalised) features [B, 4nf, S/4, S/4] of `x` [B, c_in, S, S].
    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let s = self.spec.size;
        if !matches!(*x.dims(), [_, c, h, w] if c == self.spec.c_in && h == s && w == s) {
            return Err(Error::shape(
                "adaptor",
                format!(
                    "input {:?}, expected [B, {}, {s}, {s}]",
                    x.dims(),
                    self.spec.c_in
                ),
            ));
        }
        let mut y = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            y = layer
                .forward(&y, training)?
                .instance_norm(None, None, IN_EPS)?;
            if i + 1 < self.layers.len() {
                y = y.leaky_relu(LRELU)?;
            }
        }
        for b in &self.blocks {
            y = b.forward(&y, x, training)?;
        }
        Ok(y)
    }
}

/// `x / sqrt(Σ_c x² + eps²)` per position of NCHW `x` (no centring).
pub fn l2_normalize_channels(x: &Var) -> Result<Var> {
    let norm = x
        .mul(x)?
        .sum(&[1], true)?
        .add_scalar(FEATURE_EPS * FEATURE_EPS)?
        .sqrt()?;
    x.div(&norm)
}

/// The shape and options of the whole correspondence network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorrespondenceSpec {
    pub pose: AdaptorSpec,
    pub image: AdaptorSpec,
    pub stack: ResStackSpec,
    /// θ and φ: 1×1 conv with bias, no spectral norm.
    pub proj: ConvSpec,
    pub match_kernel: usize,
    pub temperature: f32,
    pub warp_mode: WarpMode,
    pub upsample: Upsample,
    pub warp_cycle: bool,
    pub image_size: usize,
}

/// Counts of the correspondence at batch 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorrCounts {
    pub pose_adaptor: Count,
    pub image_adaptor: Count,
    /// The shared stack (run once per branch) and θ/φ.
    pub shared: Count,
    pub correlation: Count,
    pub warp: Count,
    /// The warp cycle (a second correlation and warp), when enabled.
    pub cycle: Option<Count>,
}

impl CorrCounts {
    pub fn total(&self) -> Count {
        self.pose_adaptor
            + self.image_adaptor
            + self.shared
            + self.correlation
            + self.warp
            + self.cycle.unwrap_or_default()
    }
}

impl CorrespondenceSpec {
    pub fn from_config(cfg: &ModelConfig) -> Self {
        let f = cfg.feature_channels();
        CorrespondenceSpec {
            pose: AdaptorSpec::from_config(cfg, cfg.label_channels()),
            image: AdaptorSpec::from_config(cfg, 3),
            stack: ResStackSpec {
                channels: f,
                blocks: 4,
            },
            proj: ConvSpec::new(f, f, 1),
            match_kernel: cfg.match_kernel,
            temperature: cfg.temperature,
            warp_mode: cfg.warp_mode,
            upsample: cfg.pooled_upsample,
            warp_cycle: cfg.warp_cycle,
            image_size: cfg.image_size,
        }
    }

    /// Channels of a correlation descriptor.
    fn descriptor_channels(&self) -> usize {
        self.proj.c_out * self.match_kernel * self.match_kernel
    }

    /// Channels warped per grid position: 4×4×3 patches or 3 pooled pixels.
    fn value_channels(&self) -> usize {
        match self.warp_mode {
            WarpMode::Patch => 3 * PATCH * PATCH,
            WarpMode::Pooled => 3,
        }
    }

    /// Grid side, checking that the adaptors end on image_size / 4.
    fn grid(&self) -> Result<usize> {
        let (_, hw) = self.pose.count()?;
        let s = self.image_size;
        if hw != (s / PATCH, s / PATCH) || !s.is_multiple_of(PATCH) {
            return Err(Error::shape(
                "correspondence",
                format!("adaptor output {hw:?} is not image_size/4 for image_size {s}"),
            ));
        }
        Ok(hw.0)
    }

    /// MACs of one `corr_warp` over the grid: correlation N·M·C and warp N·M·V.
    fn corr_warp_macs(&self, grid: usize) -> (u64, u64) {
        let nm = (grid * grid * grid * grid) as u64;
        (
            nm * self.descriptor_channels() as u64,
            nm * self.value_channels() as u64,
        )
    }

    pub fn count(&self) -> Result<CorrCounts> {
        let grid = self.grid()?;
        let hw = (grid, grid);
        let (pose_adaptor, _) = self.pose.count()?;
        let (image_adaptor, _) = self.image.count()?;
        let stack = self.stack.count(hw)?;
        let (proj, _) = self.proj.count(hw)?;
        // The stack's parameters are shared, its MACs are paid once per branch.
        let shared = Count::new(stack.params + 2 * proj.params, 2 * (stack.macs + proj.macs));
        let (corr, warp) = self.corr_warp_macs(grid);
        Ok(CorrCounts {
            pose_adaptor,
            image_adaptor,
            shared,
            correlation: Count::new(0, corr),
            warp: Count::new(0, warp),
            cycle: self.warp_cycle.then(|| Count::new(0, corr + warp)),
        })
    }
}

/// What the correspondence produces.
pub struct CorrOutput {
    /// The warped exemplar [B, 3, S, S].
    pub warped: Var,
    /// L2-normalised pose-adaptor features [B, 4nf, S/4, S/4] (domain-alignment loss).
    pub pose_features: Var,
    /// L2-normalised image-adaptor features of the exemplar.
    pub image_features: Var,
    /// The exemplar warped there and back (softmax of Mᵀ), when `warp_cycle` is on.
    pub cycle: Option<Var>,
    /// The softmax rows A [B, N, M], only from `forward_with_attention`.
    pub attention: Option<Tensor>,
}

/// The correspondence network: `pose_adaptor`, `image_adaptor`, `shared`, `theta`, `phi`.
pub struct Correspondence {
    spec: CorrespondenceSpec,
    grid: usize,
    pose_adaptor: Adaptor,
    image_adaptor: Adaptor,
    stack: ResStack,
    theta: Conv2d,
    phi: Conv2d,
}

impl Correspondence {
    pub fn new(scope: &Scope<'_>, spec: CorrespondenceSpec, gain: f32) -> Result<Self> {
        Ok(Correspondence {
            spec,
            grid: spec.grid()?,
            pose_adaptor: Adaptor::new(&scope.scope("pose_adaptor"), spec.pose, gain)?,
            image_adaptor: Adaptor::new(&scope.scope("image_adaptor"), spec.image, gain)?,
            stack: ResStack::new(&scope.scope("shared"), spec.stack, gain)?,
            theta: Conv2d::new(&scope.scope("theta"), spec.proj, gain)?,
            phi: Conv2d::new(&scope.scope("phi"), spec.proj, gain)?,
        })
    }

    pub fn spec(&self) -> &CorrespondenceSpec {
        &self.spec
    }

    /// Normalised pose features of `label` [B, C_label, S, S].
    pub fn pose_features(&self, label: &Var, training: bool) -> Result<Var> {
        l2_normalize_channels(&self.pose_adaptor.forward(label, training)?)
    }

    /// Normalised image features of `image` [B, 3, S, S] (also used on the ground-truth frame
    /// for the domain-alignment loss).
    pub fn image_features(&self, image: &Var, training: bool) -> Result<Var> {
        l2_normalize_channels(&self.image_adaptor.forward(image, training)?)
    }

    pub fn forward(&self, label: &Var, exemplar: &Var, training: bool) -> Result<CorrOutput> {
        self.run(label, exemplar, training, false)
    }

    /// `forward`, also returning the correlation softmax (a plain tensor, for tests and debug).
    pub fn forward_with_attention(
        &self,
        label: &Var,
        exemplar: &Var,
        training: bool,
    ) -> Result<CorrOutput> {
        self.run(label, exemplar, training, true)
    }

    fn run(
        &self,
        label: &Var,
        exemplar: &Var,
        training: bool,
        want_attn: bool,
    ) -> Result<CorrOutput> {
        if label.dims().first() != exemplar.dims().first() {
            return Err(Error::shape(
                "correspondence",
                format!(
                    "label {:?} and exemplar {:?} differ in batch",
                    label.dims(),
                    exemplar.dims()
                ),
            ));
        }
        let pose_features = self.pose_features(label, training)?;
        let image_features = self.image_features(exemplar, training)?;
        let (q, k) = self.descriptors(&pose_features, &image_features, training)?;
        let v = self.exemplar_values(exemplar)?;
        let p = CorrWarpParams {
            scale: 1.0 / self.spec.temperature,
            normalize: true,
            eps: FEATURE_EPS,
        };
        let b = label.dims()[0] as u64;
        let (corr_macs, warp_macs) = self.spec.corr_warp_macs(self.grid);
        let (warped, attention) = if want_attn {
            let (w, a) = Var::corr_warp_with_attn(&q, &k, &v, p)?;
            (w, Some(a))
        } else {
            (Var::corr_warp(&q, &k, &v, p)?, None)
        };
        record_macs(b * (corr_macs + warp_macs));
        let cycle = if self.spec.warp_cycle {
            // softmax over the pose axis of Mᵀ, applied to the warped values.
            let back = Var::corr_warp(&k, &q, &warped, p)?;
            record_macs(b * (corr_macs + warp_macs));
            Some(self.values_to_image(&back)?)
        } else {
            None
        };
        Ok(CorrOutput {
            warped: self.values_to_image(&warped)?,
            pose_features,
            image_features,
            cycle,
            attention,
        })
    }

    /// The correlation descriptors (q, k) [B, F·k², g²] of normalised pose and image features:
    /// shared stack → θ (pose) or φ (image) → 3×3 unfold (match_kernel 3). Not yet centred or
    /// normalised: `corr_warp` does that.
    pub fn descriptors(
        &self,
        pose_features: &Var,
        image_features: &Var,
        training: bool,
    ) -> Result<(Var, Var)> {
        let theta = self
            .theta
            .forward(&self.stack.forward(pose_features, training)?, training)?;
        let phi = self
            .phi
            .forward(&self.stack.forward(image_features, training)?, training)?;
        Ok((self.descriptor(&theta)?, self.descriptor(&phi)?))
    }

    /// [B, F, g, g] → [B, F·k², g²] (3×3 neighbourhoods, zero pad 1) or [B, F, g²].
    fn descriptor(&self, f: &Var) -> Result<Var> {
        let (b, c, n) = (f.dims()[0], f.dims()[1], self.grid * self.grid);
        match self.spec.match_kernel {
            1 => f.reshape(&[b, c, n]),
            k => f.unfold(UnfoldParams {
                kernel: (k, k),
                stride: (1, 1),
                padding: (k / 2, k / 2),
                dilation: (1, 1),
            }),
        }
    }

    fn patch_params() -> UnfoldParams {
        UnfoldParams {
            kernel: (PATCH, PATCH),
            stride: (PATCH, PATCH),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    /// The exemplar as warp values [B, M, V]: its 4×4 patches or its 4×4-pooled pixels.
    fn exemplar_values(&self, exemplar: &Var) -> Result<Var> {
        let b = exemplar.dims()[0];
        let cols = match self.spec.warp_mode {
            WarpMode::Patch => exemplar.unfold(Self::patch_params())?,
            WarpMode::Pooled => exemplar
                .avg_pool2d(Pool2dParams {
                    kernel: (PATCH, PATCH),
                    stride: (PATCH, PATCH),
                    padding: (0, 0),
                    count_include_pad: false,
                })?
                .reshape(&[b, 3, self.grid * self.grid])?,
        };
        cols.permute(&[0, 2, 1])
    }

    /// Warped values [B, N, V] back to a [B, 3, S, S] image.
    fn values_to_image(&self, vals: &Var) -> Result<Var> {
        let (b, s, g) = (vals.dims()[0], self.spec.image_size, self.grid);
        let cols = vals.permute(&[0, 2, 1])?;
        match self.spec.warp_mode {
            WarpMode::Patch => cols.fold((s, s), Self::patch_params()),
            WarpMode::Pooled => {
                let mode = match self.spec.upsample {
                    Upsample::Nearest => ResizeMode::Nearest,
                    Upsample::Bilinear => ResizeMode::Bilinear {
                        align_corners: false,
                    },
                };
                cols.reshape(&[b, 3, g, g])?.resize2d((s, s), mode)
            }
        }
    }
}

//! `ModelConfig`: every option of MODEL.md that a user may choose, with the presets `paper`,
//! `small` and `tiny` (MODEL.md §7). Serialised as JSON (serde) into every checkpoint's metadata.
//! Parsing is strict (unknown or missing fields are errors) so a checkpoint never silently runs
//! with a default the writer did not use.

use crate::error::{Error, Result};
use crate::pose::{LabelKind, NormalizationKind};
use serde::{Deserialize, Serialize};

/// The preset names `ModelConfig::preset` knows.
pub const PRESETS: [&str; 3] = ["paper", "small", "tiny"];

/// How the exemplar is warped by the correspondence (MODEL.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarpMode {
    /// Non-overlapping 4×4 patches of the full-size exemplar (48-d), folded back (DeepFashion).
    Patch,
    /// The exemplar 4×4 average-pooled to the grid, warped, then upsampled ×4.
    Pooled,
}

/// The ×4 upsampling of the pooled warp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    Nearest,
    /// Bilinear, align_corners = false.
    Bilinear,
}

/// The parameter-free normalisation inside SPADE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpadeNormKind {
    /// Positional normalisation (per pixel over channels), the default.
    Pono,
    Instance,
}

/// The adversarial loss form (MODEL.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GanLoss {
    /// CoCosNet's hinge loss (default).
    Hinge,
    /// The paper's log-likelihood form, non-saturating BCE.
    NonSaturating,
    /// Least squares.
    Lsgan,
}

/// What the contextual loss compares the generated frame with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextTarget {
    Exemplar,
    GroundTruth,
}

/// Loss weights and loss options (MODEL.md §5). Feature matching is divided by `num_d` per term
/// by the loss code, as the table says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub gan_loss: GanLoss,
    pub gan: f32,
    pub feature_matching: f32,
    pub vgg: f32,
    /// Weights of relu1_2, relu2_2, relu3_2, relu4_2, relu5_2 in the VGG L1 term.
    pub vgg_layer_weights: [f32; 5],
    pub perceptual_mse: f32,
    pub context: f32,
    /// Weights of CX(relu5_2), CX(relu4_2), CX(avgpool2(relu3_2)).
    pub context_layer_weights: [f32; 3],
    pub context_bandwidth: f32,
    pub context_target: ContextTarget,
    pub domain_alignment: f32,
    pub reconstruction: f32,
    pub warp_self: f32,
    /// Weight of the warp-cycle L1 (used only when `warp_cycle` is on).
    pub warp_cycle: f32,
    pub temporal: f32,
    pub face_gan: f32,
    pub face_vgg: f32,
}

/// Adam settings of the two optimisers and the learning-rate schedule (MODEL.md §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub g_lr: f32,
    pub g_betas: [f32; 2],
    pub g_eps: f32,
    pub d_lr: f32,
    pub d_betas: [f32; 2],
    pub d_eps: f32,
    /// Fraction of the iterations at constant lr; linear decay to 0 after it.
    pub decay_start: f32,
}

/// The whole model configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The preset this config started from (informational).
    pub name: String,
    /// Pose label layout: `paper` (21 channels) or `cocosnet` (20 channels).
    #[serde(with = "label_serde")]
    pub label: LabelKind,
    /// Square frame size the networks see (256 in the paper). The correspondence grid is a
    /// quarter of it, the generator starts at 1/32 of it.
    pub image_size: usize,
    /// Base width of the domain adaptors (64): layers nf, 2nf, 4nf, 8nf, 8nf; features 4nf.
    pub corr_nf: usize,
    /// Base width of the translation generator (64): 16ngf at the head … ngf at full size.
    pub ngf: usize,
    /// Base width of the PatchGAN discriminators (64).
    pub ndf: usize,
    /// Hidden width of every SPADE MLP (128).
    pub spade_hidden: usize,
    /// Kernel of the stride-2 adaptor layers 2 and 4: 3 (default) or 4.
    pub adaptor_kernel: usize,
    /// Correlation descriptor: 3 unfolds 3×3 neighbourhoods, 1 keeps single positions.
    pub match_kernel: usize,
    pub warp_mode: WarpMode,
    pub pooled_upsample: Upsample,
    /// Softmax temperature τ of the correlation (0.01).
    pub temperature: f32,
    /// Also warp back with softmax of Mᵀ (the warp cycle); off by default.
    pub warp_cycle: bool,
    pub spade_norm: SpadeNormKind,
    /// Number of discriminator scales (2).
    pub num_d: usize,
    /// Frames per temporal-discriminator window l (2).
    pub temporal_window: usize,
    /// Face crop side at `image_size` (64 at 256²).
    pub face_crop: usize,
    /// Base width of the face residual generator G2 (first conv; doubles per downsampling).
    pub face_ngf: usize,
    /// Stride-2 downsamplings (and ×2 upsamplings) of G2.
    pub face_down: usize,
    /// Residual blocks at G2's bottleneck.
    pub face_blocks: usize,
    /// Base width of the face PatchGAN D2.
    pub face_ndf: usize,
    /// Stride-2 4×4 convs of D2 (3 = the 70×70 PatchGAN).
    pub face_d_layers: usize,
    /// Global pose normalisation: `head` (the paper's eq. 1), `ankle` (Everybody Dance Now), `none`.
    #[serde(with = "pose_norm_serde")]
    pub pose_normalization: NormalizationKind,
    /// Xavier-normal gain of every conv weight (0.02); biases start at 0.
    pub init_gain: f32,
    pub loss: LossConfig,
    pub optim: OptimConfig,
}

impl ModelConfig {
    /// The preset `name` (`paper`, `small` or `tiny`).
    pub fn preset(name: &str) -> Result<ModelConfig> {
        let paper = Self::paper();
        let cfg = match name {
            "paper" => paper,
            "small" => ModelConfig {
                name: "small".into(),
                corr_nf: 32,
                ngf: 32,
                ndf: 32,
                spade_hidden: 64,
                face_ngf: 32,
                face_ndf: 32,
                ..paper
            },
            "tiny" => ModelConfig {
                name: "tiny".into(),
                image_size: 64,
                corr_nf: 8,
                ngf: 8,
                ndf: 8,
                spade_hidden: 16,
                face_crop: 16,
                face_ngf: 8,
                face_blocks: 2,
                face_ndf: 8,
                // 16² crops: two stride-2 layers leave a 4² map for the two stride-1 4×4 convs.
                face_d_layers: 2,
                ..paper
            },
            _ => {
                return Err(Error::invalid(
                    "model_config",
                    format!(
                        "unknown preset `{name}`: expected one of {}",
                        PRESETS.join(", ")
                    ),
                ))
            }
        };
        Ok(cfg)
    }

    fn paper() -> ModelConfig {
        ModelConfig {
            name: "paper".into(),
            label: LabelKind::Paper,
            image_size: 256,
            corr_nf: 64,
            ngf: 64,
            ndf: 64,
            spade_hidden: 128,
            adaptor_kernel: 3,
            match_kernel: 3,
            warp_mode: WarpMode::Patch,
            pooled_upsample: Upsample::Nearest,
            temperature: 0.01,
            warp_cycle: false,
            spade_norm: SpadeNormKind::Pono,
            num_d: 2,
            temporal_window: 2,
            face_crop: 64,
            // Everybody Dance Now's face GAN (pix2pixHD global generator shape on the 64² crop,
            // our reading of its code): 64 wide, 2 downsamplings, 5 residual blocks; D2 a 70×70
            // PatchGAN, 64 wide, one scale.
            face_ngf: 64,
            face_down: 2,
            face_blocks: 5,
            face_ndf: 64,
            face_d_layers: 3,
            pose_normalization: NormalizationKind::Head,
            init_gain: 0.02,
            loss: LossConfig {
                gan_loss: GanLoss::Hinge,
                gan: 10.0,
                feature_matching: 10.0,
                vgg: 10.0,
                vgg_layer_weights: [1.0 / 32.0, 1.0 / 16.0, 1.0 / 8.0, 1.0 / 4.0, 1.0],
                perceptual_mse: 0.001,
                context: 10.0,
                context_layer_weights: [8.0, 4.0, 2.0],
                context_bandwidth: 0.1,
                context_target: ContextTarget::Exemplar,
                domain_alignment: 10.0,
                reconstruction: 1.0,
                warp_self: 100.0,
                warp_cycle: 1.0,
                temporal: 10.0,
                face_gan: 10.0,
                face_vgg: 5.0,
            },
            optim: OptimConfig {
                g_lr: 1e-4,
                g_betas: [0.0, 0.9],
                g_eps: 1e-3,
                d_lr: 4e-4,
                d_betas: [0.0, 0.9],
                d_eps: 1e-8,
                decay_start: 0.5,
            },
        }
    }

    /// Parses and validates a JSON config.
    pub fn from_json(json: &str) -> Result<ModelConfig> {
        let cfg: ModelConfig = serde_json::from_str(json)
            .map_err(|e| Error::invalid("model_config", format!("bad config JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Pretty JSON (what checkpoints store).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("model_config", format!("cannot serialise: {e}")))
    }

    /// Channels of the pose label map.
    pub fn label_channels(&self) -> usize {
        self.label.channels()
    }

    /// Side of the correspondence grid (image_size / 4: two stride-2 adaptor layers).
    pub fn corr_grid(&self) -> usize {
        self.image_size / 4
    }

    /// Channels of the adaptor features compared by the correlation (4·corr_nf).
    pub fn feature_channels(&self) -> usize {
        4 * self.corr_nf
    }

    /// Conditioning of the translation generator: warped exemplar (3) + label.
    pub fn generator_cond_channels(&self) -> usize {
        3 + self.label_channels()
    }

    /// Input of the image discriminator: label + image.
    pub fn discriminator_in_channels(&self) -> usize {
        self.label_channels() + 3
    }

    /// Input of the temporal discriminator: the labels and images of l frames.
    pub fn temporal_in_channels(&self) -> usize {
        self.temporal_window * (self.label_channels() + 3)
    }

    /// Conditioning of the temporal generator G1: G's conditioning + the previous l−1 frames.
    pub fn temporal_cond_channels(&self) -> usize {
        self.generator_cond_channels() + 3 * (self.temporal_window - 1)
    }

    /// Input of the face generator G2 and the face discriminator D2: label crop + image crop.
    pub fn face_in_channels(&self) -> usize {
        self.label_channels() + 3
    }

    /// Checks every field; shape problems of the networks surface through `count`.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::invalid("model_config", detail));
        let s = self.image_size;
        if s < 64 || !s.is_multiple_of(32) {
            return bad(format!(
                "image_size {s}: must be a multiple of 32 and at least 64 \
                 (the generator starts at image_size/32 with reflect padding)"
            ));
        }
        for (name, v) in [
            ("corr_nf", self.corr_nf),
            ("ngf", self.ngf),
            ("ndf", self.ndf),
            ("spade_hidden", self.spade_hidden),
            ("num_d", self.num_d),
            ("temporal_window", self.temporal_window),
            ("face_crop", self.face_crop),
            ("face_ngf", self.face_ngf),
            ("face_down", self.face_down),
            ("face_ndf", self.face_ndf),
            ("face_d_layers", self.face_d_layers),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        // Self-attention at 4·ngf and 4·ndf channels needs C/8 whole.
        if !self.ngf.is_multiple_of(2) || !self.ndf.is_multiple_of(2) {
            return bad(format!(
                "ngf {} and ndf {} must be even (self-attention uses C/8 channels)",
                self.ngf, self.ndf
            ));
        }
        if ![3, 4].contains(&self.adaptor_kernel) {
            return bad(format!(
                "adaptor_kernel {}: expected 3 or 4",
                self.adaptor_kernel
            ));
        }
        if ![1, 3].contains(&self.match_kernel) {
            return bad(format!(
                "match_kernel {}: expected 1 or 3",
                self.match_kernel
            ));
        }
        if self.face_crop > s {
            return bad(format!(
                "face_crop {} exceeds image_size {s}",
                self.face_crop
            ));
        }
        // G2 halves the crop `face_down` times and reflect-pads by 1 at the bottleneck.
        let f = self.face_crop;
        if f < 8
            || self.face_down >= usize::BITS as usize
            || !f.is_multiple_of(1 << self.face_down)
            || (f >> self.face_down) < 2
        {
            return bad(format!(
                "face_crop {f}: must be at least 8 and a multiple of 2^face_down (face_down {}) \
                 leaving at least 2 pixels at the bottleneck",
                self.face_down
            ));
        }
        let positive = [
            ("temperature", self.temperature),
            ("init_gain", self.init_gain),
            ("loss.context_bandwidth", self.loss.context_bandwidth),
            ("optim.g_lr", self.optim.g_lr),
            ("optim.g_eps", self.optim.g_eps),
            ("optim.d_lr", self.optim.d_lr),
            ("optim.d_eps", self.optim.d_eps),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} = {v}: must be finite and > 0"));
            }
        }
        self.validate_weights()?;
        crate::model::count::count(self).map(|_| ()).map_err(|e| {
            Error::invalid(
                "model_config",
                format!(
                    "the networks do not fit image_size {s} / num_d {}: {e}",
                    self.num_d
                ),
            )
        })
    }

    fn validate_weights(&self) -> Result<()> {
        let l = &self.loss;
        let mut weights = vec![
            ("gan", l.gan),
            ("feature_matching", l.feature_matching),
            ("vgg", l.vgg),
            ("perceptual_mse", l.perceptual_mse),
            ("context", l.context),
            ("domain_alignment", l.domain_alignment),
            ("reconstruction", l.reconstruction),
            ("warp_self", l.warp_self),
            ("warp_cycle", l.warp_cycle),
            ("temporal", l.temporal),
            ("face_gan", l.face_gan),
            ("face_vgg", l.face_vgg),
        ];
        weights.extend(
            l.vgg_layer_weights
                .iter()
                .map(|&w| ("vgg_layer_weights", w)),
        );
        weights.extend(
            l.context_layer_weights
                .iter()
                .map(|&w| ("context_layer_weights", w)),
        );
        for (name, w) in weights {
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::invalid(
                    "model_config",
                    format!("loss.{name} = {w}: must be finite and >= 0"),
                ));
            }
        }
        let o = &self.optim;
        for b in o.g_betas.iter().chain(&o.d_betas) {
            if !(0.0..1.0).contains(b) {
                return Err(Error::invalid(
                    "model_config",
                    format!("Adam beta {b}: must be in [0, 1)"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&o.decay_start) {
            return Err(Error::invalid(
                "model_config",
                format!("optim.decay_start {}: must be in [0, 1]", o.decay_start),
            ));
        }
        Ok(())
    }
}

/// Lower-case names for the pose crate's enums, as the rest of the config spells its options.
mod label_serde {
    use crate::pose::LabelKind;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &LabelKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match k {
            LabelKind::Paper => "paper",
            LabelKind::Cocosnet => "cocosnet",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LabelKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "paper" => Ok(LabelKind::Paper),
            "cocosnet" => Ok(LabelKind::Cocosnet),
            other => Err(D::Error::custom(format!(
                "unknown label `{other}`: expected paper or cocosnet"
            ))),
        }
    }
}

mod pose_norm_serde {
    use crate::pose::NormalizationKind;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &NormalizationKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match k {
            NormalizationKind::None => "none",
            NormalizationKind::Head => "head",
            NormalizationKind::Ankle => "ankle",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NormalizationKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "none" => Ok(NormalizationKind::None),
            "head" => Ok(NormalizationKind::Head),
            "ankle" => Ok(NormalizationKind::Ankle),
            other => Err(D::Error::custom(format!(
                "unknown pose_normalization `{other}`: expected head, ankle or none"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for name in PRESETS {
            let cfg = ModelConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            assert_eq!(cfg.name, name);
            let back = ModelConfig::from_json(&cfg.to_json().unwrap()).unwrap();
            assert_eq!(back, cfg);
        }
        let tiny = ModelConfig::preset("tiny").unwrap();
        assert_eq!((tiny.image_size, tiny.corr_grid()), (64, 16));
        assert_eq!(tiny.ngf * 8, ModelConfig::preset("paper").unwrap().ngf);
        let small = ModelConfig::preset("small").unwrap();
        assert_eq!((small.ngf, small.spade_hidden), (32, 64));
        assert_eq!(tiny.label_channels(), 21);
        let c = ModelConfig {
            label: LabelKind::Cocosnet,
            ..tiny
        };
        assert_eq!((c.label_channels(), c.generator_cond_channels()), (20, 23));
        assert_eq!(c.temporal_in_channels(), 46);
        assert_eq!(c.temporal_cond_channels(), 26);
    }

    #[test]
    fn json_uses_readable_names() {
        let json = ModelConfig::preset("paper").unwrap().to_json().unwrap();
        for s in [
            "\"warp_mode\": \"patch\"",
            "\"spade_norm\": \"pono\"",
            "\"gan_loss\": \"hinge\"",
            "\"temperature\": 0.01",
            "\"label\": \"paper\"",
            "\"pose_normalization\": \"head\"",
        ] {
            assert!(json.contains(s), "{s} missing in {json}");
        }
    }

    #[test]
    fn unknown_preset_and_bad_fields_are_errors() {
        let e = ModelConfig::preset("huge").unwrap_err();
        assert!(e.to_string().contains("huge") && e.to_string().contains("tiny"));
        let ok = ModelConfig::preset("tiny").unwrap();
        let bad = [
            ModelConfig {
                image_size: 48,
                ..ok.clone()
            },
            ModelConfig {
                adaptor_kernel: 5,
                ..ok.clone()
            },
            ModelConfig {
                match_kernel: 2,
                ..ok.clone()
            },
            ModelConfig {
                temperature: 0.0,
                ..ok.clone()
            },
            ModelConfig {
                ngf: 7,
                ..ok.clone()
            },
            ModelConfig {
                corr_nf: 0,
                ..ok.clone()
            },
            // Three scales of a 64² image leave a 16² last scale: too small for the PatchGAN.
            ModelConfig {
                num_d: 3,
                ..ok.clone()
            },
            // G2 cannot halve a 16² crop five times; D2 cannot run four stride-2 layers on it.
            ModelConfig {
                face_down: 5,
                ..ok.clone()
            },
            ModelConfig {
                face_d_layers: 4,
                ..ok.clone()
            },
            ModelConfig {
                face_ngf: 0,
                ..ok.clone()
            },
        ];
        for cfg in bad {
            assert!(
                matches!(cfg.validate(), Err(Error::Invalid { .. })),
                "{cfg:?}"
            );
        }
        let mut w = ok.clone();
        w.loss.vgg = f32::NAN;
        assert!(w.validate().is_err());
        let mut b = ok.clone();
        b.optim.d_betas = [0.0, 1.0];
        assert!(b.validate().is_err());
        // Strict JSON: unknown and missing fields.
        let json = ok.to_json().unwrap();
        let extra = json.replacen('{', "{\"bogus\": 1,", 1);
        assert!(ModelConfig::from_json(&extra).is_err());
        let missing = json.replace("\"ngf\": 8,", "");
        assert!(ModelConfig::from_json(&missing).is_err());
    }
}

//! The temporal generator G1 and discriminator D1 (MODEL.md §4, Algorithm 1 step 2).
//!
//! G1 is the SPADE translation generator whose conditioning is
//! concat(warped exemplar [3], label [C_label], previous l−1 generated frames [3 each], oldest
//! first); frames before the start of a clip are zeros. Its parameters live under
//! `temporal_gen.*`. `TemporalGenerator::init_from_stage1` copies a trained stage-1 `gen.*` into
//! it: every tensor of identical shape as is, and the conditioning-input convs (the first conv and
//! every SPADE MLP's first conv) get the stage-1 input channels with the extra ones zeroed, so G1
//! starts out computing exactly G whatever the previous frames hold.
//!
//! D1 is the multiscale PatchGAN over a window of l frames (`temporal_disc.*`), input =
//! concat(labels of the l frames, images of the l frames) on channels (`temporal_window_input`).

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::discriminator::{DiscriminatorSpec, MultiscaleDiscriminator};
use crate::model::generator::{Generator, GeneratorSpec};
use crate::model::GEN_SCOPE;
use crate::nn::{ParamStore, Scope};
use crate::tensor::Tensor;

/// Top-level scope of G1.
pub const TEMPORAL_GEN_SCOPE: &str = "temporal_gen";
/// Top-level scope of D1.
pub const TEMPORAL_DISC_SCOPE: &str = "temporal_disc";

/// G1: the translation generator with the previous frames in its conditioning.
pub struct TemporalGenerator {
    generator: Generator,
    /// The full scope name (`temporal_gen` under the root it was built in).
    prefix: String,
    /// l (frames per window): the conditioning holds l−1 previous frames.
    window: usize,
    /// Channels of G's conditioning (warped exemplar + label).
    base_cond: usize,
}

impl TemporalGenerator {
    /// Registers `temporal_gen.*` under `root`.
    pub fn new(root: &Scope<'_>, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let scope = root.scope(TEMPORAL_GEN_SCOPE);
        let spec = GeneratorSpec::with_cond(cfg, cfg.temporal_cond_channels());
        Ok(TemporalGenerator {
            generator: Generator::new(&scope, spec, cfg.init_gain)?,
            prefix: scope.prefix().to_string(),
            window: cfg.temporal_window,
            base_cond: cfg.generator_cond_channels(),
        })
    }

    pub fn spec(&self) -> &GeneratorSpec {
        self.generator.spec()
    }

    /// The conditioning concat(warped, label, zeros for missing frames, previous oldest first).
    /// At most l−1 previous frames; fewer means the clip started less than l−1 frames ago.
    pub fn conditioning(&self, warped: &Var, label: &Var, previous: &[Var]) -> Result<Var> {
        let need = self.window - 1;
        let (b, s) = match *warped.dims() {
            [b, 3, h, w] if h == w => (b, h),
            _ => {
                return Err(Error::shape(
                    "temporal_generator",
                    format!("warped exemplar {:?}, expected [B, 3, S, S]", warped.dims()),
                ))
            }
        };
        if previous.len() > need {
            return Err(Error::invalid(
                "temporal_generator",
                format!(
                    "{} previous frames given, the window of {} frames holds at most {need}",
                    previous.len(),
                    self.window
                ),
            ));
        }
        if let Some(p) = previous.iter().find(|p| p.dims() != [b, 3, s, s]) {
            return Err(Error::shape(
                "temporal_generator",
                format!("previous frame {:?}, expected [{b}, 3, {s}, {s}]", p.dims()),
            ));
        }
        let missing = need - previous.len();
        let zeros = (missing > 0)
            .then(|| Tensor::zeros([b, 3 * missing, s, s]).to_device(warped.device()))
            .transpose()?
            .map(Var::constant);
        let mut parts: Vec<&Var> = vec![warped, label];
        parts.extend(zeros.as_ref());
        parts.extend(previous.iter());
        Var::concat(&parts, 1)
    }

    /// The generated frame [B, 3, S, S] (shapes are checked by `conditioning` and the generator).
    pub fn forward(
        &self,
        warped: &Var,
        label: &Var,
        previous: &[Var],
        training: bool,
    ) -> Result<Var> {
        let cond = self.conditioning(warped, label, previous)?;
        self.generator.forward(&cond, training)
    }

    /// Copies a stage-1 generator (`gen.*` of `stage1`) into this G1 (its tensors in `store`):
    /// identical shapes are copied; a 4-d weight that differs only by having more input channels
    /// gets the stage-1 channels first and zeros after (the extra conditioning channels are
    /// appended last, so G1 then computes G). Returns how many tensors were widened.
    pub fn init_from_stage1(&self, store: &ParamStore, stage1: &ParamStore) -> Result<usize> {
        let own = format!("{}.", self.prefix);
        let mut widened = 0;
        for entry in store.entries() {
            let Some(local) = entry.name.strip_prefix(&own) else {
                continue;
            };
            let src_name = format!("{GEN_SCOPE}.{local}");
            let src = stage1.get(&src_name)?.value();
            let dst = entry.var.dims().to_vec();
            let value = if src.dims() == dst.as_slice() {
                src
            } else {
                widened += 1;
                widen_input_channels(&src, &dst, self.base_cond)
                    .map_err(|e| Error::Params(format!("{src_name} -> {}: {e}", entry.name)))?
            };
            entry.var.set_value(value.to_device(entry.var.device())?)?;
        }
        Ok(widened)
    }
}

/// `src` [O, C, k, k] widened to `dst` [O, C', k, k] (C' > C, C = `base`): input channels
/// 0..C copied, the rest zero.
fn widen_input_channels(src: &Tensor, dst: &[usize], base: usize) -> Result<Tensor> {
    let ok = matches!((src.dims(), dst),
        ([o, c, kh, kw], [o2, c2, kh2, kw2])
            if o == o2 && kh == kh2 && kw == kw2 && *c == base && c2 > c);
    if !ok {
        return Err(Error::shape(
            "temporal_generator_init",
            format!(
                "stage-1 tensor {:?} cannot seed {dst:?}: only the input channels of a \
                 conditioning conv ({base} in stage 1) may grow",
                src.dims()
            ),
        ));
    }
    let data = src.to_vec()?;
    let (o, c, kk) = (dst[0], dst[1], dst[2] * dst[3]);
    let mut out = vec![0.0f32; o * c * kk];
    for (row, chunk) in out.chunks_exact_mut(c * kk).enumerate() {
        chunk[..base * kk].copy_from_slice(&data[row * base * kk..(row + 1) * base * kk]);
    }
    Tensor::from_vec(out, dst.to_vec())
}

/// D1 `temporal_disc.*` of `cfg` under `root`.
pub fn build_temporal_discriminator(
    root: &Scope<'_>,
    cfg: &ModelConfig,
) -> Result<MultiscaleDiscriminator> {
    cfg.validate()?;
    MultiscaleDiscriminator::new(
        &root.scope(TEMPORAL_DISC_SCOPE),
        DiscriminatorSpec::temporal(cfg),
        cfg.init_gain,
    )
}

/// D1's input for one window: concat(labels, images) on channels, each oldest first.
pub fn temporal_window_input(labels: &[&Var], images: &[&Var]) -> Result<Var> {
    if labels.is_empty() || labels.len() != images.len() {
        return Err(Error::invalid(
            "temporal_window_input",
            format!(
                "{} labels and {} images: expected the same non-zero number",
                labels.len(),
                images.len()
            ),
        ));
    }
    let parts: Vec<&Var> = labels.iter().chain(images).copied().collect();
    Var::concat(&parts, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::no_grad;
    use crate::model::GeneratorSide;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn widen_copies_channels_and_zeroes_the_rest() {
        let src = Tensor::from_vec(
            (0..2 * 3 * 2 * 2).map(|v| v as f32 + 1.0).collect(),
            [2, 3, 2, 2],
        )
        .unwrap();
        let out = widen_input_channels(&src, &[2, 5, 2, 2], 3).unwrap();
        let (s, o) = (src.to_vec().unwrap(), out.to_vec().unwrap());
        for r in 0..2 {
            for c in 0..5 {
                for k in 0..4 {
                    let want = if c < 3 { s[(r * 3 + c) * 4 + k] } else { 0.0 };
                    assert_eq!(o[(r * 5 + c) * 4 + k], want, "row {r} channel {c}");
                }
            }
        }
        // Output channels, kernel sizes and a shrinking input are refused.
        for dst in [[3, 5, 2, 2], [2, 5, 3, 2], [2, 2, 2, 2]] {
            assert!(widen_input_channels(&src, &dst, 3).is_err(), "{dst:?}");
        }
        assert!(widen_input_channels(&src, &[2, 5, 2, 2], 2).is_err());
    }

    /// Right after `init_from_stage1`, G1 equals G for any previous frame (and for zeros), in
    /// evaluation and in training mode (the spectral-norm buffers are copied too).
    #[test]
    fn g1_initialised_from_stage1_equals_g() {
        let mut cfg = ModelConfig::preset("tiny").unwrap();
        cfg.temporal_window = 3;
        let s = cfg.image_size;
        let stage1 = ParamStore::new(5);
        let g = GeneratorSide::new(&stage1.root(), &cfg).unwrap();
        let store = ParamStore::new(6);
        let g1 = TemporalGenerator::new(&store.root(), &cfg).unwrap();
        // fc and one SPADE MLP per SPADE layer see the conditioning.
        let widened = g1.init_from_stage1(&store, &stage1).unwrap();
        assert!(widened > 1, "{widened}");
        let label = Var::constant(Tensor::rand_uniform(
            [2, cfg.label_channels(), s, s],
            0.0,
            1.0,
            1,
        ));
        let warped = Var::constant(Tensor::rand_uniform([2, 3, s, s], -1.0, 1.0, 2));
        let prev = |seed| Var::constant(Tensor::randn([2, 3, s, s], 0.0, 3.0, seed));
        for training in [false, true] {
            for previous in [vec![], vec![prev(3)], vec![prev(4), prev(5)]] {
                // In training mode each forward runs one power iteration on its own (identical)
                // spectral-norm buffers, so G and G1 run in pairs.
                let want = no_grad(|| {
                    let cond = Var::concat(&[&warped, &label], 1).unwrap();
                    g.generator.forward(&cond, training).unwrap().value()
                });
                let got = no_grad(|| g1.forward(&warped, &label, &previous, training).unwrap());
                let scale = want
                    .to_vec()
                    .unwrap()
                    .iter()
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                let d = max_abs_diff(&got.value(), &want);
                eprintln!(
                    "training {training}, {} previous: |G| {scale}, diff {d}",
                    previous.len()
                );
                assert!(scale > 0.0);
                assert!(
                    d <= 1e-6 * scale,
                    "training {training}, {} previous: {d}",
                    previous.len()
                );
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let s = cfg.image_size;
        let store = ParamStore::new(1);
        let g1 = TemporalGenerator::new(&store.root(), &cfg).unwrap();
        assert_eq!(g1.spec().cond, cfg.temporal_cond_channels());
        let label = Var::constant(Tensor::zeros([1, cfg.label_channels(), s, s]));
        let img = |b, s| Var::constant(Tensor::zeros([b, 3, s, s]));
        // l = 2: one previous frame at most, of the warped exemplar's shape.
        assert!(g1
            .conditioning(&img(1, s), &label, &[img(1, s), img(1, s)])
            .is_err());
        assert!(g1.conditioning(&img(1, s), &label, &[img(2, s)]).is_err());
        assert!(g1.conditioning(&img(1, s), &label, &[img(1, 32)]).is_err());
        let bad_warped = Var::constant(Tensor::zeros([1, 4, s, s]));
        assert!(g1.conditioning(&bad_warped, &label, &[]).is_err());
        let cond = g1.conditioning(&img(1, s), &label, &[]).unwrap();
        assert_eq!(cond.dims(), [1, cfg.temporal_cond_channels(), s, s]);
        // A stage-1 store without `gen.*` cannot seed G1.
        let empty = ParamStore::new(2);
        assert!(matches!(
            g1.init_from_stage1(&store, &empty),
            Err(Error::Params(_))
        ));
        assert!(temporal_window_input(&[&label], &[]).is_err());
        assert!(temporal_window_input(&[], &[]).is_err());
    }

    #[test]
    fn window_input_puts_labels_then_images_oldest_first() {
        let c = |v: f32, ch| Var::constant(Tensor::full(v, [1, ch, 2, 2]));
        let (l0, l1, i0, i1) = (c(1.0, 2), c(2.0, 2), c(3.0, 1), c(4.0, 1));
        let x = temporal_window_input(&[&l0, &l1], &[&i0, &i1]).unwrap();
        assert_eq!(x.dims(), [1, 6, 2, 2]);
        let v = x.value().to_vec().unwrap();
        let per_channel: Vec<f32> = v.chunks(4).map(|ch| ch[0]).collect();
        assert_eq!(per_channel, [1.0, 1.0, 2.0, 2.0, 3.0, 4.0]);
        let cfg = ModelConfig::preset("tiny").unwrap();
        let store = ParamStore::new(3);
        let d1 = build_temporal_discriminator(&store.root(), &cfg).unwrap();
        assert_eq!(d1.spec().c_in, cfg.temporal_in_channels());
        assert!(store
            .names()
            .iter()
            .all(|n| n.starts_with("temporal_disc.")));
    }
}

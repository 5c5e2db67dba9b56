//! The face refinement networks (MODEL.md §4, Algorithm 1 step 3) and the crop/paste ops.
//!
//! G2 (`face_gen.*`), a small residual generator on concat(label crop, generated crop):
//! reflect-pad 3, 7×7 conv → face_ngf (IN, ReLU); `face_down` × [3×3 stride-2 conv doubling the
//! width (IN, ReLU)]; `face_blocks` residual blocks [reflect-pad 1, 3×3 conv, IN, ReLU, reflect-pad
//! 1, 3×3 conv, IN, + skip]; `face_down` × [nearest ×2, reflect-pad 1, 3×3 conv halving the width
//! (IN, ReLU)]; reflect-pad 3, 7×7 conv → 3 (bias), tanh. The result is a residual added to the
//! generated crop. Convs followed by InstanceNorm have no bias (the norm would cancel it).
//!
//! D2 (`face_disc.*`), a single-scale PatchGAN on concat(label crop, face crop): 4×4 convs, pad 1:
//! C_in→ndf s2 (bias, LReLU), `face_d_layers`−1 × [s2, width doubling up to 8·ndf (SN + IN,
//! LReLU)], one s1 layer (SN + IN, LReLU), then s1 → 1 (bias).
//!
//! `crop_faces` / `paste_faces` are built from `narrow` and `concat`, so gradients flow through
//! both: into the crop from a loss on the pasted frame, and into the frame outside the box.

use crate::autograd::Var;
use crate::backend::ResizeMode;
use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::count::Count;
use crate::model::layers::{Conv2d, ConvSpec, IN_EPS};
use crate::nn::Scope;
use crate::pose::transform::CropBox;

/// Top-level scope of G2.
pub const FACE_GEN_SCOPE: &str = "face_gen";
/// Top-level scope of D2.
pub const FACE_DISC_SCOPE: &str = "face_disc";

const LRELU: f32 = 0.2;

/// The shape of G2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceGeneratorSpec {
    pub c_in: usize,
    pub ngf: usize,
    pub down: usize,
    pub blocks: usize,
    pub crop: usize,
}

impl FaceGeneratorSpec {
    pub fn from_config(cfg: &ModelConfig) -> Self {
        FaceGeneratorSpec {
            c_in: cfg.face_in_channels(),
            ngf: cfg.face_ngf,
            down: cfg.face_down,
            blocks: cfg.face_blocks,
            crop: cfg.face_crop,
        }
    }

    fn head(&self) -> ConvSpec {
        ConvSpec::new(self.c_in, self.ngf, 7).reflect(3).bias(false)
    }

    /// Width after `i` downsamplings.
    fn width(&self, i: usize) -> usize {
        self.ngf << i
    }

    fn down_conv(&self, i: usize) -> ConvSpec {
        ConvSpec::new(self.width(i), self.width(i + 1), 3)
            .stride(2)
            .pad(1)
            .bias(false)
    }

    fn block_conv(&self) -> ConvSpec {
        let c = self.width(self.down);
        ConvSpec::new(c, c, 3).reflect(1).bias(false)
    }

    /// The i-th upsampling conv, from width(down − i) to width(down − i − 1).
    fn up_conv(&self, i: usize) -> ConvSpec {
        let level = self.down - i;
        ConvSpec::new(self.width(level), self.width(level - 1), 3)
            .reflect(1)
            .bias(false)
    }

    fn tail(&self) -> ConvSpec {
        ConvSpec::new(self.ngf, 3, 7).reflect(3)
    }

    /// Parameters and MACs for one crop.
    pub fn count(&self) -> Result<Count> {
        let bottleneck = self.crop >> self.down.min(usize::BITS as usize - 1);
        if self.down >= usize::BITS as usize
            || bottleneck < 2
            || bottleneck << self.down != self.crop
        {
            return Err(Error::shape(
                "face_generator",
                format!(
                    "crop {} cannot be halved {} times down to at least 2 pixels",
                    self.crop, self.down
                ),
            ));
        }
        let mut hw = (self.crop, self.crop);
        let (mut total, _) = self.head().count(hw)?;
        for i in 0..self.down {
            let (c, out) = self.down_conv(i).count(hw)?;
            total = total + c;
            hw = out;
        }
        total = total + self.block_conv().count(hw)?.0 * (2 * self.blocks as u64);
        for i in 0..self.down {
            hw = (2 * hw.0, 2 * hw.1);
            total = total + self.up_conv(i).count(hw)?.0;
        }
        Ok(total + self.tail().count(hw)?.0)
    }
}

/// G2: `head`, `down_<i>`, `block_<i>.conv_0/1`, `up_<i>`, `tail`.
pub struct FaceGenerator {
    spec: FaceGeneratorSpec,
    head: Conv2d,
    downs: Vec<Conv2d>,
    blocks: Vec<(Conv2d, Conv2d)>,
    ups: Vec<Conv2d>,
    tail: Conv2d,
}

fn in_relu(x: &Var) -> Result<Var> {
    x.instance_norm(None, None, IN_EPS)?.relu()
}

impl FaceGenerator {
    /// Registers `face_gen.*` under `root`.
    pub fn new(root: &Scope<'_>, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let spec = FaceGeneratorSpec::from_config(cfg);
        spec.count()?;
        let scope = root.scope(FACE_GEN_SCOPE);
        let gain = cfg.init_gain;
        let conv = |name: &str, c: ConvSpec| Conv2d::new(&scope.scope(name), c, gain);
        let blocks = (0..spec.blocks)
            .map(|i| {
                let b = scope.scope(&format!("block_{i}"));
                Ok((
                    Conv2d::new(&b.scope("conv_0"), spec.block_conv(), gain)?,
                    Conv2d::new(&b.scope("conv_1"), spec.block_conv(), gain)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FaceGenerator {
            spec,
            head: conv("head", spec.head())?,
            downs: (0..spec.down)
                .map(|i| conv(&format!("down_{i}"), spec.down_conv(i)))
                .collect::<Result<_>>()?,
            blocks,
            ups: (0..spec.down)
                .map(|i| conv(&format!("up_{i}"), spec.up_conv(i)))
                .collect::<Result<_>>()?,
            tail: conv("tail", spec.tail())?,
        })
    }

    pub fn spec(&self) -> &FaceGeneratorSpec {
        &self.spec
    }

    /// The tanh residual for (label crop [B, C_label, f, f], generated crop [B, 3, f, f]).
    pub fn residual(&self, label_crop: &Var, crop: &Var, training: bool) -> Result<Var> {
        let f = self.spec.crop;
        let c_label = self.spec.c_in - 3;
        let ok =
            |v: &Var, c: usize| matches!(*v.dims(), [_, ch, h, w] if ch == c && h == f && w == f);
        if !ok(label_crop, c_label) || !ok(crop, 3) || label_crop.dims()[0] != crop.dims()[0] {
            return Err(Error::shape(
                "face_generator",
                format!(
                    "label crop {:?}, image crop {:?}: expected [B, {c_label}, {f}, {f}] and \
                     [B, 3, {f}, {f}]",
                    label_crop.dims(),
                    crop.dims()
                ),
            ));
        }
        let x = Var::concat(&[label_crop, crop], 1)?;
        let mut x = in_relu(&self.head.forward(&x, training)?)?;
        for d in &self.downs {
            x = in_relu(&d.forward(&x, training)?)?;
        }
        for (c0, c1) in &self.blocks {
            let y = in_relu(&c0.forward(&x, training)?)?;
            let y = c1
                .forward(&y, training)?
                .instance_norm(None, None, IN_EPS)?;
            x = x.add(&y)?;
        }
        for u in &self.ups {
            let (h, w) = (x.dims()[2], x.dims()[3]);
            x = x.resize2d((2 * h, 2 * w), ResizeMode::Nearest)?;
            x = in_relu(&u.forward(&x, training)?)?;
        }
        self.tail.forward(&x, training)?.tanh()
    }

    /// The refined crop: generated crop + residual.
    pub fn forward(&self, label_crop: &Var, crop: &Var, training: bool) -> Result<Var> {
        crop.add(&self.residual(label_crop, crop, training)?)
    }
}

/// The shape of D2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceDiscriminatorSpec {
    pub c_in: usize,
    pub ndf: usize,
    /// Stride-2 layers.
    pub layers: usize,
    pub crop: usize,
}

/// One D2 conv and whether InstanceNorm / LReLU follow it.
#[derive(Clone, Copy, Debug)]
struct D2Layer {
    conv: ConvSpec,
    norm: bool,
    act: bool,
}

impl FaceDiscriminatorSpec {
    pub fn from_config(cfg: &ModelConfig) -> Self {
        FaceDiscriminatorSpec {
            c_in: cfg.face_in_channels(),
            ndf: cfg.face_ndf,
            layers: cfg.face_d_layers,
            crop: cfg.face_crop,
        }
    }

    fn dlayers(&self) -> Vec<D2Layer> {
        let c = |cin, cout, s| ConvSpec::new(cin, cout, 4).stride(s).pad(1);
        let sn = |cin, cout, s| D2Layer {
            conv: c(cin, cout, s).bias(false).sn(true),
            norm: true,
            act: true,
        };
        let width = |i: usize| self.ndf << i.min(3);
        let mut out = vec![D2Layer {
            conv: c(self.c_in, self.ndf, 2),
            norm: false,
            act: true,
        }];
        for i in 1..self.layers {
            out.push(sn(width(i - 1), width(i), 2));
        }
        let last = width(self.layers - 1);
        out.push(sn(last, width(self.layers), 1));
        out.push(D2Layer {
            conv: c(width(self.layers), 1, 1),
            norm: false,
            act: false,
        });
        out
    }

    /// Parameters and MACs for one crop.
    pub fn count(&self) -> Result<Count> {
        if self.layers == 0 {
            return Err(Error::shape("face_discriminator", "no stride-2 layer"));
        }
        let mut hw = (self.crop, self.crop);
        let mut total = Count::default();
        for l in self.dlayers() {
            let (c, out) = l.conv.count(hw).map_err(|e| {
                Error::shape(
                    "face_discriminator",
                    format!(
                        "{} stride-2 layers on a {}² crop: {e}",
                        self.layers, self.crop
                    ),
                )
            })?;
            total = total + c;
            hw = out;
        }
        Ok(total)
    }
}

/// D2: `layer_0` … `layer_<n+1>`.
pub struct FaceDiscriminator {
    spec: FaceDiscriminatorSpec,
    layers: Vec<(Conv2d, D2Layer)>,
}

impl FaceDiscriminator {
    /// Registers `face_disc.*` under `root`.
    pub fn new(root: &Scope<'_>, cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let spec = FaceDiscriminatorSpec::from_config(cfg);
        spec.count()?;
        let scope = root.scope(FACE_DISC_SCOPE);
        let layers = spec
            .dlayers()
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                Conv2d::new(&scope.scope(&format!("layer_{i}")), l.conv, cfg.init_gain)
                    .map(|c| (c, l))
            })
            .collect::<Result<_>>()?;
        Ok(FaceDiscriminator { spec, layers })
    }

    pub fn spec(&self) -> &FaceDiscriminatorSpec {
        &self.spec
    }

    /// Patch logits [B, 1, h, w] of `x` = concat(label crop, face crop) [B, c_in, f, f].
    pub fn forward(&self, x: &Var, training: bool) -> Result<Var> {
        let (c, f) = (self.spec.c_in, self.spec.crop);
        if !matches!(*x.dims(), [_, ch, h, w] if ch == c && h == f && w == f) {
            return Err(Error::shape(
                "face_discriminator",
                format!("input {:?}, expected [B, {c}, {f}, {f}]", x.dims()),
            ));
        }
        let mut y = x.clone();
        for (conv, l) in &self.layers {
            y = conv.forward(&y, training)?;
            if l.norm {
                y = y.instance_norm(None, None, IN_EPS)?;
            }
            if l.act {
                y = y.leaky_relu(LRELU)?;
            }
        }
        Ok(y)
    }
}

/// Checks `boxes` against NCHW `dims` (one box per sample, all of one size, each inside the
/// frame) and returns the box (h, w).
fn check_boxes(op: &'static str, dims: &[usize], boxes: &[CropBox]) -> Result<(usize, usize)> {
    let [b, _, h, w] = *dims else {
        return Err(Error::shape(
            op,
            format!("images {dims:?}, expected [B, C, H, W]"),
        ));
    };
    if b == 0 || boxes.len() != b {
        return Err(Error::invalid(
            op,
            format!(
                "{} boxes for a batch of {b}: expected one per sample",
                boxes.len()
            ),
        ));
    }
    let first = boxes[0];
    for bx in boxes {
        if (bx.w, bx.h) != (first.w, first.h) {
            return Err(Error::invalid(
                op,
                format!("boxes of different sizes {bx:?} and {first:?}"),
            ));
        }
        let (fw, fh) = (u32::try_from(w), u32::try_from(h));
        let (Ok(fw), Ok(fh)) = (fw, fh) else {
            return Err(Error::shape(op, format!("frame {h}×{w} too large")));
        };
        bx.check_inside(fw, fh)
            .map_err(|e| Error::invalid(op, format!("{e} (frame {h}×{w})")))?;
    }
    Ok((first.h as usize, first.w as usize))
}

/// The per-sample crops [B, C, h, w] of `images` [B, C, H, W] at `boxes` (one per sample).
pub fn crop_faces(images: &Var, boxes: &[CropBox]) -> Result<Var> {
    let (h, w) = check_boxes("crop_faces", images.dims(), boxes)?;
    let crops = boxes
        .iter()
        .enumerate()
        .map(|(i, bx)| {
            images
                .narrow(0, i, 1)?
                .narrow(2, bx.y as usize, h)?
                .narrow(3, bx.x as usize, w)
        })
        .collect::<Result<Vec<_>>>()?;
    Var::concat(&crops.iter().collect::<Vec<_>>(), 0)
}

/// `images` [B, C, H, W] with `faces` [B, C, h, w] written over the boxes (one per sample).
pub fn paste_faces(images: &Var, faces: &Var, boxes: &[CropBox]) -> Result<Var> {
    let (h, w) = check_boxes("paste_faces", images.dims(), boxes)?;
    let d = images.dims();
    let (c, fh, fw) = (d[1], d[2], d[3]);
    if faces.dims() != [d[0], c, h, w] {
        return Err(Error::shape(
            "paste_faces",
            format!(
                "faces {:?} for images {d:?} and {h}×{w} boxes: expected [{}, {c}, {h}, {w}]",
                faces.dims(),
                d[0]
            ),
        ));
    }
    // Joins the non-empty pieces along `axis`.
    let join = |parts: [Option<Var>; 3], axis| -> Result<Var> {
        let present: Vec<&Var> = parts.iter().flatten().collect();
        Var::concat(&present, axis)
    };
    let piece =
        |v: &Var, axis, start, len| (len > 0).then(|| v.narrow(axis, start, len)).transpose();
    let samples = boxes
        .iter()
        .enumerate()
        .map(|(i, bx)| {
            let (x, y) = (bx.x as usize, bx.y as usize);
            let img = images.narrow(0, i, 1)?;
            let rows = img.narrow(2, y, h)?;
            let mid = join(
                [
                    piece(&rows, 3, 0, x)?,
                    Some(faces.narrow(0, i, 1)?),
                    piece(&rows, 3, x + w, fw - x - w)?,
                ],
                3,
            )?;
            join(
                [
                    piece(&img, 2, 0, y)?,
                    Some(mid),
                    piece(&img, 2, y + h, fh - y - h)?,
                ],
                2,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Var::concat(&samples.iter().collect::<Vec<_>>(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::count::measure_macs;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    fn bx(x: i32, y: i32, w: u32, h: u32) -> CropBox {
        CropBox { x, y, w, h }
    }

    /// Boxes touching every edge of a 7×9 frame, and one inside.
    fn awkward() -> (Tensor, Vec<CropBox>) {
        let img = Tensor::randn([3, 2, 7, 9], 0.0, 1.0, 11);
        (img, vec![bx(0, 0, 4, 3), bx(5, 4, 4, 3), bx(2, 1, 4, 3)])
    }

    fn in_box(b: &CropBox, y: usize, x: usize) -> bool {
        let (bx, by) = (b.x as usize, b.y as usize);
        (by..by + b.h as usize).contains(&y) && (bx..bx + b.w as usize).contains(&x)
    }

    #[test]
    fn crop_and_paste_match_naive_loops() {
        let (img, boxes) = awkward();
        let faces = Tensor::randn([3, 2, 3, 4], 5.0, 1.0, 12);
        let crop = crop_faces(&Var::constant(img.clone()), &boxes)
            .unwrap()
            .value();
        let pasted = paste_faces(
            &Var::constant(img.clone()),
            &Var::constant(faces.clone()),
            &boxes,
        )
        .unwrap()
        .value();
        assert_eq!(crop.dims(), [3, 2, 3, 4]);
        assert_eq!(pasted.dims(), img.dims());
        let (iv, fv) = (img.to_vec().unwrap(), faces.to_vec().unwrap());
        let (cv, pv) = (crop.to_vec().unwrap(), pasted.to_vec().unwrap());
        for (n, b) in boxes.iter().enumerate() {
            for c in 0..2 {
                for y in 0..7 {
                    for x in 0..9 {
                        let i = ((n * 2 + c) * 7 + y) * 9 + x;
                        let want = if in_box(b, y, x) {
                            let (fy, fx) = (y - b.y as usize, x - b.x as usize);
                            let j = ((n * 2 + c) * 3 + fy) * 4 + fx;
                            assert_eq!(cv[j], iv[i], "crop {n} {c} {y} {x}");
                            fv[j]
                        } else {
                            iv[i]
                        };
                        assert_eq!(pv[i], want, "paste {n} {c} {y} {x}");
                    }
                }
            }
        }
    }

    /// The gradients are the adjoints: paste sends the upstream gradient inside the box to the
    /// faces and outside it to the images; crop sends it into the box.
    #[test]
    fn crop_and_paste_gradients_are_adjoints() {
        let (img, boxes) = awkward();
        let up = Tensor::randn([3, 2, 7, 9], 0.0, 1.0, 13);
        let images = Var::param(img.clone());
        let faces = Var::param(Tensor::randn([3, 2, 3, 4], 0.0, 1.0, 14));
        let out = paste_faces(&images, &faces, &boxes).unwrap();
        out.backward_with(&up).unwrap();
        let want_faces = crop_faces(&Var::constant(up.clone()), &boxes)
            .unwrap()
            .value();
        assert_eq!(
            faces.grad().unwrap().to_vec().unwrap(),
            want_faces.to_vec().unwrap()
        );
        let gi = images.grad().unwrap().to_vec().unwrap();
        let uv = up.to_vec().unwrap();
        for (i, (&g, &u)) in gi.iter().zip(&uv).enumerate() {
            let (x, y, n) = (i % 9, (i / 9) % 7, i / (9 * 7 * 2));
            assert_eq!(g, if in_box(&boxes[n], y, x) { 0.0 } else { u }, "{i}");
        }
        let images = Var::param(img);
        let up_crop = Tensor::randn([3, 2, 3, 4], 0.0, 1.0, 15);
        crop_faces(&images, &boxes)
            .unwrap()
            .backward_with(&up_crop)
            .unwrap();
        let back = paste_faces(
            &Var::constant(Tensor::zeros([3, 2, 7, 9])),
            &Var::constant(up_crop),
            &boxes,
        )
        .unwrap();
        assert_eq!(
            images.grad().unwrap().to_vec().unwrap(),
            back.value().to_vec().unwrap()
        );
    }

    #[test]
    fn bad_boxes_and_shapes_are_errors() {
        let (img, boxes) = awkward();
        let img = Var::constant(img);
        let faces = Var::constant(Tensor::zeros([3, 2, 3, 4]));
        assert!(crop_faces(&img, &boxes[..2]).is_err());
        let outside = [boxes[0], boxes[1], bx(6, 0, 4, 3)];
        assert!(crop_faces(&img, &outside).is_err());
        let mixed = [boxes[0], boxes[1], bx(0, 0, 3, 3)];
        assert!(crop_faces(&img, &mixed).is_err());
        let empty = [bx(0, 0, 0, 0); 3];
        assert!(crop_faces(&img, &empty).is_err());
        let rank3 = Var::constant(Tensor::zeros([2, 7, 9]));
        assert!(crop_faces(&rank3, &boxes[..2]).is_err());
        let wrong_faces = Var::constant(Tensor::zeros([3, 2, 4, 3]));
        assert!(paste_faces(&img, &wrong_faces, &boxes).is_err());
        assert!(paste_faces(&img, &faces, &boxes).is_ok());
    }

    #[test]
    fn face_networks_match_their_counts() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let store = ParamStore::new(3);
        let g2 = FaceGenerator::new(&store.root(), &cfg).unwrap();
        let d2 = FaceDiscriminator::new(&store.root(), &cfg).unwrap();
        let g_count = FaceGeneratorSpec::from_config(&cfg).count().unwrap();
        let d_count = FaceDiscriminatorSpec::from_config(&cfg).count().unwrap();
        let prefixed = |p: &str| {
            store
                .params()
                .iter()
                .filter(|(n, _)| n.starts_with(p))
                .map(|(_, v)| v.value().numel() as u64)
                .sum::<u64>()
        };
        assert_eq!(prefixed("face_gen."), g_count.params);
        assert_eq!(prefixed("face_disc."), d_count.params);
        let f = cfg.face_crop;
        let label = Var::constant(Tensor::rand_uniform(
            [2, cfg.label_channels(), f, f],
            0.0,
            1.0,
            1,
        ));
        let crop = Var::constant(Tensor::rand_uniform([2, 3, f, f], -1.0, 1.0, 2));
        let (refined, macs) = measure_macs(|| g2.forward(&label, &crop, true).unwrap());
        assert_eq!(macs, 2 * g_count.macs);
        assert_eq!(refined.dims(), [2, 3, f, f]);
        // The residual is a tanh: the refined crop stays within 1 of the input crop.
        let (r, c) = (
            refined.value().to_vec().unwrap(),
            crop.value().to_vec().unwrap(),
        );
        assert!(r.iter().zip(&c).all(|(a, b)| (a - b).abs() < 1.0 && a != b));
        let x = Var::concat(&[&label, &refined], 1).unwrap();
        let (logits, macs) = measure_macs(|| d2.forward(&x, true).unwrap());
        assert_eq!(macs, 2 * d_count.macs);
        // 16 → 8 → 4 (two stride-2 layers) → 3 → 2 (two stride-1 4×4 convs).
        assert_eq!(logits.dims(), [2, 1, 2, 2]);
        assert!(g2.forward(&crop, &label, true).is_err());
        assert!(d2.forward(&label, true).is_err());
    }

    /// The `paper` sizes, by hand: G2 = 7×7 24→64, 3×3 64→128, 128→256, 10 × 3×3 256→256,
    /// 3×3 256→128, 128→64, 7×7 64→3 + bias; D2 = 4×4 24→64 + bias, 64→128, 128→256, 256→512,
    /// 512→1 + bias.
    #[test]
    fn paper_face_counts_by_hand() {
        // The `paper` label: 21 channels, + 3 for the crop.
        let cfg = ModelConfig::preset("paper").unwrap();
        let g = 24 * 64 * 49
            + 64 * 128 * 9
            + 128 * 256 * 9
            + 10 * 256 * 256 * 9
            + 256 * 128 * 9
            + 128 * 64 * 9
            + 64 * 3 * 49
            + 3;
        let d = 24 * 64 * 16 + 64 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 16 + 1;
        assert_eq!(
            FaceGeneratorSpec::from_config(&cfg).count().unwrap().params,
            g
        );
        assert_eq!(
            FaceDiscriminatorSpec::from_config(&cfg)
                .count()
                .unwrap()
                .params,
            d
        );
        let bad = FaceDiscriminatorSpec {
            layers: 5,
            ..FaceDiscriminatorSpec::from_config(&cfg)
        };
        assert!(bad.count().is_err());
    }
}

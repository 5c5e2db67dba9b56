//! Adam over the trainable parameters of a `ParamStore`, one backend `adam_step` per parameter
//! (PyTorch `torch.optim.Adam` arithmetic). As in PyTorch, each parameter keeps its own step
//! count and a parameter without a gradient is skipped (its state untouched).
//!
//! State file: safetensors with `optim.<param>.m`, `optim.<param>.v` and `optim.<param>.step`
//! (shape [1], exact in f32 up to 2^24 steps), written atomically; loading checks every tensor
//! before changing anything.

use crate::autograd::Var;
use crate::backend::{self, AdamParams};
use crate::error::{Error, Result};
use crate::nn::safetensors_io::{read_tensor_file, save_tensors, Metadata};
use crate::nn::ParamStore;
use crate::tensor::Tensor;
use std::path::Path;

/// The `format` metadata value of optimiser state files.
pub const STATE_FORMAT: &str = "engine-adam-1";

/// Hyper-parameters of one Adam optimiser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub betas: [f32; 2],
    pub eps: f32,
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    step: u64,
}

/// Adam state over a fixed list of parameters.
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
}

impl Adam {
    /// Over every trainable parameter of `store` (at the time of the call).
    pub fn new(store: &ParamStore, cfg: AdamConfig) -> Result<Self> {
        Self::over(store.params(), cfg)
    }

    /// Over the given named parameters.
    pub fn over(params: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        if cfg.lr.is_nan() || cfg.lr < 0.0 || cfg.eps.is_nan() || cfg.eps < 0.0 {
            return Err(Error::invalid(
                "adam",
                format!("lr {} and eps {} must be non-negative", cfg.lr, cfg.eps),
            ));
        }
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let zeros = Tensor::zeros(var.dims().to_vec()).to_device(var.device())?;
                Ok(Slot {
                    name,
                    var,
                    m: zeros.clone(),
                    v: zeros,
                    step: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam { cfg, slots })
    }

    /// Moves the moments to the device of their parameters (after the store was moved with
    /// `ParamStore::to_device`).
    pub fn follow_params(&mut self) -> Result<()> {
        for s in &mut self.slots {
            let dev = s.var.device();
            s.m = s.m.on_device(dev)?;
            s.v = s.v.on_device(dev)?;
        }
        Ok(())
    }

    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// The step count of parameter `name` (0 before its first update).
    pub fn step_of(&self, name: &str) -> Option<u64> {
        self.slots.iter().find(|s| s.name == name).map(|s| s.step)
    }

    /// One update at `lr_factor` × the base rate of every parameter that has a gradient.
    pub fn step(&mut self, lr_factor: f32) -> Result<()> {
        let c = self.cfg;
        for s in &mut self.slots {
            let Some(grad) = s.var.grad() else { continue };
            s.step += 1;
            let p = AdamParams {
                lr: c.lr * lr_factor,
                beta1: c.betas[0],
                beta2: c.betas[1],
                eps: c.eps,
                weight_decay: 0.0,
                decoupled: false,
                step: s.step,
            };
            let mut value = s.var.value();
            backend::for_tensor(&value)?.adam_step(&mut value, &grad, &mut s.m, &mut s.v, p)?;
            s.var.set_value(value)?;
        }
        Ok(())
    }

    /// Clears the gradients of every parameter of this optimiser.
    pub fn zero_grad(&self) {
        self.slots.iter().for_each(|s| s.var.zero_grad());
    }

    /// Writes m, v and step of every parameter to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = Vec::with_capacity(3 * self.slots.len());
        for s in &self.slots {
            tensors.push((format!("optim.{}.m", s.name), s.m.clone()));
            tensors.push((format!("optim.{}.v", s.name), s.v.clone()));
            tensors.push((
                format!("optim.{}.step", s.name),
                Tensor::full(s.step as f32, [1]),
            ));
        }
        let mut meta = Metadata::new();
        meta.insert("format".into(), STATE_FORMAT.into());
        save_tensors(path.as_ref(), &tensors, &meta)
    }

    /// Restores the state written by `save`; every parameter's three tensors must be present
    /// with the right shapes. On error nothing changes.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (mut file, meta) = read_tensor_file(path)?;
        if meta.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            return Err(Error::file(
                path,
                format!(
                    "not an optimiser state file (format {:?})",
                    meta.get("format")
                ),
            ));
        }
        let mut problems = Vec::new();
        let mut new = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let mut take = |kind: &str, dims: &[usize]| {
                let name = format!("optim.{}.{kind}", s.name);
                match file.remove(&name) {
                    None => {
                        problems.push(format!("missing `{name}`"));
                        None
                    }
                    Some(t) if t.dims() != dims => {
                        problems.push(format!("`{name}` is {:?}, expected {dims:?}", t.dims()));
                        None
                    }
                    Some(t) => Some(t),
                }
            };
            let (m, v, step) = (
                take("m", s.var.dims()),
                take("v", s.var.dims()),
                take("step", &[1]),
            );
            if let (Some(m), Some(v), Some(step)) = (m, v, step) {
                let step = step.item()?;
                if step.is_nan() || step < 0.0 || step.fract() != 0.0 {
                    problems.push(format!("`optim.{}.step` is {step}", s.name));
                    continue;
                }
                let dev = s.var.device();
                new.push((m.to_device(dev)?, v.to_device(dev)?, step as u64));
            }
        }
        if !file.is_empty() {
            let extra: Vec<&String> = file.keys().take(10).collect();
            problems.push(format!("{} unexpected tensors, e.g. {extra:?}", file.len()));
        }
        if !problems.is_empty() {
            return Err(Error::file(path, problems.join("; ")));
        }
        for (s, (m, v, step)) in self.slots.iter_mut().zip(new) {
            (s.m, s.v, s.step) = (m, v, step);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    fn store() -> ParamStore {
        let s = ParamStore::new(3);
        s.param(
            "a.weight",
            &[2, 3],
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
        s.param("b", &[3], Init::Constant(0.5)).unwrap();
        s.buffer("a.weight_u", &[2], Init::UnitNormal).unwrap();
        s
    }

    /// loss = Σ (w · c)² with fixed c: a gradient that changes between steps.
    fn backward(s: &ParamStore) {
        for (i, (_, w)) in s.params().into_iter().enumerate() {
            let c = Var::constant(Tensor::randn(w.dims().to_vec(), 0.0, 1.0, 40 + i as u64));
            w.mul(&c)
                .unwrap()
                .powf(2.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        }
    }

    #[test]
    fn two_steps_match_hand_computed_updates() {
        let s = store();
        let cfg = AdamConfig {
            lr: 1e-2,
            betas: [0.5, 0.9],
            eps: 1e-3,
        };
        let mut opt = Adam::new(&s, cfg).unwrap();
        let w = s.get("b").unwrap();
        let c = Tensor::randn([3], 0.0, 1.0, 41).to_vec().unwrap();
        let mut x: Vec<f64> = w
            .value()
            .to_vec()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let (mut m, mut v) = (vec![0.0f64; 3], vec![0.0f64; 3]);
        for t in 1..=2 {
            s.zero_grad();
            backward(&s);
            opt.step(0.5).unwrap();
            let (b1, b2, lr, eps) = (0.5f64, 0.9f64, 0.5e-2f64, 1e-3f64);
            for i in 0..3 {
                let g = 2.0 * x[i] * (c[i] as f64).powi(2);
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                x[i] -= lr * mh / (vh.sqrt() + eps);
            }
            let got = w.value().to_vec().unwrap();
            for (a, b) in got.iter().zip(&x) {
                assert!((*a as f64 - b).abs() < 1e-6, "step {t}: {got:?} vs {x:?}");
            }
        }
        assert_eq!(opt.step_of("b"), Some(2));
        // Buffers are not optimised.
        assert_eq!(opt.step_of("a.weight_u"), None);
    }

    #[test]
    fn parameters_without_gradient_are_skipped() {
        let s = store();
        let mut opt = Adam::new(
            &s,
            AdamConfig {
                lr: 0.1,
                betas: [0.0, 0.9],
                eps: 1e-8,
            },
        )
        .unwrap();
        let b = s.get("b").unwrap();
        b.mul(&b).unwrap().sum_all().unwrap().backward().unwrap();
        let before = s.get("a.weight").unwrap().value().to_vec().unwrap();
        opt.step(1.0).unwrap();
        assert_eq!(s.get("a.weight").unwrap().value().to_vec().unwrap(), before);
        assert_eq!(
            (opt.step_of("a.weight"), opt.step_of("b")),
            (Some(0), Some(1))
        );
    }

    #[test]
    fn save_and_restore_resume_identically() {
        let dir = std::env::temp_dir().join(format!("engine-adam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optim.safetensors");
        let cfg = AdamConfig {
            lr: 1e-2,
            betas: [0.0, 0.9],
            eps: 1e-3,
        };
        let run = |s: &ParamStore, opt: &mut Adam, n: usize| {
            for _ in 0..n {
                s.zero_grad();
                backward(s);
                opt.step(1.0).unwrap();
            }
        };
        let (s1, s2) = (store(), store());
        let mut o1 = Adam::new(&s1, cfg).unwrap();
        run(&s1, &mut o1, 2);
        o1.save(&path).unwrap();
        // A fresh store and optimiser, given the same parameter values and the saved state.
        for (n, v) in s1.params() {
            s2.set(&n, v.value()).unwrap();
        }
        let mut o2 = Adam::new(&s2, cfg).unwrap();
        o2.load(&path).unwrap();
        run(&s1, &mut o1, 2);
        run(&s2, &mut o2, 2);
        for ((_, a), (_, b)) in s1.params().into_iter().zip(s2.params()) {
            assert_eq!(a.value().to_vec().unwrap(), b.value().to_vec().unwrap());
        }
        assert_eq!(o2.step_of("b"), Some(4));
        // A state file of another parameter set is refused, naming the file, and changes nothing.
        let other = ParamStore::new(1);
        other.param("b", &[4], Init::Zeros).unwrap();
        let mut o3 = Adam::new(&other, cfg).unwrap();
        let e = o3.load(&path).err().unwrap().to_string();
        assert!(
            e.contains("optim.safetensors") && e.contains("optim.b.m"),
            "{e}"
        );
        assert_eq!(o3.step_of("b"), Some(0));
        std::fs::remove_dir_all(&dir).ok();
    }
}

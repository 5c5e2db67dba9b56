//! Spectral normalisation with PyTorch's `torch.nn.utils.spectral_norm` semantics (dim 0):
//! W_mat = W reshaped to [C_out, rest]; persistent unit vectors u [C_out] and v [rest] are buffers
//! `<name>_u` and `<name>_v`. A training forward runs power iterations without gradient
//! (v = normalize(W_matᵀ u), u = normalize(W_mat v)) and stores u and v; σ = uᵀ W_mat v is computed
//! with gradient w.r.t. W (u, v constants) and the result is W / σ. An eval forward uses the
//! stored u and v unchanged, so it is deterministic after loading a checkpoint.

use super::init::Init;
use super::params::Scope;
use crate::autograd::{no_grad, Var};
use crate::error::{Error, Result};

/// PyTorch's default `eps` of `spectral_norm`.
pub const SPECTRAL_NORM_EPS: f32 = 1e-12;

/// The spectral normalisation of one weight.
pub struct SpectralNorm {
    weight: Var,
    u: Var,
    v: Var,
    rows: usize,
    cols: usize,
    eps: f32,
    power_iterations: usize,
}

impl SpectralNorm {
    /// Spectral norm of `weight` (rank >= 1, dim 0 = output channels), registering the buffers
    /// `<name>_u` [C_out] and `<name>_v` [rest] in `scope`, each a seeded normal vector scaled to
    /// unit norm (as PyTorch initialises them). One power iteration per training forward.
    pub fn new(scope: &Scope<'_>, name: &str, weight: &Var) -> Result<Self> {
        let dims = weight.dims().to_vec();
        if dims.is_empty() || dims.contains(&0) {
            return Err(Error::invalid(
                "spectral_norm",
                format!(
                    "`{}` has shape {dims:?}: needs rank >= 1 and no zero dims",
                    scope.name(name)
                ),
            ));
        }
        let rows = dims[0];
        let cols = dims[1..].iter().product::<usize>();
        let u = scope.buffer(&format!("{name}_u"), &[rows], Init::UnitNormal)?;
        let v = scope.buffer(&format!("{name}_v"), &[cols], Init::UnitNormal)?;
        Ok(SpectralNorm {
            weight: weight.clone(),
            u,
            v,
            rows,
            cols,
            eps: SPECTRAL_NORM_EPS,
            power_iterations: 1,
        })
    }

    /// Power iterations per training forward (PyTorch's `n_power_iterations`, default 1).
    pub fn with_power_iterations(mut self, n: usize) -> Self {
        self.power_iterations = n;
        self
    }

    /// The raw (un-normalised) weight.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The persistent left singular vector estimate [C_out].
    pub fn u(&self) -> &Var {
        &self.u
    }

    /// The persistent right singular vector estimate [rest].
    pub fn v(&self) -> &Var {
        &self.v
    }

    /// W / σ(W). With `training`, first runs the power iterations and updates u and v.
    pub fn forward(&self, training: bool) -> Result<Var> {
        if training {
            self.power_iterate(self.power_iterations)?;
        }
        let sigma = self.sigma_var()?;
        self.weight.div(&sigma)
    }

    /// The current σ estimate uᵀ W_mat v from the stored vectors (no iteration, no gradient).
    pub fn sigma(&self) -> Result<f32> {
        no_grad(|| self.sigma_var()?.value().item())
    }

    /// σ = uᵀ (W_mat v) as a [1] Var, differentiable w.r.t. W.
    fn sigma_var(&self) -> Result<Var> {
        let w_mat = self.weight.reshape(&[self.rows, self.cols])?;
        let u = Var::constant(self.u.value().reshape([self.rows, 1])?);
        let v = Var::constant(self.v.value().reshape([self.cols, 1])?);
        let wv = w_mat.matmul(&v)?; // [rows, 1]
        u.matmul_t(&wv, true, false)?.reshape(&[1])
    }

    /// `n` power iterations on the current weight, without gradient; stores u and v.
    pub fn power_iterate(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (u, v) = no_grad(|| -> Result<(Var, Var)> {
            let w_mat = Var::constant(self.weight.value().reshape([self.rows, self.cols])?);
            let mut u = Var::constant(self.u.value().reshape([self.rows, 1])?);
            let mut v = Var::constant(self.v.value().reshape([self.cols, 1])?);
            for _ in 0..n {
                v = self.normalize(&w_mat.matmul_t(&u, true, false)?)?;
                u = self.normalize(&w_mat.matmul(&v)?)?;
            }
            Ok((u, v))
        })?;
        let (u, v) = (
            u.value().reshape([self.rows])?,
            v.value().reshape([self.cols])?,
        );
        self.u.set_value(u)?;
        self.v.set_value(v)
    }

    /// x / sqrt(‖x‖² + eps²): PyTorch's x / max(‖x‖, eps) up to f32 rounding whenever ‖x‖ ≫ eps,
    /// and computed on the device without reading the norm back to the host.
    fn normalize(&self, x: &Var) -> Result<Var> {
        let norm = x
            .mul(x)?
            .sum_all()?
            .add_scalar(self.eps * self.eps)?
            .sqrt()?;
        x.div(&norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamStore;
    use crate::tensor::Tensor;

    /// Naive f64 reference of one PyTorch power iteration step; returns (u, v, sigma).
    fn reference_step(w: &[f32], rows: usize, u: &[f32]) -> (Vec<f64>, Vec<f64>, f64) {
        let cols = w.len() / rows;
        let norm = |x: Vec<f64>| {
            let n = x.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            x.into_iter().map(|a| a / n).collect::<Vec<_>>()
        };
        let v = norm(
            (0..cols)
                .map(|j| {
                    (0..rows)
                        .map(|i| f64::from(w[i * cols + j]) * f64::from(u[i]))
                        .sum()
                })
                .collect(),
        );
        let u2 = norm(
            (0..rows)
                .map(|i| (0..cols).map(|j| f64::from(w[i * cols + j]) * v[j]).sum())
                .collect(),
        );
        let sigma = (0..rows)
            .map(|i| {
                u2[i]
                    * (0..cols)
                        .map(|j| f64::from(w[i * cols + j]) * v[j])
                        .sum::<f64>()
            })
            .sum();
        (u2, v, sigma)
    }

    #[test]
    fn one_training_step_matches_reference_on_awkward_shape() {
        let store = ParamStore::new(11);
        let s = store.scope("d").scope("conv_1");
        let w = s
            .param(
                "weight",
                &[5, 3, 1, 3],
                Init::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
            )
            .unwrap();
        let sn = SpectralNorm::new(&s, "weight", &w).unwrap();
        assert_eq!(sn.u().dims(), &[5]);
        assert_eq!(sn.v().dims(), &[9]);
        let u0 = sn.u().value().to_vec().unwrap();
        let wv = w.value().to_vec().unwrap();
        let (u1, v1, sigma) = reference_step(&wv, 5, &u0);
        let out = sn.forward(true).unwrap();
        assert_eq!(out.dims(), &[5, 3, 1, 3]);
        for (a, b) in sn.u().value().to_vec().unwrap().iter().zip(&u1) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "u {a} vs {b}");
        }
        for (a, b) in sn.v().value().to_vec().unwrap().iter().zip(&v1) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "v {a} vs {b}");
        }
        for (o, x) in out.value().to_vec().unwrap().iter().zip(&wv) {
            let want = f64::from(*x) / sigma;
            assert!(
                (f64::from(*o) - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{o} vs {want}"
            );
        }
        assert!((f64::from(sn.sigma().unwrap()) - sigma).abs() < 1e-5 * sigma);
    }

    #[test]
    fn eval_does_not_touch_u_and_v() {
        let store = ParamStore::new(3);
        let w = store
            .param(
                "w",
                &[4, 2],
                Init::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
            )
            .unwrap();
        let sn = SpectralNorm::new(&store.root(), "w", &w).unwrap();
        let (u0, v0) = (
            sn.u().value().to_vec().unwrap(),
            sn.v().value().to_vec().unwrap(),
        );
        let a = sn.forward(false).unwrap().value().to_vec().unwrap();
        let b = sn.forward(false).unwrap().value().to_vec().unwrap();
        assert_eq!(a, b);
        assert_eq!(sn.u().value().to_vec().unwrap(), u0);
        assert_eq!(sn.v().value().to_vec().unwrap(), v0);
        sn.forward(true).unwrap();
        assert_ne!(sn.u().value().to_vec().unwrap(), u0);
    }

    #[test]
    fn rejects_scalar_weights() {
        let store = ParamStore::new(0);
        let w = store.param("g", &[], Init::Zeros).unwrap();
        assert!(matches!(
            SpectralNorm::new(&store.root(), "g", &w),
            Err(Error::Invalid { .. })
        ));
        // A rank-1 weight is a [n, 1] matrix: σ = ‖w‖.
        let w = Var::param(Tensor::from_vec(vec![3.0, 4.0], [2]).unwrap());
        let sn = SpectralNorm::new(&store.root(), "w", &w)
            .unwrap()
            .with_power_iterations(3);
        let out = sn.forward(true).unwrap().value().to_vec().unwrap();
        assert!(
            (out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6,
            "{out:?}"
        );
    }
}

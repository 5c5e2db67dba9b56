//! Fréchet Inception Distance: Gaussians fitted to 2048-d Inception pool features
//! (`model::inception`) and the Fréchet distance between them, all in f64:
//!
//! FID = |μ₁ − μ₂|² + tr C₁ + tr C₂ − 2 tr (C₁^½ C₂ C₁^½)^½.
//!
//! The last term uses a symmetric eigen-decomposition instead of a general matrix square root:
//! C₁ = V Λ Vᵀ, and C₁^½ C₂ C₁^½ = V (Λ^½ Vᵀ C₂ V Λ^½) Vᵀ is symmetric PSD with the eigenvalues of
//! M = Λ^½ (Vᵀ C₂ V) Λ^½, so the trace is Σ √μᵢ over M's eigenvalues (round-off negatives → 0).
//! Eigen-solver: Householder tridiagonalisation, then implicit QL with Wilkinson shifts.
//! Covariances are unbiased (n − 1), as `np.cov` in TF-FID and pytorch-fid.
//!
//! With fewer samples than dimensions (a video's few hundred frames against 2048 features),
//! `fid_from_features` works in sample space instead: with centred rows Xa, Xb, C₁C₂ has the
//! nonzero eigenvalues of K Kᵀ / ((na−1)(nb−1)), K = Xb Xaᵀ, so the trace term is the sum of K's
//! singular values: the same number from an nb×nb eigenproblem instead of two 2048×2048 ones.

use crate::error::{Error, Result};
use crate::metrics::extra::ExtraMetric;
use crate::model::inception::{InceptionV3, FEATURE_DIM};
use crate::tensor::Tensor;
use crate::video::Frame;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

mod eigen;
pub use eigen::sym_eigen;

/// Mean and covariance (row-major d×d) of a feature set.
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub dim: usize,
    pub count: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Fits `feats` (n rows of `dim`, row-major); n ≥ 2, every value finite.
    pub fn fit(feats: &[f32], dim: usize) -> Result<Gaussian> {
        if dim == 0 || !feats.len().is_multiple_of(dim) || feats.len() / dim < 2 {
            return Err(Error::shape(
                "fid",
                format!(
                    "{} values of dim {dim}: need at least 2 whole rows",
                    feats.len()
                ),
            ));
        }
        if let Some(i) = feats.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "fid",
                format!("feature value {i} is not finite"),
            ));
        }
        let n = feats.len() / dim;
        let mut mean = vec![0.0f64; dim];
        for row in feats.chunks(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred: Vec<f64> = feats
            .chunks(dim)
            .flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m))
            .collect();
        // cov = Xcᵀ Xc / (n − 1)
        let mut cov = vec![0.0f64; dim * dim];
        gemm(&centred, true, &centred, false, (dim, n, dim), &mut cov);
        cov.iter_mut().for_each(|c| *c /= (n - 1) as f64);
        Ok(Gaussian {
            dim,
            count: n,
            mean,
            cov,
        })
    }
}

/// C = op(A)·op(B) for row-major A (m×k, or k×m when `ta`), B (k×n, or n×k when `tb`).
fn gemm(a: &[f64], ta: bool, b: &[f64], tb: bool, (m, k, n): (usize, usize, usize), c: &mut [f64]) {
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the strides describe matrices inside `a`, `b` and `c`, whose lengths the callers size
    // as m·k, k·n and m·n.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The Fréchet distance between two Gaussians of the same dimension.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    let d = a.dim;
    if b.dim != d || a.cov.len() != d * d || b.cov.len() != d * d {
        return Err(Error::shape(
            "fid",
            format!("Gaussians of dim {} and {} differ", a.dim, b.dim),
        ));
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let trace = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    let (lam, v) = sym_eigen(&a.cov, d, true)?;
    let v = v.ok_or_else(|| Error::invalid("fid", "eigenvectors not computed"))?;
    // v holds eigenvectors as rows (vᵢ = row i): B = V C₂ Vᵀ in that storage is Vᵀ C₂ V.
    let mut t = vec![0.0f64; d * d];
    gemm(&v, false, &b.cov, false, (d, d, d), &mut t);
    let mut m = vec![0.0f64; d * d];
    gemm(&t, false, &v, true, (d, d, d), &mut m);
    let s: Vec<f64> = lam.iter().map(|&l| l.max(0.0).sqrt()).collect();
    m.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        for (j, x) in row.iter_mut().enumerate() {
            *x *= s[i] * s[j];
        }
    });
    symmetrise(&mut m, d);
    let (mu, _) = sym_eigen(&m, d, false)?;
    let tr_sqrt: f64 = mu.iter().map(|&x| x.max(0.0).sqrt()).sum();
    Ok((mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * tr_sqrt).max(0.0))
}

/// FID between two feature sets (rows of `dim`); in sample space when both have fewer rows than
/// `dim` (see the module doc).
pub fn fid_from_features(a: &[f32], b: &[f32], dim: usize) -> Result<f64> {
    let (ga, gb) = (Gaussian::fit(a, dim)?, Gaussian::fit(b, dim)?);
    if ga.count.max(gb.count) >= dim {
        return frechet_distance(&ga, &gb);
    }
    let centred = |x: &[f32], g: &Gaussian| -> Vec<f64> {
        x.chunks(dim)
            .flat_map(|row| row.iter().zip(&g.mean).map(|(&v, m)| v as f64 - m))
            .collect()
    };
    let (xa, xb) = (centred(a, &ga), centred(b, &gb));
    let (na, nb) = (ga.count, gb.count);
    let mut k = vec![0.0f64; nb * na];
    gemm(&xb, false, &xa, true, (nb, dim, na), &mut k);
    let mut kkt = vec![0.0f64; nb * nb];
    gemm(&k, false, &k, true, (nb, na, nb), &mut kkt);
    symmetrise(&mut kkt, nb);
    let (mu, _) = sym_eigen(&kkt, nb, false)?;
    let norm = (((na - 1) * (nb - 1)) as f64).sqrt();
    let tr_sqrt: f64 = mu.iter().map(|&x| x.max(0.0).sqrt()).sum::<f64>() / norm;
    let trace = |g: &Gaussian| (0..dim).map(|i| g.cov[i * dim + i]).sum::<f64>();
    let mean_term: f64 = ga
        .mean
        .iter()
        .zip(&gb.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    Ok((mean_term + trace(&ga) + trace(&gb) - 2.0 * tr_sqrt).max(0.0))
}

/// Averages the mirrored entries of a square matrix (products that are symmetric in exact
/// arithmetic differ in the last bits; the eigen-solver reads both halves).
fn symmetrise(m: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let avg = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = avg;
            m[j * n + i] = avg;
        }
    }
}

/// The principal square root of a symmetric PSD matrix (row-major n×n), negative eigenvalues from
/// round-off clipped to 0.
pub fn sqrtm_psd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let (lam, v) = sym_eigen(a, n, true)?;
    let v = v.ok_or_else(|| Error::invalid("sqrtm_psd", "eigenvectors not computed"))?;
    // S = Σ √λₖ vₖ vₖᵀ = Vᵀ diag(√λ) V with eigenvectors as rows of `v`.
    let scaled: Vec<f64> = v
        .chunks(n)
        .zip(&lam)
        .flat_map(|(row, &l)| row.iter().map(move |x| x * l.max(0.0).sqrt()))
        .collect();
    let mut s = vec![0.0f64; n * n];
    gemm(&v, true, &scaled, false, (n, n, n), &mut s);
    Ok(s)
}

/// `engine eval`'s FID between the predicted and the true frames, with the Inception weights of
/// `weights_dir/inception.safetensors`. The network lives on a worker thread (it holds `Rc`-based
/// `Var`s, which are not `Send`); pairs reach it through a bounded channel.
pub struct FidMetric {
    tx: Option<mpsc::SyncSender<(Frame, Frame)>>,
    worker: Option<JoinHandle<Result<Features>>>,
}

/// Features of the predictions and of the truths, rows of `FEATURE_DIM`.
type Features = (Vec<f32>, Vec<f32>);

/// Images per Inception forward on the worker.
const BATCH: usize = 8;

impl FidMetric {
    /// Loads the weights (a missing file is an error naming it and `tools/weights/fetch.py`).
    pub fn new(weights_dir: &Path) -> Result<FidMetric> {
        let path: PathBuf = weights_dir.join("inception.safetensors");
        crate::model::vgg19::require_weights(&path)?;
        let (tx, rx) = mpsc::sync_channel::<(Frame, Frame)>(2 * BATCH);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let worker = std::thread::spawn(move || -> Result<Features> {
            let net = match InceptionV3::load(&path) {
                Ok(net) => {
                    let _ = ready_tx.send(Ok(()));
                    net
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(Error::file(&path, e.to_string())));
                    return Ok((Vec::new(), Vec::new()));
                }
            };
            let (mut pred, mut truth) = (Vec::new(), Vec::new());
            let mut batch: Vec<(Frame, Frame)> = Vec::with_capacity(BATCH);
            for pair in rx {
                batch.push(pair);
                if batch.len() == BATCH {
                    embed(&net, &batch, &mut pred, &mut truth)?;
                    batch.clear();
                }
            }
            embed(&net, &batch, &mut pred, &mut truth)?;
            Ok((pred, truth))
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(FidMetric {
                tx: Some(tx),
                worker: Some(worker),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::invalid("fid", "the Inception worker stopped")),
        }
    }
}

/// Features of the frames of `batch` (predictions and truths), appended to `pred` / `truth`.
fn embed(
    net: &InceptionV3,
    batch: &[(Frame, Frame)],
    pred: &mut Vec<f32>,
    truth: &mut Vec<f32>,
) -> Result<()> {
    let preds: Vec<&Frame> = batch.iter().map(|p| &p.0).collect();
    let truths: Vec<&Frame> = batch.iter().map(|p| &p.1).collect();
    for (frames, out) in [(preds, pred), (truths, truth)] {
        // One forward per run of same-sized frames.
        for run in frames.chunk_by(|a, b| a.size() == b.size()) {
            out.extend(net.features(&frames_tensor(run)?)?.to_vec()?);
        }
    }
    Ok(())
}

/// Same-sized RGB8 frames as [B, 3, H, W] in [-1, 1] (the engine's image convention).
fn frames_tensor(frames: &[&Frame]) -> Result<Tensor> {
    let (w, h) = (frames[0].width() as usize, frames[0].height() as usize);
    let plane = h * w;
    let mut planar = vec![0.0f32; frames.len() * 3 * plane];
    for (f, dst) in frames.iter().zip(planar.chunks_mut(3 * plane)) {
        for (i, px) in f.data().chunks_exact(3).enumerate() {
            for c in 0..3 {
                dst[c * plane + i] = px[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_vec(planar, [frames.len(), 3, h, w])
}

impl ExtraMetric for FidMetric {
    fn name(&self) -> &str {
        "fid"
    }

    fn push(&mut self, pred: &Frame, truth: &Frame) -> Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::invalid("fid", "push after finish"))?;
        if tx.send((pred.clone(), truth.clone())).is_err() {
            // The worker stopped early: its error comes out of finish.
            return self.finish().map(|_| ());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<(String, f64)>> {
        drop(self.tx.take());
        let worker = self
            .worker
            .take()
            .ok_or_else(|| Error::invalid("fid", "finish called twice"))?;
        let (pred, truth) = worker
            .join()
            .map_err(|_| Error::invalid("fid", "the Inception worker panicked"))??;
        if pred.len() < 2 * FEATURE_DIM {
            return Err(Error::invalid(
                "fid",
                format!(
                    "needs at least 2 frame pairs, got {}",
                    pred.len() / FEATURE_DIM
                ),
            ));
        }
        Ok(vec![(
            "fid".to_string(),
            fid_from_features(&pred, &truth, FEATURE_DIM)?,
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::eigen::noise;
    use super::*;

    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        c
    }

    /// A random symmetric PSD matrix of rank ≤ r: G Gᵀ with G n×r.
    fn psd(n: usize, r: usize, seed: u64) -> Vec<f64> {
        let g = noise(n * r, seed);
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..r).map(|k| g[i * r + k] * g[j * r + k]).sum();
            }
        }
        c
    }

    /// A random orthogonal matrix: the eigenvectors of a random symmetric matrix.
    fn orthogonal(n: usize, seed: u64) -> Vec<f64> {
        sym_eigen(&psd(n, n, seed), n, true).unwrap().1.unwrap()
    }

    #[test]
    fn sqrtm_squares_back_including_rank_deficient() {
        for (n, r) in [(1, 1), (4, 4), (9, 3), (30, 30)] {
            let a = psd(n, r, n as u64 + 10);
            let s = sqrtm_psd(&a, n).unwrap();
            let ss = matmul(&s, &s, n);
            let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (x, y) in ss.iter().zip(&a) {
                assert!((x - y).abs() < 1e-9 * scale.max(1.0), "n={n} r={r}");
            }
        }
    }

    /// Gaussians from exact means and covariances.
    fn gaussian(mean: Vec<f64>, cov: Vec<f64>) -> Gaussian {
        Gaussian {
            dim: mean.len(),
            count: 0,
            mean,
            cov,
        }
    }

    #[test]
    fn frechet_matches_closed_forms() {
        // Commuting covariances C₁ = R diag(a) Rᵀ, C₂ = R diag(b) Rᵀ: the distance is
        // |μ₁−μ₂|² + Σ (√aᵢ − √bᵢ)².
        let n = 7;
        let r = orthogonal(n, 3);
        let (a, b): (Vec<f64>, Vec<f64>) = (0..n)
            .map(|i| {
                (
                    0.5 + i as f64,
                    if i == 2 { 0.0 } else { 3.0 / (1.0 + i as f64) },
                )
            })
            .unzip();
        let rot = |diag: &[f64]| -> Vec<f64> {
            // r holds the basis vectors as rows: C = rᵀ diag r.
            let mut c = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    c[i * n + j] = (0..n).map(|k| r[k * n + i] * diag[k] * r[k * n + j]).sum();
                }
            }
            c
        };
        let (m1, m2) = (noise(n, 8), noise(n, 9));
        let want: f64 = m1
            .iter()
            .zip(&m2)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            + a.iter()
                .zip(&b)
                .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
                .sum::<f64>();
        let got = frechet_distance(&gaussian(m1, rot(&a)), &gaussian(m2, rot(&b))).unwrap();
        assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");

        // Non-commuting 2×2: tr (C₁C₂)^½ = √(tr C₁C₂ + 2 √(det C₁ det C₂)).
        let c1 = [2.0, 0.7, 0.7, 1.0];
        let c2 = [0.5, -0.2, -0.2, 3.0];
        let p = matmul(&c1, &c2, 2);
        let det = |c: &[f64]| c[0] * c[3] - c[1] * c[2];
        let tr_sqrt = (p[0] + p[3] + 2.0 * (det(&c1) * det(&c2)).sqrt()).sqrt();
        let want = 1.0 + 4.0 + (c1[0] + c1[3]) + (c2[0] + c2[3]) - 2.0 * tr_sqrt;
        let got = frechet_distance(
            &gaussian(vec![0.0, 1.0], c1.to_vec()),
            &gaussian(vec![1.0, -1.0], c2.to_vec()),
        )
        .unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");

        // Identical Gaussians, even rank-deficient: 0.
        let c = psd(12, 5, 4);
        let g = gaussian(noise(12, 5), c);
        assert!(frechet_distance(&g, &g).unwrap() < 1e-9);
        assert!(frechet_distance(&g, &gaussian(vec![0.0; 3], vec![1.0; 9])).is_err());
    }

    #[test]
    fn fid_of_sampled_gaussians_approaches_the_closed_form() {
        // x ~ N(0, I₃), y = 2x + (1, 0, 0): FID = 1 + 3·(1 − 2)² = 4.
        let n = 20_000;
        let z = noise(3 * n, 21);
        // Sums of 4 uniforms, rescaled to unit variance: close enough to Gaussian for moments.
        let x: Vec<f32> = z
            .chunks(3)
            .zip(noise(3 * n, 22).chunks(3))
            .zip(noise(3 * n, 23).chunks(3).zip(noise(3 * n, 24).chunks(3)))
            .flat_map(|((a, b), (c, d))| {
                (0..3).map(move |i| ((a[i] + b[i] + c[i] + d[i]) * 0.75f64.sqrt()) as f32)
            })
            .collect();
        let y: Vec<f32> = x
            .chunks(3)
            .flat_map(|r| [2.0 * r[0] + 1.0, 2.0 * r[1], 2.0 * r[2]])
            .collect();
        let fid = fid_from_features(&x, &y, 3).unwrap();
        assert!((fid - 4.0).abs() < 0.1, "{fid}");
        let g = Gaussian::fit(&x, 3).unwrap();
        assert_eq!(g.count, n);
        assert!(g.mean.iter().all(|m| m.abs() < 0.03), "{:?}", g.mean);
        assert!((g.cov[0] - 1.0).abs() < 0.05 && g.cov[1].abs() < 0.05);
        // Unbiased covariance, by hand on two rows.
        let g = Gaussian::fit(&[1.0, 2.0, 3.0, 6.0], 2).unwrap();
        assert_eq!(g.mean, vec![2.0, 4.0]);
        assert_eq!(g.cov, vec![2.0, 4.0, 4.0, 8.0]);
        // Bad inputs.
        assert!(Gaussian::fit(&[1.0, 2.0], 2).is_err());
        assert!(Gaussian::fit(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(Gaussian::fit(&[1.0, f32::NAN, 3.0, 4.0], 2).is_err());
        assert!(Gaussian::fit(&[], 0).is_err());
    }

    #[test]
    fn sample_space_fid_equals_the_full_computation() {
        // Fewer rows than dimensions (rank-deficient covariances), unequal counts.
        let d = 40;
        for (na, nb, seed) in [(10, 15, 1), (2, 39, 2), (25, 3, 3)] {
            let a: Vec<f32> = noise(na * d, seed).iter().map(|&v| v as f32).collect();
            let b: Vec<f32> = noise(nb * d, seed + 50)
                .iter()
                .enumerate()
                .map(|(i, &v)| (1.5 * v + 0.1 * (i % d) as f64) as f32)
                .collect();
            let fast = fid_from_features(&a, &b, d).unwrap();
            let full = frechet_distance(
                &Gaussian::fit(&a, d).unwrap(),
                &Gaussian::fit(&b, d).unwrap(),
            )
            .unwrap();
            assert!(
                (fast - full).abs() < 1e-9 * full,
                "{na}/{nb}: {fast} vs {full}"
            );
            assert!(fid_from_features(&a, &a, d).unwrap() < 1e-9);
        }
    }

    #[test]
    fn metric_without_weights_says_how_to_fetch() {
        let e = FidMetric::new(Path::new("/nonexistent/weights"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("inception.safetensors") && e.contains("fetch.py"),
            "{e}"
        );
    }

    #[test]
    fn frames_become_planar_tensors_in_unit_range() {
        let f = Frame::new(2, 1, vec![0, 255, 51, 102, 153, 204]).unwrap();
        let t = frames_tensor(&[&f, &f]).unwrap();
        assert_eq!(t.dims(), &[2, 3, 1, 2]);
        let v = t.to_vec().unwrap();
        let want = [0.0f32, 102.0, 255.0, 153.0, 51.0, 204.0].map(|x| x / 127.5 - 1.0);
        for (a, b) in v[..6].iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(&v[..6], &v[6..]);
    }
}

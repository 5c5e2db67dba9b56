//! Parameter initialisation. Every random init is seeded from the store's base seed and the
//! parameter's full name (a stable hash), so values do not depend on registration order and are
//! the same on every machine.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How a parameter or buffer gets its first value.
#[derive(Clone, Debug)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f32),
    /// Normal(mean, std).
    Normal {
        mean: f32,
        std: f32,
    },
    /// PyTorch `xavier_normal_`: std = gain·sqrt(2 / (fan_in + fan_out)).
    XavierNormal {
        gain: f32,
    },
    /// Normal(0, 1) scaled to unit L2 norm over all elements (eps 1e-12): spectral-norm vectors.
    UnitNormal,
    /// An explicit value; its shape must be the registered shape.
    Value(Tensor),
}

/// Fans as PyTorch's `_calculate_fan_in_and_fan_out`: for a weight [C_out, C_in/g, k…],
/// fan_in = C_in/g·Πk and fan_out = C_out·Πk. Needs rank ≥ 2 (as PyTorch).
pub fn fan_in_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::invalid(
            "fan_in_out",
            format!("fans need a weight of rank >= 2, got shape {shape:?}"),
        ));
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// A per-parameter seed: FNV-1a over the name, mixed with the base seed by SplitMix64's
/// finaliser. Stable across runs, platforms and registration orders.
pub fn param_seed(base: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = base ^ h.rotate_left(17);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The std of Xavier-normal for `shape` with `gain`.
pub fn xavier_std(shape: &[usize], gain: f32) -> Result<f32> {
    let (fan_in, fan_out) = fan_in_out(shape)?;
    if fan_in + fan_out == 0 {
        return Err(Error::invalid(
            "xavier_normal",
            format!("fan_in + fan_out is 0 for shape {shape:?}"),
        ));
    }
    Ok(gain * (2.0 / (fan_in + fan_out) as f64).sqrt() as f32)
}

/// Makes the initial value of shape `shape` with `seed` (used only by the random inits).
pub fn init_tensor(init: &Init, shape: &[usize], seed: u64) -> Result<Tensor> {
    let t = match init {
        Init::Zeros => Tensor::zeros(shape),
        Init::Ones => Tensor::ones(shape),
        Init::Constant(c) => Tensor::full(*c, shape),
        Init::Normal { mean, std } => {
            if !(std.is_finite() && *std >= 0.0 && mean.is_finite()) {
                return Err(Error::invalid(
                    "init_normal",
                    format!("mean {mean} / std {std} must be finite, std >= 0"),
                ));
            }
            Tensor::randn(shape, *mean, *std, seed)
        }
        Init::XavierNormal { gain } => Tensor::randn(shape, 0.0, xavier_std(shape, *gain)?, seed),
        Init::UnitNormal => unit_normal(shape, seed)?,
        Init::Value(v) => {
            if v.dims() != shape {
                return Err(Error::shape(
                    "init_value",
                    format!(
                        "value of shape {:?} for a parameter of shape {shape:?}",
                        v.dims()
                    ),
                ));
            }
            v.clone()
        }
    };
    Ok(t)
}

/// Normal(0,1) divided by max(‖x‖₂, 1e-12), as PyTorch's spectral norm initialises u and v.
fn unit_normal(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut t = Tensor::randn(shape, 0.0, 1.0, seed);
    let data = t.data_mut()?;
    let norm = data
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let scale = (1.0 / norm.max(1e-12)) as f32;
    data.iter_mut().for_each(|x| *x *= scale);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(t: &Tensor) -> (f64, f64) {
        let v = t.cpu_data().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn fans_follow_pytorch() {
        // conv [C_out, C_in/g, kH, kW]
        assert_eq!(fan_in_out(&[64, 3, 3, 5]).unwrap(), (3 * 15, 64 * 15));
        // linear [out, in]
        assert_eq!(fan_in_out(&[7, 11]).unwrap(), (11, 7));
        // 1-sized dims
        assert_eq!(fan_in_out(&[1, 1, 1, 1]).unwrap(), (1, 1));
        assert!(matches!(fan_in_out(&[5]), Err(Error::Invalid { .. })));
        assert!(matches!(fan_in_out(&[]), Err(Error::Invalid { .. })));
        assert!(matches!(
            xavier_std(&[0, 0, 3, 3], 1.0),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn xavier_normal_std_matches_formula() {
        let shape = [33, 17, 3, 3];
        let gain = 0.02;
        let t = init_tensor(&Init::XavierNormal { gain }, &shape, 5).unwrap();
        let want = 0.02 * (2.0f64 / ((17 * 9 + 33 * 9) as f64)).sqrt();
        let (mean, std) = moments(&t);
        let n = t.numel() as f64;
        // sample std has relative sd ≈ 1/sqrt(2n) ≈ 0.45 %; allow ~7 sd.
        assert!((std / want - 1.0).abs() < 0.03, "std {std} want {want}");
        assert!(mean.abs() < 5.0 * want / n.sqrt(), "mean {mean}");
    }

    #[test]
    fn seeds_depend_on_name_and_base_only() {
        assert_eq!(
            param_seed(3, "g.conv.weight"),
            param_seed(3, "g.conv.weight")
        );
        assert_ne!(param_seed(3, "g.conv.weight"), param_seed(3, "g.conv.bias"));
        assert_ne!(
            param_seed(3, "g.conv.weight"),
            param_seed(4, "g.conv.weight")
        );
        assert_ne!(param_seed(0, "a"), param_seed(0, "b"));
    }

    #[test]
    fn deterministic_inits_and_value_checks() {
        let a = init_tensor(&Init::Constant(1.5), &[2, 3], 0).unwrap();
        assert!(a.cpu_data().unwrap().iter().all(|&x| x == 1.5));
        let z = init_tensor(&Init::Zeros, &[], 0).unwrap();
        assert_eq!(z.dims(), &[] as &[usize]);
        assert_eq!(z.item().unwrap(), 0.0);
        let u = init_tensor(&Init::UnitNormal, &[7], 9).unwrap();
        let n: f64 = u
            .cpu_data()
            .unwrap()
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum();
        assert!((n.sqrt() - 1.0).abs() < 1e-6);
        let v = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
        assert!(init_tensor(&Init::Value(v.clone()), &[2], 0).is_ok());
        assert!(matches!(
            init_tensor(&Init::Value(v), &[1, 2], 0),
            Err(Error::Shape { .. })
        ));
        let bad = Init::Normal {
            mean: 0.0,
            std: f32::NAN,
        };
        assert!(matches!(
            init_tensor(&bad, &[2], 0),
            Err(Error::Invalid { .. })
        ));
    }
}

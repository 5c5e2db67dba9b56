//! Elementwise ops: unary maps and their fused backward, broadcasting binary ops, PReLU.

use super::layout::{for_each_row, GRAIN};
use crate::backend::checks::{broadcast_strides, prelu_layout, same_shape};
use crate::backend::*;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use rayon::prelude::*;

fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
    x.par_iter().with_min_len(GRAIN).map(|&v| f(v)).collect()
}

fn map3(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    f: impl Fn(f32, f32, f32) -> f32 + Sync + Send,
) -> Vec<f32> {
    x.par_iter()
        .zip(y)
        .zip(dy)
        .with_min_len(GRAIN)
        .map(|((&x, &y), &g)| f(x, y, g))
        .collect()
}

pub fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let xd = x.cpu_data()?;
    let out = match op {
        UnaryOp::Neg => map1(xd, |v| -v),
        UnaryOp::AddScalar(c) => map1(xd, move |v| v + c),
        UnaryOp::MulScalar(c) => map1(xd, move |v| v * c),
        UnaryOp::PowScalar(2.0) => map1(xd, |v| v * v),
        UnaryOp::PowScalar(p) => map1(xd, move |v| v.powf(p)),
        // Written so that NaN passes through, as in PyTorch.
        UnaryOp::Relu => map1(xd, |v| if v < 0.0 { 0.0 } else { v }),
        UnaryOp::LeakyRelu(s) => map1(xd, move |v| if v > 0.0 { v } else { v * s }),
        UnaryOp::Tanh => map1(xd, f32::tanh),
        UnaryOp::Sigmoid => map1(xd, |v| 1.0 / (1.0 + (-v).exp())),
        UnaryOp::Exp => map1(xd, f32::exp),
        UnaryOp::Log => map1(xd, f32::ln),
        UnaryOp::Sqrt => map1(xd, f32::sqrt),
        UnaryOp::Abs => map1(xd, f32::abs),
    };
    Tensor::from_vec(out, x.shape().clone())
}

pub fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape("unary_backward", x, y)?;
    same_shape("unary_backward", x, dy)?;
    let (xd, yd, gd) = (x.cpu_data()?, y.cpu_data()?, dy.cpu_data()?);
    let out = match op {
        UnaryOp::Neg => map3(xd, yd, gd, |_, _, g| -g),
        UnaryOp::AddScalar(_) => gd.to_vec(),
        UnaryOp::MulScalar(c) => map3(xd, yd, gd, move |_, _, g| g * c),
        // PyTorch returns zeros for exponent 0 (instead of 0·x⁻¹, NaN at 0).
        UnaryOp::PowScalar(0.0) => vec![0.0; gd.len()],
        UnaryOp::PowScalar(p) => map3(xd, yd, gd, move |x, _, g| g * p * x.powf(p - 1.0)),
        UnaryOp::Relu => map3(xd, yd, gd, |x, _, g| if x > 0.0 { g } else { 0.0 }),
        UnaryOp::LeakyRelu(s) => map3(xd, yd, gd, move |x, _, g| if x > 0.0 { g } else { g * s }),
        UnaryOp::Tanh => map3(xd, yd, gd, |_, y, g| g * (1.0 - y * y)),
        UnaryOp::Sigmoid => map3(xd, yd, gd, |_, y, g| g * y * (1.0 - y)),
        UnaryOp::Exp => map3(xd, yd, gd, |_, y, g| g * y),
        UnaryOp::Log => map3(xd, yd, gd, |x, _, g| g / x),
        UnaryOp::Sqrt => map3(xd, yd, gd, |_, y, g| g * 0.5 / y),
        UnaryOp::Abs => map3(xd, yd, gd, |x, _, g| {
            if x > 0.0 {
                g
            } else if x < 0.0 {
                -g
            } else {
                0.0
            }
        }),
    };
    Tensor::from_vec(out, x.shape().clone())
}

pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match op {
        BinaryOp::Add => binary_with("add", a, b, |p, q| p + q),
        BinaryOp::Sub => binary_with("sub", a, b, |p, q| p - q),
        BinaryOp::Mul => binary_with("mul", a, b, |p, q| p * q),
        BinaryOp::Div => binary_with("div", a, b, |p, q| p / q),
    }
}

fn binary_with<F>(name: &'static str, a: &Tensor, b: &Tensor, f: F) -> Result<Tensor>
where
    F: Fn(f32, f32) -> f32 + Sync + Send + Copy,
{
    let (ad, bd) = (a.cpu_data()?, b.cpu_data()?);
    if a.dims() == b.dims() {
        let out = ad
            .par_iter()
            .zip(bd)
            .with_min_len(GRAIN)
            .map(|(&p, &q)| f(p, q))
            .collect();
        return Tensor::from_vec(out, a.shape().clone());
    }
    let shape = Shape::broadcast(name, a.shape(), b.shape())?;
    let sa = broadcast_strides(name, a.dims(), shape.dims())?;
    let sb = broadcast_strides(name, b.dims(), shape.dims())?;
    let mut out = vec![0.0; shape.numel()];
    for_each_row(
        &mut out,
        shape.dims(),
        [&sa, &sb],
        |row, [oa, ob], [ia, ib]| {
            let n = row.len();
            // The usual inner patterns get their own loops so they vectorise.
            match (ia, ib) {
                (1, 1) => row
                    .iter_mut()
                    .zip(&ad[oa..oa + n])
                    .zip(&bd[ob..ob + n])
                    .for_each(|((o, &p), &q)| *o = f(p, q)),
                (1, 0) => row
                    .iter_mut()
                    .zip(&ad[oa..oa + n])
                    .for_each(|(o, &p)| *o = f(p, bd[ob])),
                (0, 1) => row
                    .iter_mut()
                    .zip(&bd[ob..ob + n])
                    .for_each(|(o, &q)| *o = f(ad[oa], q)),
                _ => row
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = f(ad[oa + j * ia], bd[ob + j * ib])),
            }
        },
    );
    Tensor::from_vec(out, shape)
}

/// (number of slopes, elements per task row) of PReLU: per-channel slopes (alpha [C], or any
/// shape of C elements such as [1, C, 1, 1]) walk x by (n, c) rows; a single slope covers the
/// whole tensor, so its rows are just work chunks.
fn prelu_rows(op: &'static str, x: &Tensor, alpha: &Tensor) -> Result<(usize, usize)> {
    let (c, inner) = prelu_layout(op, x, alpha)?;
    Ok((c, if c == 1 { GRAIN } else { inner }))
}

pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let (c, row) = prelu_rows("prelu", x, alpha)?;
    let (xd, ad) = (x.cpu_data()?, alpha.cpu_data()?);
    let mut out = vec![0.0; xd.len()];
    if !out.is_empty() {
        out.par_chunks_mut(row)
            .zip(xd.par_chunks(row))
            .with_min_len((GRAIN / row).max(1))
            .enumerate()
            .for_each(|(r, (o, xr))| {
                let a = ad[r % c];
                o.iter_mut()
                    .zip(xr)
                    .for_each(|(o, &v)| *o = if v > 0.0 { v } else { a * v });
            });
    }
    Tensor::from_vec(out, x.shape().clone())
}

pub fn prelu_backward(x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let (c, row) = prelu_rows("prelu_backward", x, alpha)?;
    same_shape("prelu_backward", x, dy)?;
    let (xd, ad, gd) = (x.cpu_data()?, alpha.cpu_data()?, dy.cpu_data()?);
    let mut dx = vec![0.0; xd.len()];
    let mut dalpha = vec![0f64; c];
    if !dx.is_empty() {
        // dx per row in parallel; each row also returns its share of dα (Σ dy·x where x ≤ 0).
        let partial: Vec<f64> = dx
            .par_chunks_mut(row)
            .zip(xd.par_chunks(row).zip(gd.par_chunks(row)))
            .with_min_len((GRAIN / row).max(1))
            .enumerate()
            .map(|(r, (o, (xr, gr)))| {
                let a = ad[r % c];
                let mut s = 0f64;
                for ((o, &v), &g) in o.iter_mut().zip(xr).zip(gr) {
                    if v > 0.0 {
                        *o = g;
                    } else {
                        *o = a * g;
                        s += (g * v) as f64;
                    }
                }
                s
            })
            .collect();
        for (r, s) in partial.iter().enumerate() {
            dalpha[r % c] += s;
        }
    }
    let dalpha = dalpha.iter().map(|&v| v as f32).collect();
    Ok((
        Tensor::from_vec(dx, x.shape().clone())?,
        Tensor::from_vec(dalpha, alpha.shape().clone())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::layout::tests::{assert_close, ravel, unravel};
    use super::*;
    use crate::error::Error;

    const ALL: [UnaryOp; 13] = [
        UnaryOp::Neg,
        UnaryOp::AddScalar(0.7),
        UnaryOp::MulScalar(-1.5),
        UnaryOp::PowScalar(2.0),
        UnaryOp::PowScalar(3.0),
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
    ];

    /// f64 reference of each op, for inputs in its domain.
    fn reference(op: UnaryOp, x: f64) -> f64 {
        match op {
            UnaryOp::Neg => -x,
            UnaryOp::AddScalar(c) => x + c as f64,
            UnaryOp::MulScalar(c) => x * c as f64,
            UnaryOp::PowScalar(p) => x.powf(p as f64),
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    x * s as f64
                }
            }
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
        }
    }

    fn positive_domain(op: UnaryOp) -> bool {
        matches!(op, UnaryOp::Log | UnaryOp::Sqrt)
    }

    #[test]
    fn unary_forward_and_backward_match_reference_and_finite_differences() {
        for op in ALL {
            let x = if positive_domain(op) {
                Tensor::rand_uniform([3, 1, 37], 0.2, 3.0, 1)
            } else {
                // Keep away from the kinks of relu/abs so differences are clean.
                let t = Tensor::randn([3, 1, 37], 0.0, 1.5, 1);
                Tensor::from_vec(
                    t.to_vec()
                        .unwrap()
                        .iter()
                        .map(|v| if v.abs() < 0.05 { 0.3 } else { *v })
                        .collect(),
                    [3, 1, 37],
                )
                .unwrap()
            };
            let y = unary(op, &x).unwrap();
            let want: Vec<f32> = x
                .cpu_data()
                .unwrap()
                .iter()
                .map(|&v| reference(op, v as f64) as f32)
                .collect();
            assert_close(y.cpu_data().unwrap(), &want, 1e-5, 1e-5);
            let dy = Tensor::randn([3, 1, 37], 0.0, 1.0, 2);
            let dx = unary_backward(op, &x, &y, &dy).unwrap();
            let h = 1e-3;
            let fd: Vec<f32> = x
                .cpu_data()
                .unwrap()
                .iter()
                .zip(dy.cpu_data().unwrap())
                .map(|(&v, &g)| {
                    let v = v as f64;
                    ((reference(op, v + h) - reference(op, v - h)) / (2.0 * h) * g as f64) as f32
                })
                .collect();
            assert_close(dx.cpu_data().unwrap(), &fd, 1e-3, 1e-3);
        }
    }

    #[test]
    fn unary_special_points() {
        let x = Tensor::from_vec(vec![0.0, -2.0, f32::NAN], [3]).unwrap();
        let r = unary(UnaryOp::Relu, &x).unwrap().to_vec().unwrap();
        assert_eq!(&r[..2], &[0.0, 0.0]);
        assert!(r[2].is_nan());
        let p = unary(UnaryOp::PowScalar(3.0), &x)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(&p[..2], &[0.0, -8.0]);
        let dy = Tensor::ones([3]);
        let y = unary(UnaryOp::Abs, &x).unwrap();
        assert_eq!(
            &unary_backward(UnaryOp::Abs, &x, &y, &dy)
                .unwrap()
                .to_vec()
                .unwrap()[..2],
            &[0.0, -1.0]
        );
        let y = unary(UnaryOp::Relu, &x).unwrap();
        assert_eq!(
            &unary_backward(UnaryOp::Relu, &x, &y, &dy)
                .unwrap()
                .to_vec()
                .unwrap()[..2],
            &[0.0, 0.0]
        );
        let y = unary(UnaryOp::PowScalar(0.0), &x).unwrap();
        assert_eq!(
            unary_backward(UnaryOp::PowScalar(0.0), &x, &y, &dy)
                .unwrap()
                .to_vec()
                .unwrap(),
            vec![0.0; 3]
        );
        let s = unary(
            UnaryOp::Sigmoid,
            &Tensor::from_vec(vec![-200.0, 200.0], [2]).unwrap(),
        )
        .unwrap();
        assert_eq!(s.to_vec().unwrap(), vec![0.0, 1.0]);
        assert!(matches!(
            unary_backward(UnaryOp::Exp, &x, &y, &Tensor::ones([2])),
            Err(Error::Shape { .. })
        ));
        assert_eq!(
            unary(UnaryOp::Exp, &Tensor::scalar(0.0))
                .unwrap()
                .item()
                .unwrap(),
            1.0
        );
    }

    fn naive_binary(a: &Tensor, b: &Tensor, f: fn(f32, f32) -> f32) -> (Vec<usize>, Vec<f32>) {
        let out = Shape::broadcast("t", a.shape(), b.shape()).unwrap().0;
        let pick = |t: &Tensor, o: &[usize]| {
            let lead = o.len() - t.rank();
            let idx: Vec<usize> = (0..t.rank())
                .map(|i| if t.dims()[i] == 1 { 0 } else { o[lead + i] })
                .collect();
            t.cpu_data().unwrap()[ravel(&idx, t.dims())]
        };
        let n: usize = out.iter().product();
        let vals = (0..n)
            .map(|i| {
                let o = unravel(i, &out);
                f(pick(a, &o), pick(b, &o))
            })
            .collect();
        (out, vals)
    }

    #[test]
    fn binary_broadcasts_like_numpy() {
        type Op = (BinaryOp, fn(f32, f32) -> f32);
        let ops: [Op; 4] = [
            (BinaryOp::Add, |p, q| p + q),
            (BinaryOp::Sub, |p, q| p - q),
            (BinaryOp::Mul, |p, q| p * q),
            (BinaryOp::Div, |p, q| p / q),
        ];
        let shapes: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![2, 3, 5], vec![2, 3, 5]),
            (vec![2, 3, 5], vec![5]),
            (vec![2, 3, 5], vec![3, 1]),
            (vec![1, 3, 1], vec![4, 1, 7]),
            (vec![4, 1], vec![1, 9]),
            (vec![2, 3], vec![]),
            (vec![], vec![2, 3]),
            (vec![300, 1, 70], vec![1, 2, 70]),
            (vec![0, 3], vec![1, 3]),
        ];
        for (sa, sb) in shapes {
            let a = Tensor::randn(sa.clone(), 0.0, 1.0, 3);
            let b = Tensor::rand_uniform(sb.clone(), 0.5, 2.0, 4);
            for (op, f) in ops {
                let y = binary(op, &a, &b).unwrap();
                let (dims, want) = naive_binary(&a, &b, f);
                assert_eq!(y.dims(), &dims[..], "{sa:?} {sb:?}");
                assert_close(y.cpu_data().unwrap(), &want, 1e-6, 1e-6);
            }
        }
        let err = binary(BinaryOp::Mul, &Tensor::zeros([2, 3]), &Tensor::zeros([4])).unwrap_err();
        assert!(matches!(err, Error::Shape { op: "mul", .. }), "{err}");
    }

    fn naive_prelu(x: &Tensor, alpha: &Tensor, dy: &Tensor) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (xd, ad, gd) = (
            x.cpu_data().unwrap(),
            alpha.cpu_data().unwrap(),
            dy.cpu_data().unwrap(),
        );
        let mut y = vec![0.0; xd.len()];
        let mut dx = vec![0.0; xd.len()];
        let mut da = vec![0f64; ad.len()];
        for i in 0..xd.len() {
            let c = if ad.len() == 1 {
                0
            } else {
                unravel(i, x.dims())[1]
            };
            y[i] = if xd[i] > 0.0 { xd[i] } else { ad[c] * xd[i] };
            dx[i] = if xd[i] > 0.0 { gd[i] } else { ad[c] * gd[i] };
            if xd[i] <= 0.0 {
                da[c] += (gd[i] * xd[i]) as f64;
            }
        }
        (y, dx, da.iter().map(|&v| v as f32).collect())
    }

    #[test]
    fn prelu_matches_naive_loops() {
        let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![2, 3, 5, 7], vec![3]),
            (vec![2, 3, 5, 7], vec![1]),
            (vec![4, 5], vec![5]),
            (vec![9], vec![1]),
            (vec![2, 1, 3], vec![1]),
            (vec![3, 4, 129, 65], vec![4]),
            (vec![40_000], vec![]),
        ];
        for (xs, al) in cases {
            let x = Tensor::randn(xs.clone(), 0.0, 1.0, 8);
            let alpha = Tensor::randn(al.clone(), 0.2, 0.1, 9);
            let dy = Tensor::randn(xs.clone(), 0.0, 1.0, 10);
            let (y, dx, da) = naive_prelu(&x, &alpha, &dy);
            assert_close(prelu(&x, &alpha).unwrap().cpu_data().unwrap(), &y, 0.0, 0.0);
            let (gx, ga) = prelu_backward(&x, &alpha, &dy).unwrap();
            assert_close(gx.cpu_data().unwrap(), &dx, 0.0, 0.0);
            assert_eq!(ga.dims(), alpha.dims());
            assert_close(ga.cpu_data().unwrap(), &da, 1e-3, 1e-4);
        }
        let x = Tensor::zeros([2, 3, 4]);
        assert!(matches!(
            prelu(&x, &Tensor::zeros([4])),
            Err(Error::Shape { op: "prelu", .. })
        ));
        assert!(prelu(&Tensor::zeros([3]), &Tensor::zeros([3])).is_err());
        assert!(prelu(&x, &Tensor::zeros([2, 3])).is_err());
        assert!(prelu(&x, &Tensor::zeros([1, 3, 1])).is_ok());
        assert!(prelu_backward(&x, &Tensor::zeros([3]), &Tensor::zeros([2, 3])).is_err());
        let e = Tensor::zeros([0, 3]);
        let (gx, ga) = prelu_backward(&e, &Tensor::ones([3]), &e).unwrap();
        assert_eq!((gx.numel(), ga.to_vec().unwrap()), (0, vec![0.0; 3]));
    }
}

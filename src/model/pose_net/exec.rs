//! Executing the pose network's steps on the backend: TF "SAME" padding, fused conv + bias +
//! activation, a direct depthwise conv on the CPU, max pooling padded with -inf.

use super::Padding;
use crate::backend::{self, BinaryOp, Conv2dParams, Pool2dParams, UnaryOp};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    Relu,
    Relu6,
}

pub(super) enum Op {
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        act: Option<Act>,
        stride: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
    },
    /// Bias reshaped to [1, C, 1, 1] for a broadcast add.
    Bias(Tensor),
    Act(Act),
    MaxPool {
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    },
    Concat,
    Affine(f32, f32),
}

/// TF "SAME" padding (before, after) of one dim.
fn same_pad(size: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    let ek = (k - 1) * d + 1;
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + ek).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Pads `x` [N, C, H, W] with `value`: `h` = (top, bottom), `w` = (left, right).
fn pad(x: &Tensor, h: (usize, usize), w: (usize, usize), value: f32) -> Result<Tensor> {
    let mut cur = x.clone();
    for (axis, (a, b)) in [(2, h), (3, w)] {
        if a + b == 0 {
            continue;
        }
        let mut shape = cur.dims().to_vec();
        shape[axis] = a;
        let before = Tensor::full(value, shape.clone());
        shape[axis] = b;
        let after = Tensor::full(value, shape);
        let mut parts = Vec::with_capacity(3);
        if a > 0 {
            parts.push(&before);
        }
        parts.push(&cur);
        if b > 0 {
            parts.push(&after);
        }
        cur = Tensor::concat(&parts, axis)?;
    }
    Ok(cur)
}

/// Depthwise conv (one input channel per output channel) by direct loops, one plane per task:
/// the general grouped conv runs one tiny im2col GEMM per channel, which costs far more here.
fn depthwise_cpu(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    use rayon::prelude::*;
    let bad = || {
        let detail = format!("input {:?}, weights {:?}", x.shape(), w.shape());
        Error::shape("pose_net depthwise conv", detail)
    };
    let (&[n, c, h, wi], &[wc, 1, kh, kw]) = (x.dims(), w.dims()) else {
        return Err(bad());
    };
    if wc != c || bias.is_some_and(|b| b.dims() != [c]) {
        return Err(bad());
    }
    let (oh, ow) = p.out_size(h, wi, kh, kw).ok_or_else(|| {
        Error::shape(
            "pose_net depthwise conv",
            format!("{:?} too small", x.shape()),
        )
    })?;
    let (xs, ws) = (x.cpu_data()?, w.cpu_data()?);
    let bs = bias.map(|b| b.cpu_data()).transpose()?;
    let mut y = vec![0.0f32; n * c * oh * ow];
    y.par_chunks_mut(oh * ow).enumerate().for_each(|(i, out)| {
        let ch = i % c;
        let plane = &xs[i * h * wi..(i + 1) * h * wi];
        let k = &ws[ch * kh * kw..(ch + 1) * kh * kw];
        out.fill(bs.map_or(0.0, |b| b[ch]));
        for a in 0..kh {
            for b in 0..kw {
                let kv = k[a * kw + b];
                let dy = (a * p.dilation.0) as isize - p.padding.0 as isize;
                let dx = (b * p.dilation.1) as isize - p.padding.1 as isize;
                // Output columns whose input column lies inside the row.
                let lo = if dx < 0 { (-dx) as usize } else { 0 }.div_ceil(p.stride.1);
                let hi = if (wi as isize) > dx {
                    ((wi as isize - 1 - dx) as usize / p.stride.1 + 1).min(ow)
                } else {
                    0
                };
                if lo >= hi {
                    continue;
                }
                for oy in 0..oh {
                    let iy = (oy * p.stride.0) as isize + dy;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let row = &plane[iy as usize * wi..(iy as usize + 1) * wi];
                    let orow = &mut out[oy * ow + lo..oy * ow + hi];
                    let start = (lo * p.stride.1) as isize + dx;
                    let src = row[start as usize..].iter().step_by(p.stride.1);
                    for (o, v) in orow.iter_mut().zip(src) {
                        *o += kv * v;
                    }
                }
            }
        }
    });
    Tensor::from_vec(y, [n, c, oh, ow])
}

fn activate(act: Act, x: Tensor) -> Result<Tensor> {
    let be = backend::for_tensor(&x)?;
    let r = be.unary(UnaryOp::Relu, &x)?;
    match act {
        Act::Relu => Ok(r),
        // min(relu(x), 6) = relu(x) - relu(x - 6)
        Act::Relu6 => {
            let over = be.unary(UnaryOp::Relu, &be.unary(UnaryOp::AddScalar(-6.0), &x)?)?;
            be.binary(BinaryOp::Sub, &r, &over)
        }
    }
}

pub(super) fn run_step(op: &Op, ins: &[&Tensor]) -> Result<Tensor> {
    let x = ins[0];
    let be = backend::for_tensor(x)?;
    match op {
        Op::Conv {
            weight,
            bias,
            act,
            stride,
            dilation,
            padding,
            groups,
        } => {
            let (kh, kw) = (weight.dims()[2], weight.dims()[3]);
            let (ph, pw) = match padding {
                Padding::Valid => ((0, 0), (0, 0)),
                Padding::Same => (
                    same_pad(x.dims()[2], kh, stride.0, dilation.0),
                    same_pad(x.dims()[3], kw, stride.1, dilation.1),
                ),
            };
            // The symmetric part goes to the conv; the extra after-padding is explicit.
            let sym = (ph.0.min(ph.1), pw.0.min(pw.1));
            let extra = pad(
                x,
                (ph.0 - sym.0, ph.1 - sym.0),
                (pw.0 - sym.1, pw.1 - sym.1),
                0.0,
            )?;
            let p = Conv2dParams {
                stride: *stride,
                padding: sym,
                dilation: *dilation,
                groups: *groups,
                ..Conv2dParams::default()
            };
            let depthwise = *groups > 1 && weight.dims()[..2] == [*groups, 1];
            let y = if depthwise && extra.device() == crate::tensor::Device::Cpu {
                depthwise_cpu(&extra, weight, bias.as_ref(), p)?
            } else {
                be.conv2d(&extra, weight, bias.as_ref(), p)?
            };
            match act {
                Some(a) => activate(*a, y),
                None => Ok(y),
            }
        }
        Op::Bias(b) => be.binary(BinaryOp::Add, x, b),
        Op::Act(a) => activate(*a, x.clone()),
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => {
            let (ph, pw) = match padding {
                Padding::Valid => ((0, 0), (0, 0)),
                Padding::Same => (
                    same_pad(x.dims()[2], kernel.0, stride.0, 1),
                    same_pad(x.dims()[3], kernel.1, stride.1, 1),
                ),
            };
            // TF pads max pooling with -inf: padded cells never win.
            let xp = pad(x, ph, pw, f32::NEG_INFINITY)?;
            let p = Pool2dParams {
                kernel: *kernel,
                stride: *stride,
                padding: (0, 0),
                count_include_pad: false,
            };
            be.max_pool2d(&xp, p)
        }
        Op::Concat => be.concat(ins, 1),
        Op::Affine(scale, shift) => {
            let y = be.unary(UnaryOp::MulScalar(*scale), x)?;
            be.unary(UnaryOp::AddScalar(*shift), &y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // (size, kernel, stride, dilation) → (before, after), as TF computes it.
        let cases = [
            ((8, 3, 2, 1), (0, 1)),
            ((7, 3, 2, 1), (1, 1)),
            ((5, 3, 1, 1), (1, 1)),
            ((5, 3, 1, 2), (2, 2)),
            ((6, 2, 2, 1), (0, 0)),
            ((5, 2, 2, 1), (0, 1)),
            ((1, 1, 1, 1), (0, 0)),
        ];
        for ((n, k, s, d), want) in cases {
            assert_eq!(
                same_pad(n, k, s, d),
                want,
                "size {n} kernel {k} stride {s} dil {d}"
            );
        }
    }

    use crate::backend::Backend;

    #[test]
    fn depthwise_matches_the_grouped_conv() {
        // (x dims, kernel, stride, padding, dilation): odd sizes, stride 2, dilation 2, 1×1
        let cases = [
            ([2, 3, 7, 6], (3, 3), (1, 1), (1, 1), (1, 1)),
            ([1, 5, 8, 9], (3, 3), (2, 2), (1, 0), (1, 1)),
            ([1, 4, 9, 7], (3, 2), (1, 2), (2, 1), (2, 1)),
            ([1, 2, 1, 1], (1, 1), (1, 1), (0, 0), (1, 1)),
        ];
        for (i, (xd, k, stride, padding, dilation)) in cases.into_iter().enumerate() {
            let c = xd[1];
            let x = Tensor::randn(xd, 0.0, 1.0, i as u64);
            let w = Tensor::randn([c, 1, k.0, k.1], 0.0, 1.0, 10 + i as u64);
            let b = Tensor::randn([c], 0.0, 1.0, 20 + i as u64);
            let p = Conv2dParams {
                stride,
                padding,
                dilation,
                groups: c,
                ..Conv2dParams::default()
            };
            let want = crate::backend::cpu::CpuBackend
                .conv2d(&x, &w, Some(&b), p)
                .unwrap();
            let got = depthwise_cpu(&x, &w, Some(&b), p).unwrap();
            assert_eq!(got.dims(), want.dims());
            let err = got
                .cpu_data()
                .unwrap()
                .iter()
                .zip(want.cpu_data().unwrap())
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-5, "case {i}: max abs error {err}");
        }
        let x = Tensor::zeros([1, 2, 3, 3]);
        let w = Tensor::zeros([3, 1, 3, 3]);
        assert!(depthwise_cpu(&x, &w, None, Conv2dParams::default()).is_err());
    }

    #[test]
    fn pad_places_values_around() {
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
        let y = pad(&x, (0, 1), (1, 0), -1.0).unwrap();
        assert_eq!(y.dims(), [1, 1, 3, 3]);
        let want = [-1.0, 1.0, 2.0, -1.0, 3.0, 4.0, -1.0, -1.0, -1.0];
        assert_eq!(y.cpu_data().unwrap(), want);
    }
}

//! Launchers of the training-side kernels: the mean L1 / MSE losses and the Adam step.

use super::*;
use crate::backend::AdamParams;

/// Which loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    L1,
    Mse,
}

impl LossKind {
    fn code(self) -> i32 {
        match self {
            LossKind::L1 => LOSS_L1,
            LossKind::Mse => LOSS_MSE,
        }
    }
}

/// Blocks of the partial-sum stage: at most 1024, each at least 4096 elements.
pub fn loss_blocks(n: usize) -> (usize, usize) {
    let per_block = n.div_ceil(1024).max(4096);
    (n.div_ceil(per_block).max(1), per_block)
}

/// out[0] = mean f(a − b) over `n` > 0 elements (two-stage f64 sum, deterministic).
pub fn loss_forward(
    gpu: &Gpu,
    kind: LossKind,
    n: usize,
    (a, b): (&CudaSlice<f32>, &CudaSlice<f32>),
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let (blocks, per_block) = loss_blocks(n);
    let args = LossArgs {
        n: n as i64,
        per_block: per_block as i64,
        blocks: blocks as i64,
        op: kind.code(),
        scale: 1.0,
    };
    // The partials are f64: two f32 slots each (the pool's buffers are 256-byte aligned).
    let mut part = gpu.alloc(2 * blocks)?;
    let threads = (LOSS_THREADS, 1, 1);
    let cf = cfg((grid_1d(blocks as u64), 1, 1), threads);
    launch!(gpu, "loss_forward_partial_f32", cf, &args, a, b, &mut *part)?;
    let cf = cfg((1, 1, 1), threads);
    launch!(gpu, "loss_forward_finish_f32", cf, &args, &*part, out)
}

/// dx = scale·f'(a − b) over `n` elements (`scale` = upstream gradient / n, twice that for MSE).
pub fn loss_backward(
    gpu: &Gpu,
    kind: LossKind,
    n: usize,
    scale: f32,
    (a, b): (&CudaSlice<f32>, &CudaSlice<f32>),
    dx: &mut CudaSlice<f32>,
) -> Result<()> {
    let args = LossArgs {
        n: n as i64,
        per_block: 0,
        blocks: 0,
        op: kind.code(),
        scale,
    };
    launch!(
        gpu,
        "loss_backward_f32",
        cfg_elems(n as u64),
        &args,
        a,
        b,
        dx
    )
}

/// `AdamArgs` for `n` values: PyTorch's bias corrections, computed in f64 as the CPU does.
pub fn adam_args(n: usize, p: &AdamParams) -> AdamArgs {
    let t = p.step as f64;
    let bc1 = 1.0 - (p.beta1 as f64).powf(t);
    let bc2 = 1.0 - (p.beta2 as f64).powf(t);
    AdamArgs {
        n: n as i64,
        step_size: (p.lr as f64 / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
        decay: if p.decoupled {
            1.0 - p.lr * p.weight_decay
        } else {
            1.0
        },
        l2: if p.decoupled { 0.0 } else { p.weight_decay },
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        _pad: 0,
    }
}

/// One Adam / AdamW step in place on param, m and v.
pub fn adam_step(
    gpu: &Gpu,
    a: &AdamArgs,
    param: &mut CudaSlice<f32>,
    grad: &CudaSlice<f32>,
    (m, v): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
) -> Result<()> {
    launch!(
        gpu,
        "adam_step_f32",
        cfg_elems(a.n as u64),
        a,
        param,
        grad,
        m,
        v
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_blocks_cover_every_element() {
        for n in [1, 4095, 4096, 4097, 1 << 22, (1 << 22) + 3, 999_999_937] {
            let (b, per) = loss_blocks(n);
            assert!(
                b <= 1024 && b * per >= n && (b - 1) * per < n,
                "{n}: {b} x {per}"
            );
        }
    }

    #[test]
    fn adam_args_follow_the_cpu_arithmetic() {
        let p = AdamParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
            step: 3,
        };
        let a = adam_args(10, &p);
        assert_eq!(
            a.step_size,
            (1e-3f32 as f64 / (1.0 - 0.9f32 as f64 * 0.9f32 as f64 * 0.9f32 as f64)) as f32
        );
        assert_eq!(a.decay, 1.0 - 1e-3 * 0.01);
        assert_eq!(a.l2, 0.0);
        let b = adam_args(
            10,
            &AdamParams {
                decoupled: false,
                ..p
            },
        );
        assert_eq!((b.decay, b.l2), (1.0, 0.01));
    }
}

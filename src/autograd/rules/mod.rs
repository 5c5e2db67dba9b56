//! The differentiable ops of `Var`, one file per op family (mirroring `backend/cpu/`). Each op
//! computes its forward value through the backend and records one backward rule, which calls the
//! backend's `*_backward` primitive where there is one and composes forward primitives otherwise.
//! Rules save only the tensors they need, and only for inputs that require grad.

mod conv;
mod corr_warp;
mod elementwise;
mod layout;
mod loss;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod resize;
mod softmax;
mod unfold;

use super::var::Var;
use crate::backend::{self, Backend};
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};

/// The backend owning the operands of `op`, after checking they all live on one device.
pub(crate) fn backend_for(op: &'static str, vars: &[&Var]) -> Result<&'static dyn Backend> {
    let first = vars
        .first()
        .ok_or_else(|| Error::invalid(op, "no operands"))?;
    let device = first.device();
    if let Some(other) = vars.iter().map(|v| v.device()).find(|d| *d != device) {
        return Err(Error::DeviceMismatch {
            op,
            a: device.to_string(),
            b: other.to_string(),
        });
    }
    backend::for_device(device)
}

/// `g` summed down to `shape` where an operand was broadcast; `g` itself when it already fits.
pub(crate) fn sum_to_shape(be: &dyn Backend, g: Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.dims() == shape {
        Ok(g)
    } else {
        be.sum_to(&g, shape)
    }
}

/// Runs `f` only for an input that wants a gradient.
pub(crate) fn grad_if(need: bool, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if need {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// Zeros of `shape` on `device`.
pub(crate) fn zeros_on(shape: &[usize], device: Device) -> Result<Tensor> {
    let z = Tensor::zeros(shape.to_vec());
    match device {
        Device::Cpu => Ok(z),
        d => z.to_device(d),
    }
}

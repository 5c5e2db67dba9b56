//! Layout ops: reshape, permute, narrow, concat, broadcast_to. Each one's gradient is its
//! adjoint layout op.

use super::{backend_for, grad_if, zeros_on};
use crate::autograd::var::Var;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Var {
    /// Same values, new shape (one dim may be `usize::MAX`, inferred). No copy.
    pub fn reshape(&self, dims: &[usize]) -> Result<Var> {
        let y = self.value().reshape(dims.to_vec())?;
        Ok(Var::record(y, "reshape", &[self], |_, _| {
            let x_dims = self.dims().to_vec();
            Box::new(move |dy| Ok(vec![Some(dy.reshape(x_dims)?)]))
        }))
    }

    /// Reorders the axes: output axis i is input axis `dims[i]`.
    pub fn permute(&self, dims: &[usize]) -> Result<Var> {
        let be = backend_for("permute", &[self])?;
        let y = be.permute(&self.value(), dims)?;
        Ok(Var::record(y, "permute", &[self], |_, _| {
            // The forward checked that `dims` is a permutation, so the inverse is well defined.
            let mut inverse = vec![0; dims.len()];
            for (i, &d) in dims.iter().enumerate() {
                if let Some(slot) = inverse.get_mut(d) {
                    *slot = i;
                }
            }
            Box::new(move |dy| Ok(vec![Some(be.permute(dy, &inverse)?)]))
        }))
    }

    /// `len` entries from `start` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Var> {
        let be = backend_for("narrow", &[self])?;
        let y = be.narrow(&self.value(), axis, start, len)?;
        Ok(Var::record(y, "narrow", &[self], |_, _| {
            let x_dims = self.dims().to_vec();
            let device = self.device();
            // The gradient is dy padded with zeros before and after along `axis`.
            Box::new(move |dy| {
                let mut before_dims = x_dims.clone();
                before_dims[axis] = start;
                let mut after_dims = x_dims.clone();
                after_dims[axis] = x_dims[axis] - start - len;
                let before = zeros_on(&before_dims, device)?;
                let after = zeros_on(&after_dims, device)?;
                let mut parts: Vec<&Tensor> = Vec::with_capacity(3);
                if start > 0 {
                    parts.push(&before);
                }
                parts.push(dy);
                if after_dims[axis] > 0 {
                    parts.push(&after);
                }
                let g = if parts.len() == 1 {
                    dy.clone()
                } else {
                    be.concat(&parts, axis)?
                };
                Ok(vec![Some(g)])
            })
        }))
    }

    /// Repeats 1-sized dims (and prepends dims) to reach `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var> {
        let be = backend_for("broadcast_to", &[self])?;
        let y = be.broadcast_to(&self.value(), shape)?;
        Ok(Var::record(y, "broadcast_to", &[self], |_, _| {
            let x_dims = self.dims().to_vec();
            Box::new(move |dy| Ok(vec![Some(be.sum_to(dy, &x_dims)?)]))
        }))
    }

    /// Joins `xs` along `axis` (all other dims equal).
    pub fn concat(xs: &[&Var], axis: usize) -> Result<Var> {
        if xs.is_empty() {
            return Err(Error::invalid("concat", "no tensors"));
        }
        let be = backend_for("concat", xs)?;
        let values: Vec<Tensor> = xs.iter().map(|v| v.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let y = be.concat(&refs, axis)?;
        Ok(Var::record(y, "concat", xs, |needs, _| {
            // Each input's gradient is its slice of dy.
            let spans: Vec<(bool, usize)> = xs
                .iter()
                .zip(needs)
                .map(|(v, &n)| (n, v.dims()[axis]))
                .collect();
            Box::new(move |dy| {
                let mut start = 0;
                let mut grads = Vec::with_capacity(spans.len());
                for &(need, len) in &spans {
                    grads.push(grad_if(need, || be.narrow(dy, axis, start, len))?);
                    start += len;
                }
                Ok(grads)
            })
        }))
    }
}

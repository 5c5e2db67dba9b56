//! Reductions: sum, mean, max over a set of axes (empty = all axes).

use super::backend_for;
use crate::autograd::var::Var;
use crate::backend::{ReduceOp, UnaryOp};
use crate::error::Result;

impl Var {
    /// Sum over `axes` (all axes when empty), keeping them as 1-sized dims when `keepdim`.
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        reduce(self, ReduceOp::Sum, "sum", axes, keepdim)
    }
    /// Mean over `axes` (all axes when empty).
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        reduce(self, ReduceOp::Mean, "mean", axes, keepdim)
    }
    /// Maximum over `axes` (all axes when empty); tied maxima share the gradient equally.
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        reduce(self, ReduceOp::Max, "max", axes, keepdim)
    }
    /// Sum of all elements, shape `[]`.
    pub fn sum_all(&self) -> Result<Var> {
        self.sum(&[], false)
    }
    /// Mean of all elements, shape `[]`.
    pub fn mean_all(&self) -> Result<Var> {
        self.mean(&[], false)
    }
}

fn reduce(x: &Var, op: ReduceOp, name: &'static str, axes: &[usize], keepdim: bool) -> Result<Var> {
    let be = backend_for(name, &[x])?;
    // The backend gets the axes spelled out, so "empty = all" is decided here only.
    let axes: Vec<usize> = if axes.is_empty() {
        (0..x.dims().len()).collect()
    } else {
        axes.to_vec()
    };
    let xv = x.value();
    let y = be.reduce(op, &xv, &axes, keepdim)?;
    Ok(Var::record(y, name, &[x], |_, y| {
        let x_dims = xv.dims().to_vec();
        // The output's shape with the reduced axes kept as 1 (the forward validated the axes).
        let mut kept = x_dims.clone();
        let mut count = 1usize;
        for &a in &axes {
            if let Some(d) = kept.get_mut(a) {
                if *d != 1 {
                    count *= *d;
                }
                *d = 1;
            }
        }
        match op {
            ReduceOp::Sum | ReduceOp::Mean => Box::new(move |dy| {
                let mut g = dy.reshape(kept)?;
                if op == ReduceOp::Mean && count > 1 {
                    g = be.unary(UnaryOp::MulScalar(1.0 / count as f32), &g)?;
                }
                Ok(vec![Some(be.broadcast_to(&g, &x_dims)?)])
            }),
            ReduceOp::Max => {
                let y_kept = y.clone();
                Box::new(move |dy| {
                    let (y_kept, dy_kept) = (y_kept.reshape(kept.clone())?, dy.reshape(kept)?);
                    Ok(vec![Some(
                        be.reduce_max_backward(&xv, &y_kept, &dy_kept, &axes)?,
                    )])
                })
            }
        }
    }))
}

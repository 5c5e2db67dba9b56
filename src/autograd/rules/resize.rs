//! 2-D resizing (nearest, bilinear).

use super::backend_for;
use crate::autograd::var::Var;
use crate::backend::ResizeMode;
use crate::error::Result;

impl Var {
    /// Resizes NCHW `self` to `out_hw` (PyTorch `interpolate` semantics).
    pub fn resize2d(&self, out_hw: (usize, usize), mode: ResizeMode) -> Result<Var> {
        let be = backend_for("resize2d", &[self])?;
        let y = be.resize2d(&self.value(), out_hw, mode)?;
        Ok(Var::record(y, "resize2d", &[self], |_, _| {
            let x_dims = self.dims().to_vec();
            Box::new(move |dy| Ok(vec![Some(be.resize2d_backward(dy, &x_dims, mode)?)]))
        }))
    }
}

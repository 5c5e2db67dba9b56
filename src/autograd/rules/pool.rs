//! 2-D pooling.

use super::backend_for;
use crate::autograd::var::Var;
use crate::backend::Pool2dParams;
use crate::error::Result;

impl Var {
    /// Average pooling of NCHW `self`.
    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Var> {
        let be = backend_for("avg_pool2d", &[self])?;
        let y = be.avg_pool2d(&self.value(), p)?;
        Ok(Var::record(y, "avg_pool2d", &[self], |_, _| {
            let x_dims = self.dims().to_vec();
            Box::new(move |dy| Ok(vec![Some(be.avg_pool2d_backward(dy, &x_dims, p)?)]))
        }))
    }

    /// Max pooling of NCHW `self`; the gradient goes to the first maximum of each window.
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Var> {
        let be = backend_for("max_pool2d", &[self])?;
        let xv = self.value();
        let y = be.max_pool2d(&xv, p)?;
        Ok(Var::record(y, "max_pool2d", &[self], |_, _| {
            Box::new(move |dy| Ok(vec![Some(be.max_pool2d_backward(&xv, dy, p)?)]))
        }))
    }
}

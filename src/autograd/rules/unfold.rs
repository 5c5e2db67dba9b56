//! im2col (`unfold`) and its adjoint (`fold`): each one's gradient is the other.

use super::backend_for;
use crate::autograd::var::Var;
use crate::backend::UnfoldParams;
use crate::error::{Error, Result};

impl Var {
    /// `[N, C, H, W]` -> `[N, C·kH·kW, L]` (torch.nn.functional.unfold).
    pub fn unfold(&self, p: UnfoldParams) -> Result<Var> {
        let be = backend_for("unfold", &[self])?;
        let y = be.unfold(&self.value(), p)?;
        Ok(Var::record(y, "unfold", &[self], |_, _| {
            let hw = match *self.dims() {
                [_, _, h, w] => Ok((h, w)),
                _ => Err(Error::shape(
                    "unfold",
                    format!("expected NCHW, got {:?}", self.shape()),
                )),
            };
            Box::new(move |dy| Ok(vec![Some(be.fold(dy, hw?, p)?)]))
        }))
    }

    /// `[N, C·kH·kW, L]` -> `[N, C, out_h, out_w]`, summing overlaps (torch.nn.functional.fold).
    pub fn fold(&self, out_hw: (usize, usize), p: UnfoldParams) -> Result<Var> {
        let be = backend_for("fold", &[self])?;
        let y = be.fold(&self.value(), out_hw, p)?;
        Ok(Var::record(y, "fold", &[self], |_, _| {
            Box::new(move |dy| Ok(vec![Some(be.unfold(dy, p)?)]))
        }))
    }
}

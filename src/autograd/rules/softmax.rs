//! Softmax over the last axis.

use super::backend_for;
use crate::autograd::var::Var;
use crate::error::Result;

impl Var {
    /// Softmax over the last axis.
    pub fn softmax(&self) -> Result<Var> {
        let be = backend_for("softmax", &[self])?;
        let y = be.softmax(&self.value())?;
        Ok(Var::record(y, "softmax", &[self], |_, y| {
            let y = y.clone();
            Box::new(move |dy| Ok(vec![Some(be.softmax_backward(&y, dy)?)]))
        }))
    }
}

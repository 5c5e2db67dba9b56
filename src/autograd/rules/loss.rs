//! Losses reduced to a scalar mean; gradients flow to both operands.

use super::{backend_for, grad_if};
use crate::autograd::var::Var;
use crate::backend::{Backend, UnaryOp};
use crate::error::Result;
use crate::tensor::Tensor;

impl Var {
    /// `mean |self - b|`, shape `[]`.
    pub fn l1_loss(&self, b: &Var) -> Result<Var> {
        loss(self, b, Kind::L1)
    }
    /// `mean (self - b)²`, shape `[]`.
    pub fn mse_loss(&self, b: &Var) -> Result<Var> {
        loss(self, b, Kind::Mse)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    L1,
    Mse,
}

fn loss(a: &Var, b: &Var, kind: Kind) -> Result<Var> {
    let name = match kind {
        Kind::L1 => "l1_loss",
        Kind::Mse => "mse_loss",
    };
    let be = backend_for(name, &[a, b])?;
    let (av, bv) = (a.value(), b.value());
    let y = match kind {
        Kind::L1 => be.l1_loss(&av, &bv)?,
        Kind::Mse => be.mse_loss(&av, &bv)?,
    };
    Ok(Var::record(y, name, &[a, b], |needs, _| {
        let (na, nb) = (needs[0], needs[1]);
        Box::new(move |dy| {
            // Both losses are odd in (a - b): d/db = -d/da.
            let da = d_first(be, kind, &av, &bv, dy.item()?)?;
            let db = grad_if(nb, || be.unary(UnaryOp::Neg, &da))?;
            Ok(vec![na.then_some(da), db])
        })
    }))
}

fn d_first(be: &dyn Backend, kind: Kind, a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    match kind {
        Kind::L1 => be.l1_loss_backward(a, b, dloss),
        Kind::Mse => be.mse_loss_backward(a, b, dloss),
    }
}

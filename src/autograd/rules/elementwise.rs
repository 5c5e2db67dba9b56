//! Elementwise ops: binary arithmetic with NumPy broadcasting, unary maps, PReLU.

use super::{backend_for, grad_if, sum_to_shape};
use crate::autograd::var::{Rule, Var};
use crate::backend::{Backend, BinaryOp, UnaryOp};
use crate::error::Result;
use crate::tensor::Tensor;

impl Var {
    /// `self + b` with broadcasting.
    pub fn add(&self, b: &Var) -> Result<Var> {
        binary(BinaryOp::Add, "add", self, b)
    }
    /// `self - b` with broadcasting.
    pub fn sub(&self, b: &Var) -> Result<Var> {
        binary(BinaryOp::Sub, "sub", self, b)
    }
    /// `self * b` with broadcasting.
    pub fn mul(&self, b: &Var) -> Result<Var> {
        binary(BinaryOp::Mul, "mul", self, b)
    }
    /// `self / b` with broadcasting.
    pub fn div(&self, b: &Var) -> Result<Var> {
        binary(BinaryOp::Div, "div", self, b)
    }

    pub fn neg(&self) -> Result<Var> {
        unary(UnaryOp::Neg, "neg", self)
    }
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        unary(UnaryOp::AddScalar(s), "add_scalar", self)
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Var> {
        unary(UnaryOp::MulScalar(s), "mul_scalar", self)
    }
    /// `self^p` elementwise (negative bases only for integer `p`).
    pub fn powf(&self, p: f32) -> Result<Var> {
        unary(UnaryOp::PowScalar(p), "powf", self)
    }
    pub fn relu(&self) -> Result<Var> {
        unary(UnaryOp::Relu, "relu", self)
    }
    pub fn leaky_relu(&self, slope: f32) -> Result<Var> {
        unary(UnaryOp::LeakyRelu(slope), "leaky_relu", self)
    }
    pub fn tanh(&self) -> Result<Var> {
        unary(UnaryOp::Tanh, "tanh", self)
    }
    pub fn sigmoid(&self) -> Result<Var> {
        unary(UnaryOp::Sigmoid, "sigmoid", self)
    }
    pub fn exp(&self) -> Result<Var> {
        unary(UnaryOp::Exp, "exp", self)
    }
    pub fn log(&self) -> Result<Var> {
        unary(UnaryOp::Log, "log", self)
    }
    pub fn sqrt(&self) -> Result<Var> {
        unary(UnaryOp::Sqrt, "sqrt", self)
    }
    pub fn abs(&self) -> Result<Var> {
        unary(UnaryOp::Abs, "abs", self)
    }

    /// PReLU: `x` where `x > 0`, else `α·x`; `alpha` is `[1]` or `[C]` with C = dim 1 of `self`.
    pub fn prelu(&self, alpha: &Var) -> Result<Var> {
        let be = backend_for("prelu", &[self, alpha])?;
        let (x, a) = (self.value(), alpha.value());
        let y = be.prelu(&x, &a)?;
        Ok(Var::record(y, "prelu", &[self, alpha], |needs, _| {
            let (nx, na) = (needs[0], needs[1]);
            Box::new(move |dy| {
                let (dx, da) = be.prelu_backward(&x, &a, dy)?;
                Ok(vec![nx.then_some(dx), na.then_some(da)])
            })
        }))
    }
}

fn unary(op: UnaryOp, name: &'static str, x: &Var) -> Result<Var> {
    let be = backend_for(name, &[x])?;
    let xv = x.value();
    let y = be.unary(op, &xv)?;
    Ok(Var::record(y, name, &[x], |_, y| {
        unary_rule(be, op, xv, y.clone())
    }))
}

/// Affine maps need nothing saved; the others hand x and y to the fused `unary_backward`.
fn unary_rule(be: &'static dyn Backend, op: UnaryOp, x: Tensor, y: Tensor) -> Rule {
    match op {
        UnaryOp::Neg => Box::new(move |dy| Ok(vec![Some(be.unary(UnaryOp::Neg, dy)?)])),
        UnaryOp::AddScalar(_) => Box::new(move |dy| Ok(vec![Some(dy.clone())])),
        UnaryOp::MulScalar(s) => {
            Box::new(move |dy| Ok(vec![Some(be.unary(UnaryOp::MulScalar(s), dy)?)]))
        }
        _ => Box::new(move |dy| Ok(vec![Some(be.unary_backward(op, &x, &y, dy)?)])),
    }
}

/// Gradients of broadcasting binary ops are computed at the output shape, then summed down to
/// each operand's shape.
fn binary(op: BinaryOp, name: &'static str, a: &Var, b: &Var) -> Result<Var> {
    let be = backend_for(name, &[a, b])?;
    let (av, bv) = (a.value(), b.value());
    let y = be.binary(op, &av, &bv)?;
    Ok(Var::record(y, name, &[a, b], |needs, y| {
        let (na, nb) = (needs[0], needs[1]);
        let (sa, sb) = (av.dims().to_vec(), bv.dims().to_vec());
        let rule: Rule = match op {
            BinaryOp::Add => Box::new(move |dy| {
                Ok(vec![
                    grad_if(na, || sum_to_shape(be, dy.clone(), &sa))?,
                    grad_if(nb, || sum_to_shape(be, dy.clone(), &sb))?,
                ])
            }),
            BinaryOp::Sub => Box::new(move |dy| {
                Ok(vec![
                    grad_if(na, || sum_to_shape(be, dy.clone(), &sa))?,
                    grad_if(nb, || {
                        be.unary(UnaryOp::Neg, &sum_to_shape(be, dy.clone(), &sb)?)
                    })?,
                ])
            }),
            BinaryOp::Mul => {
                // d/da needs b and d/db needs a: keep only what a wanted gradient uses.
                let (keep_b, keep_a) = (na.then_some(bv), nb.then_some(av));
                Box::new(move |dy| {
                    Ok(vec![
                        grad_if(na, || mul_sum_to(be, dy, keep_b.as_ref(), &sa))?,
                        grad_if(nb, || mul_sum_to(be, dy, keep_a.as_ref(), &sb))?,
                    ])
                })
            }
            BinaryOp::Div => {
                // da = dy / b; db = -dy · a / b² = -(dy · y / b).
                let keep_y = nb.then(|| y.clone());
                Box::new(move |dy| {
                    let da = grad_if(na, || {
                        sum_to_shape(be, be.binary(BinaryOp::Div, dy, &bv)?, &sa)
                    })?;
                    let db = grad_if(nb, || {
                        let y = keep_y.as_ref().ok_or_else(|| missing("div"))?;
                        let t = be.binary(BinaryOp::Div, &be.binary(BinaryOp::Mul, dy, y)?, &bv)?;
                        be.unary(UnaryOp::Neg, &sum_to_shape(be, t, &sb)?)
                    })?;
                    Ok(vec![da, db])
                })
            }
        };
        rule
    }))
}

/// `sum_to(dy · other, shape)`.
fn mul_sum_to(
    be: &dyn Backend,
    dy: &Tensor,
    other: Option<&Tensor>,
    shape: &[usize],
) -> Result<Tensor> {
    let other = other.ok_or_else(|| missing("mul"))?;
    sum_to_shape(be, be.binary(BinaryOp::Mul, dy, other)?, shape)
}

/// A rule asked for a tensor it chose not to save: an engine bug, reported rather than a panic.
fn missing(op: &str) -> crate::Error {
    crate::Error::Autograd(format!("{op}: backward rule is missing a saved tensor"))
}

#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    todo!("unary")
}

pub fn unary_backward(op: UnaryOp, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    todo!("unary_backward")
}

pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    todo!("binary")
}

pub fn prelu(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    todo!("prelu")
}

pub fn prelu_backward(x: &Tensor, alpha: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    todo!("prelu_backward")
}

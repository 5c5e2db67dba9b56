#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
    todo!("reduce")
}

pub fn reduce_max_backward(x: &Tensor, y: &Tensor, dy: &Tensor, axes: &[usize]) -> Result<Tensor> {
    todo!("reduce_max_backward")
}

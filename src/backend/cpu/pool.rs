#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn avg_pool2d(x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    todo!("avg_pool2d")
}

pub fn avg_pool2d_backward(dy: &Tensor, x_shape: &[usize], p: Pool2dParams) -> Result<Tensor> {
    todo!("avg_pool2d_backward")
}

pub fn max_pool2d(x: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    todo!("max_pool2d")
}

pub fn max_pool2d_backward(x: &Tensor, dy: &Tensor, p: Pool2dParams) -> Result<Tensor> {
    todo!("max_pool2d_backward")
}

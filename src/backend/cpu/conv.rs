#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    todo!("conv2d")
}

pub fn conv2d_backward_input(dy: &Tensor, w: &Tensor, x_shape: &[usize], p: Conv2dParams) -> Result<Tensor> {
    todo!("conv2d_backward_input")
}

pub fn conv2d_backward_weight(x: &Tensor, dy: &Tensor, w_shape: &[usize], p: Conv2dParams) -> Result<Tensor> {
    todo!("conv2d_backward_weight")
}

pub fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    todo!("conv2d_backward_bias")
}

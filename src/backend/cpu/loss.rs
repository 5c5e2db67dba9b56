#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn l1_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    todo!("l1_loss")
}

pub fn l1_loss_backward(a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    todo!("l1_loss_backward")
}

pub fn mse_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    todo!("mse_loss")
}

pub fn mse_loss_backward(a: &Tensor, b: &Tensor, dloss: f32) -> Result<Tensor> {
    todo!("mse_loss_backward")
}

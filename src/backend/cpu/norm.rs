#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn instance_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f32) -> Result<(Tensor, NormStats)> {
    todo!("instance_norm")
}

pub fn instance_norm_backward(x: &Tensor, weight: Option<&Tensor>, stats: &NormStats, dy: &Tensor) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    todo!("instance_norm_backward")
}

pub fn pono(x: &Tensor, eps: f32) -> Result<(Tensor, NormStats)> {
    todo!("pono")
}

pub fn pono_backward(x: &Tensor, stats: &NormStats, dy: &Tensor) -> Result<Tensor> {
    todo!("pono_backward")
}

pub fn spade_modulate(x: &Tensor, gamma: &Tensor, beta: &Tensor, norm: SpadeNorm, eps: f32) -> Result<(Tensor, NormStats)> {
    todo!("spade_modulate")
}

pub fn spade_modulate_backward(x: &Tensor, gamma: &Tensor, stats: &NormStats, norm: SpadeNorm, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    todo!("spade_modulate_backward")
}

#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn corr_warp(q: &Tensor, k: &Tensor, v: &Tensor, p: CorrWarpParams, return_attn: bool) -> Result<(Tensor, Option<Tensor>)> {
    todo!("corr_warp")
}

pub fn corr_warp_backward(q: &Tensor, k: &Tensor, v: &Tensor, p: CorrWarpParams, dout: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    todo!("corr_warp_backward")
}

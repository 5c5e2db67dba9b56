#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn unfold(x: &Tensor, p: UnfoldParams) -> Result<Tensor> {
    todo!()
}

pub fn fold(cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor> {
    todo!()
}

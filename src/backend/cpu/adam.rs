#![allow(unused_variables)]
use crate::backend::*;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn adam_step(param: &mut Tensor, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, p: AdamParams) -> Result<()> {
    todo!("adam_step")
}

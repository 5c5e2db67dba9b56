//! Placeholder until the autograd module is written.
pub struct Var;

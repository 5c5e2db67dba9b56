//! Reverse-mode automatic differentiation.
//!
//! - `var`: `Var`, the differentiable value (an `Rc`-shared graph node), leaves and accessors.
//! - `grad_mode`: `no_grad` / `is_grad_enabled`, a thread-local switch for recording.
//! - `backward`: the engine: topological sort of the graph, one reverse sweep, gradient
//!   accumulation into leaves, and release of every saved tensor once it has been used.
//! - `rules`: the differentiable ops of `Var`, one file per op family (as in `backend/cpu/`); the
//!   backward rule of each primitive lives next to its forward, in one place.
//! - `gradcheck`: the finite-difference checker every gradient test uses.
//!
//! Recording happens only when grad mode is on and some input requires grad; gradients
//! accumulate in leaves across backward calls until `zero_grad`.

mod backward;
mod grad_mode;
pub mod gradcheck;
mod rules;
mod var;

pub use grad_mode::{is_grad_enabled, no_grad};
pub use gradcheck::gradcheck;
pub use var::Var;

#[cfg(test)]
mod tests;

//! The layers the networks are made of. Each has a `*Spec` (pure shape data: parameter and MAC
//! counts without building anything) and a module built from it in a `ParamStore` scope, whose
//! forward records its analytic MACs (see `model::count`).

pub mod attention;
pub mod conv;
pub mod resstack;
pub mod spade;

pub use attention::{AttentionSpec, SelfAttention};
pub use conv::{Conv2d, ConvSpec};
pub use resstack::{ResStack, ResStackSpec, IN_EPS};
pub use spade::{Spade, SpadeBlock, SpadeBlockSpec, SpadeSpec};

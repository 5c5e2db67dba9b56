//! `Var`: a tensor value plus the record of how it was computed.
//!
//! A `Var` is a cheap, `Rc`-shared handle on a graph node. Leaves hold a value and, when they
//! require grad, the gradient accumulated by `backward`. Op outputs additionally hold their
//! recorded op: the edges to the inputs that need a gradient and a one-shot backward rule that
//! owns exactly the tensors it saved. `backward` consumes the rule (freeing what it saved), so a
//! second backward through the same node is an error.

use super::grad_mode::is_grad_enabled;
use crate::error::{Error, Result};
use crate::tensor::{Device, Shape, Tensor};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A backward rule: given the gradient of the op's output, the gradients of its inputs, one slot
/// per input, `Some` exactly where that input requires grad.
pub(crate) type Rule = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>>>;

/// The recorded history of an op output.
pub(crate) struct Op {
    /// Edges to the inputs, `None` where an input needs no gradient.
    pub(crate) inputs: Vec<Option<Rc<Node>>>,
    pub(crate) rule: Rule,
}

pub(crate) struct Node {
    pub(crate) id: u64,
    /// The op that produced this node ("leaf" for leaves), for error messages.
    pub(crate) name: &'static str,
    shape: Shape,
    /// Only leaves are ever reassigned (`set_value`); borrows never outlive a method call.
    value: RefCell<Tensor>,
    pub(crate) requires_grad: bool,
    pub(crate) is_leaf: bool,
    /// Accumulated gradient (leaves only).
    pub(crate) grad: RefCell<Option<Tensor>>,
    /// `None` for leaves and for op outputs whose rule a backward pass has consumed.
    pub(crate) op: RefCell<Option<Op>>,
}

impl Drop for Node {
    /// Unlinks the history iteratively: a naive recursive drop of a 10 000-op chain would
    /// overflow the stack.
    fn drop(&mut self) {
        let mut stack: Vec<Rc<Node>> = match self.op.get_mut().take() {
            Some(op) => op.inputs.into_iter().flatten().collect(),
            None => return,
        };
        while let Some(n) = stack.pop() {
            // Only the last owner takes the history apart; the node itself then drops shallowly.
            if let Ok(mut inner) = Rc::try_unwrap(n) {
                if let Some(op) = inner.op.get_mut().take() {
                    stack.extend(op.inputs.into_iter().flatten());
                }
            }
        }
    }
}

impl Node {
    pub(crate) fn value_dims(&self) -> &[usize] {
        self.shape.dims()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A differentiable value: a `Tensor` with its history. Clone is cheap and shares the node
/// (value, gradient, history). Not `Send`.
#[derive(Clone)]
pub struct Var {
    pub(crate) node: Rc<Node>,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Var(#{} {} {:?}, requires_grad={})",
            self.node.id, self.node.name, self.node.shape, self.node.requires_grad
        )
    }
}

impl Var {
    fn from_parts(value: Tensor, requires_grad: bool, name: &'static str, op: Option<Op>) -> Var {
        Var {
            node: Rc::new(Node {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name,
                shape: value.shape().clone(),
                value: RefCell::new(value),
                requires_grad,
                is_leaf: op.is_none(),
                grad: RefCell::new(None),
                op: RefCell::new(op),
            }),
        }
    }

    // ---- construction ---------------------------------------------------------------------

    /// A leaf: a value with no history.
    pub fn leaf(t: Tensor, requires_grad: bool) -> Var {
        Var::from_parts(t, requires_grad, "leaf", None)
    }
    /// A trainable leaf (`requires_grad = true`).
    pub fn param(t: Tensor) -> Var {
        Var::leaf(t, true)
    }
    /// A leaf that never receives a gradient.
    pub fn constant(t: Tensor) -> Var {
        Var::leaf(t, false)
    }

    /// Wraps the output `value` of op `name` applied to `inputs`. When grad mode is on and some
    /// input requires grad, `make_rule(needs, value)` builds the backward rule (saving what it
    /// needs); `needs[i]` says whether input i wants a gradient. Otherwise nothing is recorded
    /// and nothing is saved.
    pub(crate) fn record(
        value: Tensor,
        name: &'static str,
        inputs: &[&Var],
        make_rule: impl FnOnce(&[bool], &Tensor) -> Rule,
    ) -> Var {
        let needs: Vec<bool> = inputs.iter().map(|v| v.node.requires_grad).collect();
        if !is_grad_enabled() || !needs.contains(&true) {
            return Var::from_parts(value, false, name, None);
        }
        let rule = make_rule(&needs, &value);
        let inputs = inputs
            .iter()
            .map(|v| v.node.requires_grad.then(|| v.node.clone()))
            .collect();
        Var::from_parts(value, true, name, Some(Op { inputs, rule }))
    }

    // ---- access ---------------------------------------------------------------------------

    /// The value (a cheap handle on shared storage). Returned by value rather than by reference
    /// because `set_value` may replace it through any clone of this `Var`.
    pub fn value(&self) -> Tensor {
        self.node.value.borrow().clone()
    }
    pub fn dims(&self) -> &[usize] {
        self.node.shape.dims()
    }
    pub fn shape(&self) -> &Shape {
        &self.node.shape
    }
    pub fn device(&self) -> Device {
        self.node.value.borrow().device()
    }
    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad
    }
    /// True for values with no recorded history (created as leaves, or computed without
    /// recording).
    pub fn is_leaf(&self) -> bool {
        self.node.is_leaf
    }
    /// A process-unique id of the node (shared by clones).
    pub fn id(&self) -> u64 {
        self.node.id
    }
    /// The accumulated gradient of a leaf; `None` if no backward has reached it since the last
    /// `zero_grad` (and always for op outputs, whose gradients are not kept).
    pub fn grad(&self) -> Option<Tensor> {
        self.node.grad.borrow().clone()
    }
    pub fn zero_grad(&self) {
        *self.node.grad.borrow_mut() = None;
    }

    /// Replaces a leaf's value with one of the same shape and device (optimiser steps,
    /// checkpoint loads); every clone of this `Var` sees it. Graphs already built keep the values
    /// they saved.
    pub fn set_value(&self, t: Tensor) -> Result<()> {
        if !self.node.is_leaf {
            return Err(Error::Autograd(format!(
                "set_value: {self:?} is the output of an op, only leaves can be assigned"
            )));
        }
        if t.dims() != self.dims() {
            return Err(Error::shape(
                "set_value",
                format!("{:?} vs new value {:?}", self.node.shape, t.shape()),
            ));
        }
        let (have, new) = (self.device(), t.device());
        if have != new {
            return Err(Error::DeviceMismatch {
                op: "set_value",
                a: have.to_string(),
                b: new.to_string(),
            });
        }
        *self.node.value.borrow_mut() = t;
        Ok(())
    }

    /// Moves a leaf's value to `device` (a no-op when it is there already) and drops its
    /// gradient, which lived on the old device: how a model's parameters go to the GPU.
    pub fn relocate(&self, device: Device) -> Result<()> {
        if !self.node.is_leaf {
            return Err(Error::Autograd(format!(
                "relocate: {self:?} is the output of an op, only leaves can be moved"
            )));
        }
        if self.device() == device {
            return Ok(());
        }
        let moved = self.value().to_device(device)?;
        *self.node.value.borrow_mut() = moved;
        self.zero_grad();
        Ok(())
    }

    /// Same value, no history, `requires_grad = false`: gradients stop here.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    // ---- backward -------------------------------------------------------------------------

    /// Backpropagates from this one-element `Var`, seeding with 1.
    pub fn backward(&self) -> Result<()> {
        if self.node.shape.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward: output of shape {:?} is not a scalar; use backward_with(grad)",
                self.node.shape
            )));
        }
        let seed = Tensor::full(1.0, self.node.shape.clone()).to_device(self.device())?;
        super::backward::run(self, seed)
    }

    /// Backpropagates from this `Var` with upstream gradient `grad` (same shape). Gradients
    /// accumulate into the leaves that require grad; the graph's saved tensors are released.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.dims() != self.dims() {
            return Err(Error::shape(
                "backward_with",
                format!(
                    "gradient {:?} for an output of shape {:?}",
                    grad.shape(),
                    self.node.shape
                ),
            ));
        }
        super::backward::run(self, grad.clone())
    }
}

//! The backward engine: topological order of the graph reachable from the root (iterative DFS,
//! so graphs thousands of ops deep do not overflow the stack), then one reverse sweep that runs
//! each node's rule once, with its gradient complete, and frees what that node held.

use super::var::{Node, Var};
use crate::backend::{self, BinaryOp};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Backpropagates `seed` (the gradient of `root`, shape already checked) into the leaves.
pub(crate) fn run(root: &Var, seed: Tensor) -> Result<()> {
    let node = &root.node;
    if !node.requires_grad {
        return Err(Error::Autograd(format!(
            "backward: {root:?} does not require grad (no input requires grad, or it was computed \
             under no_grad)"
        )));
    }
    if node.is_leaf {
        return accumulate_leaf(node, seed);
    }
    let order = topo_order(node)?;
    // Gradients of interior nodes not yet processed; each is removed (and freed) when its node
    // runs, which is after every consumer of that node has contributed.
    let mut pending: HashMap<u64, Tensor> = HashMap::new();
    pending.insert(node.id, seed);
    // Consuming `order` drops each node's last engine-held reference right after it runs.
    for n in order {
        let op = n.op.borrow_mut().take();
        let (Some(op), Some(dy)) = (op, pending.remove(&n.id)) else {
            continue;
        };
        let grads = (op.rule)(&dy)?;
        drop(dy);
        if grads.len() != op.inputs.len() {
            return Err(Error::Autograd(format!(
                "{}: backward rule returned {} gradients for {} inputs",
                n.name,
                grads.len(),
                op.inputs.len()
            )));
        }
        for (input, g) in op.inputs.into_iter().zip(grads) {
            let Some(input) = input else { continue };
            let g = g.ok_or_else(|| {
                Error::Autograd(format!(
                    "{}: backward rule gave no gradient for an input that requires one",
                    n.name
                ))
            })?;
            if g.dims() != input.value_dims() {
                return Err(Error::Autograd(format!(
                    "{}: gradient of shape {:?} for an input of shape {:?}",
                    n.name,
                    g.shape(),
                    input.value_dims()
                )));
            }
            if input.is_leaf {
                accumulate_leaf(&input, g)?;
            } else {
                let slot = pending.remove(&input.id);
                pending.insert(input.id, add_opt(slot, g)?);
            }
        }
    }
    Ok(())
}

/// Nodes with history reachable from `root`, each before all of its inputs (root first).
/// Errors if the walk meets a node whose rule an earlier backward already consumed, before
/// anything has been changed.
fn topo_order(root: &Rc<Node>) -> Result<Vec<Rc<Node>>> {
    let mut visited: HashSet<u64> = HashSet::new();
    let mut post: Vec<Rc<Node>> = Vec::new();
    // (node, its interior inputs not yet visited)
    let mut stack: Vec<(Rc<Node>, Vec<Rc<Node>>)> = Vec::new();
    visited.insert(root.id);
    stack.push((root.clone(), interior_inputs(root)?));
    loop {
        let next = match stack.last_mut() {
            None => break,
            Some((_, todo)) => todo.pop(),
        };
        match next {
            Some(child) => {
                if visited.insert(child.id) {
                    let inputs = interior_inputs(&child)?;
                    stack.push((child, inputs));
                }
            }
            None => {
                if let Some((done, _)) = stack.pop() {
                    post.push(done);
                }
            }
        }
    }
    post.reverse();
    Ok(post)
}

/// The inputs of `n` that have history of their own.
fn interior_inputs(n: &Rc<Node>) -> Result<Vec<Rc<Node>>> {
    match &*n.op.borrow() {
        Some(op) => Ok(op.inputs.iter().flatten().filter(|i| !i.is_leaf).cloned().collect()),
        None => Err(Error::Autograd(format!(
            "backward through `{}` (node #{}) whose saved tensors were freed by an earlier backward; \
             recompute the forward pass",
            n.name, n.id
        ))),
    }
}

fn accumulate_leaf(leaf: &Node, g: Tensor) -> Result<()> {
    let mut slot = leaf.grad.borrow_mut();
    let sum = add_opt(slot.clone(), g)?;
    *slot = Some(sum);
    Ok(())
}

fn add_opt(acc: Option<Tensor>, g: Tensor) -> Result<Tensor> {
    match acc {
        None => Ok(g),
        Some(a) => backend::for_tensor(&a)?.binary(BinaryOp::Add, &a, &g),
    }
}

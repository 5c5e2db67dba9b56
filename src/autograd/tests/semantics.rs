//! Semantics of the engine: shared subgraphs, accumulation, detach, no_grad, freeing, depth.

use super::{assert_all_close, randn, vals};
use crate::autograd::var::Var;
use crate::autograd::{is_grad_enabled, no_grad};
use crate::error::Error;
use crate::tensor::Tensor;

#[test]
fn shared_subgraph_sums_gradients() {
    // y = x·x + x: dy/dx = 2x + 1, with x used three times.
    let xv = randn(&[2, 3], 200);
    let x = Var::param(xv.clone());
    let y = x.mul(&x).unwrap().add(&x).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let want: Vec<f32> = vals(&xv).iter().map(|v| 2.0 * v + 1.0).collect();
    assert_all_close(&vals(&x.grad().unwrap()), &want, 1e-6);
    // A diamond: z = 2x feeds both factors of z·z, so d/dx = 8x.
    let x = Var::param(xv.clone());
    let z = x.mul_scalar(2.0).unwrap();
    z.mul(&z).unwrap().sum_all().unwrap().backward().unwrap();
    let want: Vec<f32> = vals(&xv).iter().map(|v| 8.0 * v).collect();
    assert_all_close(&vals(&x.grad().unwrap()), &want, 1e-6);
}

#[test]
fn gradients_accumulate_until_zero_grad() {
    let x = Var::param(Tensor::from_vec(vec![1.0, -2.0], [2]).unwrap());
    for _ in 0..2 {
        x.mul_scalar(3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    }
    assert_eq!(vals(&x.grad().unwrap()), vec![6.0, 6.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    x.sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![1.0, 1.0]);
}

#[test]
fn detach_stops_gradients() {
    let xv = Tensor::from_vec(vec![1.5, -0.5, 2.0], [3]).unwrap();
    let x = Var::param(xv.clone());
    let d = x.detach();
    assert!(!d.requires_grad() && d.is_leaf());
    assert_eq!(vals(&d.value()), vals(&xv));
    x.mul(&d).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vals(&xv));
    assert!(d.grad().is_none());
}

#[test]
fn no_grad_records_nothing() {
    let x = Var::param(randn(&[2, 2], 210));
    assert!(is_grad_enabled());
    let y = no_grad(|| {
        assert!(!is_grad_enabled());
        // Nested no_grad restores the outer (still disabled) state.
        no_grad(|| ());
        assert!(!is_grad_enabled());
        x.mul(&x).unwrap().exp().unwrap()
    });
    assert!(is_grad_enabled());
    assert!(!y.requires_grad() && y.is_leaf());
    assert!(y.node.op.borrow().is_none());
    assert!(matches!(
        y.sum_all().unwrap().backward(),
        Err(Error::Autograd(_))
    ));
    // Ops on inputs that require no grad record nothing either.
    let c = Var::constant(randn(&[2, 2], 211));
    let z = c.mul(&c).unwrap();
    assert!(!z.requires_grad() && z.node.op.borrow().is_none());
}

#[test]
fn leaves_without_requires_grad_get_no_gradient() {
    let x = Var::param(randn(&[3], 220));
    let c = Var::leaf(randn(&[3], 221), false);
    x.mul(&c).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vals(&c.value()));
    assert!(c.grad().is_none());
}

#[test]
fn backward_needs_a_scalar_or_a_matching_gradient() {
    let x = Var::param(randn(&[2, 3], 230));
    let y = x.mul_scalar(2.0).unwrap();
    assert!(matches!(y.backward(), Err(Error::Autograd(_))));
    assert!(matches!(
        y.backward_with(&Tensor::ones([3, 2])),
        Err(Error::Shape { .. })
    ));
    let seed = randn(&[2, 3], 231);
    y.backward_with(&seed).unwrap();
    let want: Vec<f32> = vals(&seed).iter().map(|v| 2.0 * v).collect();
    assert_all_close(&vals(&x.grad().unwrap()), &want, 1e-6);
    // A one-element non-scalar shape is fine for backward().
    let z = x.sum(&[0, 1], true).unwrap();
    assert_eq!(z.dims(), &[1, 1]);
    z.backward().unwrap();
}

#[test]
fn backward_on_a_leaf_accumulates_the_seed() {
    let x = Var::param(Tensor::scalar(3.0));
    x.backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![1.0]);
}

#[test]
fn second_backward_through_a_freed_graph_is_an_error() {
    let x = Var::param(randn(&[4], 240));
    let h = x.tanh().unwrap();
    let loss = h.sum_all().unwrap();
    loss.backward().unwrap();
    let first = vals(&x.grad().unwrap());
    // Every node the sweep reached has released its rule and saved tensors.
    assert!(h.node.op.borrow().is_none() && loss.node.op.borrow().is_none());
    assert!(matches!(loss.backward(), Err(Error::Autograd(_))));
    // Building on a consumed node fails at backward time, and changes nothing.
    let again = h.mul_scalar(2.0).unwrap().sum_all().unwrap();
    assert!(matches!(again.backward(), Err(Error::Autograd(_))));
    assert_eq!(vals(&x.grad().unwrap()), first);
}

#[test]
fn deep_chain_does_not_overflow_the_stack() {
    // A small stack makes any recursion over the graph (sort, sweep or drop) fail loudly.
    let run = || {
        let x = Var::param(Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap());
        let mut y = x.clone();
        for i in 0..10_000 {
            y = if i % 2 == 0 {
                y.add_scalar(0.001).unwrap()
            } else {
                y.mul_scalar(1.0).unwrap()
            };
        }
        y.sum_all().unwrap().backward().unwrap();
        let g = vals(&x.grad().unwrap());
        // A second deep graph that is dropped without a backward.
        let mut z = x.clone();
        for _ in 0..10_000 {
            z = z.neg().unwrap();
        }
        drop(z);
        g
    };
    let g = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(g, vec![1.0, 1.0]);
}

#[test]
fn set_value_is_seen_by_clones_and_checked() {
    let a = Var::param(Tensor::zeros([2]));
    let b = a.clone();
    a.set_value(Tensor::full(0.5, [2])).unwrap();
    assert_eq!(vals(&b.value()), vec![0.5, 0.5]);
    assert!(matches!(
        a.set_value(Tensor::zeros([3])),
        Err(Error::Shape { .. })
    ));
    let y = a.mul_scalar(2.0).unwrap();
    assert!(matches!(
        y.set_value(Tensor::zeros([2])),
        Err(Error::Autograd(_))
    ));
    // A graph built before the update keeps the values it saved.
    let x = Var::param(Tensor::full(2.0, [2]));
    let sq = x.mul(&x).unwrap();
    x.set_value(Tensor::full(5.0, [2])).unwrap();
    sq.sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![4.0, 4.0]);
}

#[test]
fn errors_from_bad_shapes_are_typed() {
    let a = Var::param(randn(&[2, 3], 250));
    let b = Var::param(randn(&[4], 251));
    assert!(matches!(a.add(&b), Err(Error::Shape { .. })));
    assert!(Var::concat(&[], 0).is_err());
    assert!(a.narrow(1, 2, 2).is_err());
}

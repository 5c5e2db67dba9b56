//! Batched matrix products.

use super::{backend_for, grad_if, sum_to_shape};
use crate::autograd::var::Var;
use crate::error::Result;

impl Var {
    /// `[.., M, K] × [.., K, N]` with equal leading dims (or a rank-2 operand broadcast).
    pub fn matmul(&self, b: &Var) -> Result<Var> {
        self.matmul_t(b, false, false)
    }

    /// `op(self) × op(b)` where `op` transposes the last two dims when its flag is set.
    pub fn matmul_t(&self, b: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let be = backend_for("matmul", &[self, b])?;
        let (av, bv) = (self.value(), b.value());
        let y = be.matmul(&av, &bv, trans_a, trans_b)?;
        Ok(Var::record(y, "matmul", &[self, b], |needs, _| {
            let (na, nb) = (needs[0], needs[1]);
            let (sa, sb) = (av.dims().to_vec(), bv.dims().to_vec());
            // dA needs B and dB needs A: keep only what is used.
            let (keep_b, keep_a) = (na.then_some(bv), nb.then_some(av));
            Box::new(move |dc| {
                // With A' = op(A), B' = op(B): dA' = dC·B'ᵀ and dB' = A'ᵀ·dC. Each transpose is
                // folded into the product's flags; a rank-2 operand that was broadcast over the
                // batch gets its per-batch gradients summed.
                let da = grad_if(na, || {
                    let b = keep_b.as_ref().ok_or_else(missing)?;
                    let g = match trans_a {
                        false => be.matmul(dc, b, false, !trans_b)?,
                        true => be.matmul(b, dc, trans_b, true)?,
                    };
                    sum_to_shape(be, g, &sa)
                })?;
                let db = grad_if(nb, || {
                    let a = keep_a.as_ref().ok_or_else(missing)?;
                    let g = match trans_b {
                        false => be.matmul(a, dc, !trans_a, false)?,
                        true => be.matmul(dc, a, true, trans_a)?,
                    };
                    sum_to_shape(be, g, &sb)
                })?;
                Ok(vec![da, db])
            })
        }))
    }
}

fn missing() -> crate::Error {
    crate::Error::Autograd("matmul: backward rule is missing a saved tensor".into())
}

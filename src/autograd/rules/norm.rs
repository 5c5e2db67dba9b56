//! Normalisations: instance norm (optional affine), PONO, and the fused SPADE modulation.

use super::{backend_for, grad_if};
use crate::autograd::var::Var;
use crate::backend::{ReduceOp, SpadeNorm};
use crate::error::{Error, Result};

impl Var {
    /// Instance normalisation of NCHW `self` over H×W (biased variance), then the optional
    /// per-channel affine `· weight + bias`.
    pub fn instance_norm(&self, weight: Option<&Var>, bias: Option<&Var>, eps: f32) -> Result<Var> {
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let be = backend_for("instance_norm", &inputs)?;
        let xv = self.value();
        let (wv, bv) = (weight.map(|w| w.value()), bias.map(|b| b.value()));
        let (y, stats) = be.instance_norm(&xv, wv.as_ref(), bv.as_ref(), eps)?;
        Ok(Var::record(y, "instance_norm", &inputs, |needs, _| {
            // Input slots: x, then weight if given, then bias if given.
            let nx = needs[0];
            let nw = weight.is_some() && needs[1];
            let nb = bias.is_some() && needs[needs.len() - 1];
            let (has_w, has_b) = (weight.is_some(), bias.is_some());
            Box::new(move |dy| {
                let (dx, dw, db) = be.instance_norm_backward(&xv, wv.as_ref(), &stats, dy)?;
                let mut grads = vec![nx.then_some(dx)];
                if has_w {
                    let dw = dw.ok_or_else(|| {
                        Error::Autograd("instance_norm: backend gave no weight gradient".into())
                    });
                    grads.push(if nw { Some(dw?) } else { None });
                }
                if has_b {
                    // The bias gradient is Σ dy over N, H, W whether or not the backend returned it.
                    grads.push(grad_if(nb, || match db {
                        Some(db) => Ok(db),
                        None => be.reduce(ReduceOp::Sum, dy, &[0, 2, 3], false),
                    })?);
                }
                Ok(grads)
            })
        }))
    }

    /// Positional normalisation: over channels per (n, h, w), unbiased variance.
    pub fn pono(&self, eps: f32) -> Result<Var> {
        let be = backend_for("pono", &[self])?;
        let xv = self.value();
        let (y, stats) = be.pono(&xv, eps)?;
        Ok(Var::record(y, "pono", &[self], |_, _| {
            Box::new(move |dy| Ok(vec![Some(be.pono_backward(&xv, &stats, dy)?)]))
        }))
    }

    /// Fused `norm(self) · (1 + gamma) + beta`, `gamma` and `beta` of `self`'s shape.
    pub fn spade_modulate(
        &self,
        gamma: &Var,
        beta: &Var,
        norm: SpadeNorm,
        eps: f32,
    ) -> Result<Var> {
        let inputs = [self, gamma, beta];
        let be = backend_for("spade_modulate", &inputs)?;
        let (xv, gv) = (self.value(), gamma.value());
        let (y, stats) = be.spade_modulate(&xv, &gv, &beta.value(), norm, eps)?;
        Ok(Var::record(y, "spade_modulate", &inputs, |needs, _| {
            let needs = [needs[0], needs[1], needs[2]];
            Box::new(move |dy| {
                let (dx, dg, db) = be.spade_modulate_backward(&xv, &gv, &stats, norm, dy)?;
                Ok(vec![
                    needs[0].then_some(dx),
                    needs[1].then_some(dg),
                    needs[2].then_some(db),
                ])
            })
        }))
    }
}

//! The correlation-softmax-warp primitive (CoCosNet correspondence and self-attention).

use super::backend_for;
use crate::autograd::var::Var;
use crate::backend::CorrWarpParams;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Var {
    /// `softmax_M(scale · q̂ᵀk̂) · v` for q [B,C,N], k [B,C,M], v [B,M,V] -> [B,N,V].
    pub fn corr_warp(q: &Var, k: &Var, v: &Var, p: CorrWarpParams) -> Result<Var> {
        corr_warp_impl(q, k, v, p, false).map(|(out, _)| out)
    }

    /// `corr_warp`, also returning the attention A [B,N,M] (a plain tensor: no gradient).
    pub fn corr_warp_with_attn(
        q: &Var,
        k: &Var,
        v: &Var,
        p: CorrWarpParams,
    ) -> Result<(Var, Tensor)> {
        let (out, attn) = corr_warp_impl(q, k, v, p, true)?;
        let attn = attn.ok_or_else(|| {
            Error::Autograd("corr_warp: the backend returned no attention".into())
        })?;
        Ok((out, attn))
    }
}

fn corr_warp_impl(
    q: &Var,
    k: &Var,
    v: &Var,
    p: CorrWarpParams,
    return_attn: bool,
) -> Result<(Var, Option<Tensor>)> {
    let inputs = [q, k, v];
    let be = backend_for("corr_warp", &inputs)?;
    let (qv, kv, vv) = (q.value(), k.value(), v.value());
    let (out, attn) = be.corr_warp(&qv, &kv, &vv, p, return_attn)?;
    let out = Var::record(out, "corr_warp", &inputs, |needs, _| {
        let needs = [needs[0], needs[1], needs[2]];
        // The backward recomputes the attention from q, k, v rather than keeping the N×M matrix.
        Box::new(move |dout| {
            let (dq, dk, dv) = be.corr_warp_backward(&qv, &kv, &vv, p, dout)?;
            Ok(vec![
                needs[0].then_some(dq),
                needs[1].then_some(dk),
                needs[2].then_some(dv),
            ])
        })
    });
    Ok((out, attn))
}

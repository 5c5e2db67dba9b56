//! 2-D convolution.

use super::{backend_for, grad_if};
use crate::autograd::var::Var;
use crate::backend::Conv2dParams;
use crate::error::Result;

impl Var {
    /// conv2d of NCHW `x` with `w` [C_out, C_in/groups, kH, kW] and an optional bias [C_out].
    pub fn conv2d(x: &Var, w: &Var, bias: Option<&Var>, p: Conv2dParams) -> Result<Var> {
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let be = backend_for("conv2d", &inputs)?;
        let (xv, wv) = (x.value(), w.value());
        let bv = bias.map(|b| b.value());
        let y = be.conv2d(&xv, &wv, bv.as_ref(), p)?;
        Ok(Var::record(y, "conv2d", &inputs, |needs, _| {
            let (nx, nw) = (needs[0], needs[1]);
            let nb = needs.get(2).copied().unwrap_or(false);
            let (x_dims, w_dims) = (xv.dims().to_vec(), wv.dims().to_vec());
            // dx needs w, dw needs x.
            let (keep_w, keep_x) = (nx.then_some(wv), nw.then_some(xv));
            let has_bias = bias.is_some();
            Box::new(move |dy| {
                let dx = grad_if(nx, || match &keep_w {
                    Some(w) => be.conv2d_backward_input(dy, w, &x_dims, p),
                    None => Err(missing()),
                })?;
                let dw = grad_if(nw, || match &keep_x {
                    Some(x) => be.conv2d_backward_weight(x, dy, &w_dims, p),
                    None => Err(missing()),
                })?;
                let mut grads = vec![dx, dw];
                if has_bias {
                    grads.push(grad_if(nb, || be.conv2d_backward_bias(dy))?);
                }
                Ok(grads)
            })
        }))
    }
}

fn missing() -> crate::Error {
    crate::Error::Autograd("conv2d: backward rule is missing a saved tensor".into())
}

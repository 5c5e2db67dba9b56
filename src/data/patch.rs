//! Per-sample square patches of image batches: the face crops of stage 3 (MODEL.md §4) are cut
//! out of [B, C, H, W] tensors at each sample's own box and pasted back after refinement.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Dims of a rank-4 tensor, or a shape error naming `op`.
fn dims4(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.dims() {
        [b, c, h, w] => Ok([b, c, h, w]),
        ref d => Err(Error::shape(
            op,
            format!("expected [B, C, H, W], got {d:?}"),
        )),
    }
}

/// The top-left corner of a `ph`×`pw` box wanted at (x0, y0), moved to lie inside `h`×`w`.
fn clamp_box((x0, y0): (usize, usize), ph: usize, pw: usize, h: usize, w: usize) -> (usize, usize) {
    (x0.min(w - pw), y0.min(h - ph))
}

/// Crops a `size`×`size` patch per sample from `t` [B, C, H, W], sample b at its box corner
/// `boxes[b]` = (x0, y0), moved inside the image if it would stick out. Returns [B, C, size, size].
pub fn crop_tensor(t: &Tensor, boxes: &[(usize, usize)], size: usize) -> Result<Tensor> {
    const OP: &str = "crop_tensor";
    let [b, c, h, w] = dims4(OP, t)?;
    if boxes.len() != b {
        return Err(Error::shape(
            OP,
            format!("{} boxes for a batch of {b} ({:?})", boxes.len(), t.dims()),
        ));
    }
    if size == 0 || size > h || size > w {
        return Err(Error::invalid(
            OP,
            format!("crop size {size} does not fit in {:?}", t.dims()),
        ));
    }
    let src = t.cpu_data()?;
    let mut out = vec![0f32; b * c * size * size];
    out.par_chunks_mut(size * size)
        .enumerate()
        .for_each(|(plane, dst)| {
            let (x0, y0) = clamp_box(boxes[plane / c], size, size, h, w);
            let base = plane * h * w;
            for (r, row) in dst.chunks_exact_mut(size).enumerate() {
                let s = base + (y0 + r) * w + x0;
                row.copy_from_slice(&src[s..s + size]);
            }
        });
    Tensor::from_vec(out, vec![b, c, size, size])
}

/// `base` [B, C, H, W] with `patch` [B, C, h, w] written over it at each sample's box corner,
/// moved inside the image the same way as `crop_tensor`, so pasting a crop back is exact.
pub fn paste_tensor(base: &Tensor, patch: &Tensor, boxes: &[(usize, usize)]) -> Result<Tensor> {
    const OP: &str = "paste_tensor";
    let [b, c, h, w] = dims4(OP, base)?;
    let [pb, pc, ph, pw] = dims4(OP, patch)?;
    if pb != b || pc != c || ph > h || pw > w || ph == 0 || pw == 0 || boxes.len() != b {
        return Err(Error::shape(
            OP,
            format!(
                "patch {:?} with {} boxes does not fit base {:?}",
                patch.dims(),
                boxes.len(),
                base.dims()
            ),
        ));
    }
    let src = patch.cpu_data()?;
    let mut out = base.cpu_data()?.to_vec();
    out.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, dst)| {
            let (x0, y0) = clamp_box(boxes[plane / c], ph, pw, h, w);
            let p = &src[plane * ph * pw..(plane + 1) * ph * pw];
            for (r, row) in p.chunks_exact(pw).enumerate() {
                let d = (y0 + r) * w + x0;
                dst[d..d + pw].copy_from_slice(row);
            }
        });
    Tensor::from_vec(out, vec![b, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_and_paste_round_trip_and_match_reference() {
        let (b, c, h, w) = (3, 2, 9, 7);
        let t = Tensor::randn(vec![b, c, h, w], 0.0, 1.0, 4);
        let boxes = [(1, 2), (10, 10), (0, 5)]; // the second and third are moved inside
        let size = 4;
        let cr = crop_tensor(&t, &boxes, size).unwrap();
        assert_eq!(cr.dims(), &[b, c, size, size]);
        let (v, got) = (t.cpu_data().unwrap(), cr.cpu_data().unwrap());
        let corners = [(1, 2), (3, 5), (0, 5)];
        for s in 0..b {
            let (x0, y0) = corners[s];
            for ch in 0..c {
                for r in 0..size {
                    for col in 0..size {
                        let want = v[((s * c + ch) * h + y0 + r) * w + x0 + col];
                        assert_eq!(got[((s * c + ch) * size + r) * size + col], want);
                    }
                }
            }
        }
        // Pasting the crop back restores the original exactly.
        let back = paste_tensor(&t, &cr, &boxes).unwrap();
        assert_eq!(back.cpu_data().unwrap(), v);
        // Pasting zeros then cropping gives zeros, and nothing outside the boxes changes.
        let zeros = Tensor::zeros(vec![b, c, size, size]);
        let pasted = paste_tensor(&t, &zeros, &boxes).unwrap();
        assert!(crop_tensor(&pasted, &boxes, size)
            .unwrap()
            .cpu_data()
            .unwrap()
            .iter()
            .all(|&x| x == 0.0));
        let changed = pasted
            .cpu_data()
            .unwrap()
            .iter()
            .zip(v)
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed <= b * c * size * size);
        // Bad input.
        assert!(crop_tensor(&t, &boxes[..2], size).is_err());
        assert!(crop_tensor(&t, &boxes, 8).is_err());
        assert!(crop_tensor(&t, &boxes, 0).is_err());
        assert!(crop_tensor(&Tensor::zeros(vec![2, 3, 4]), &[(0, 0); 2], 2).is_err());
        assert!(paste_tensor(&t, &Tensor::zeros(vec![b, c + 1, 2, 2]), &boxes).is_err());
        assert!(paste_tensor(&t, &zeros, &boxes[..1]).is_err());
    }
}

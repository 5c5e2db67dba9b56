//! im2col (`unfold`) and its adjoint col2im (`fold`). `Im2col` is the shared gather/scatter
//! kernel: the conv routes its GEMMs through it too (with reflect padding, which unfold lacks).

use crate::backend::checks;
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Elements per rayon task in the parallel gathers and scatters.
const GRAIN: usize = 1 << 15;

/// Geometry of the im2col matrix of one sample's `c` planes of `h × w`: rows are
/// `ci·kh·kw + ki·kw + kj`, columns the `oh·ow` output positions in row-major order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Im2col {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub oh: usize,
    pub ow: usize,
    /// Mirror padding (PyTorch `reflect`) instead of zeros; needs padding < size.
    pub reflect: bool,
}

/// Where padded coordinate `i` (may be negative or past the end) reads from, if anywhere.
#[inline]
fn source(i: isize, size: usize, reflect: bool) -> Option<usize> {
    let n = size as isize;
    if (0..n).contains(&i) {
        Some(i as usize)
    } else if !reflect {
        None
    } else if i < 0 {
        Some((-i) as usize)
    } else {
        Some((2 * (n - 1) - i) as usize)
    }
}

impl Im2col {
    pub fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    pub fn cols(&self) -> usize {
        self.oh * self.ow
    }
    /// Splits the output columns `[ox0, ox0 + seg)` of kernel column `kj` at `a ≤ b`: on
    /// `[a, b)` the input column `ox·sw + off` lies inside the image and needs no padding logic.
    #[inline]
    fn split(&self, kj: usize, ox0: usize, seg: usize) -> (usize, usize, isize) {
        let sw = self.stride.1 as isize;
        let off = (kj * self.dilation.1) as isize - self.padding.1 as isize;
        let lo = if off < 0 { (-off + sw - 1) / sw } else { 0 };
        let end = self.w as isize - off;
        let hi = if end > 0 { (end + sw - 1) / sw } else { 0 };
        let a = (lo as usize).clamp(ox0, ox0 + seg);
        (a, (hi as usize).clamp(a, ox0 + seg), off)
    }

    /// Calls `f(row, plane offset of the source row or None, kj, first output column, offset in
    /// the block, run length)` for every run of output columns `[l0, l0 + n)` that share an
    /// output row.
    #[inline]
    fn walk(
        &self,
        l0: usize,
        n: usize,
        mut f: impl FnMut(usize, Option<usize>, usize, usize, usize, usize),
    ) {
        let (sh, ph, dh) = (self.stride.0, self.padding.0 as isize, self.dilation.0);
        for r in 0..self.rows() {
            let (ci, ki, kj) = (
                r / (self.kh * self.kw),
                (r / self.kw) % self.kh,
                r % self.kw,
            );
            let plane = ci * self.h * self.w;
            let mut l = l0;
            while l < l0 + n {
                let (oy, ox0) = (l / self.ow, l % self.ow);
                let seg = (self.ow - ox0).min(l0 + n - l);
                let iy = (oy * sh + ki * dh) as isize - ph;
                let src = source(iy, self.h, self.reflect).map(|y| plane + y * self.w);
                f(r, src, kj, ox0, l - l0, seg);
                l += seg;
            }
        }
    }

    /// Writes columns `[l0, l0 + n)` of the im2col matrix of `x` (`c·h·w` values) into `out`,
    /// laid out `[rows, n]`.
    pub fn gather(&self, x: &[f32], l0: usize, n: usize, out: &mut [f32]) {
        self.walk(l0, n, |r, src, kj, ox0, d0, seg| {
            let dst = &mut out[r * n + d0..r * n + d0 + seg];
            let Some(base) = src else {
                dst.fill(0.0);
                return;
            };
            let row = &x[base..base + self.w];
            let (a, b, off) = self.split(kj, ox0, seg);
            let sw = self.stride.1;
            let at = |ox: usize| {
                source(ox as isize * sw as isize + off, self.w, self.reflect)
                    .map_or(0.0, |i| row[i])
            };
            for (k, d) in dst[..a - ox0].iter_mut().enumerate() {
                *d = at(ox0 + k);
            }
            let start = (a as isize * sw as isize + off).max(0) as usize;
            if sw == 1 && b > a {
                dst[a - ox0..b - ox0].copy_from_slice(&row[start..start + b - a]);
            } else {
                for (k, d) in dst[a - ox0..b - ox0].iter_mut().enumerate() {
                    *d = row[start + k * sw];
                }
            }
            for (k, d) in dst[b - ox0..].iter_mut().enumerate() {
                *d = at(b + k);
            }
        });
    }

    /// Adds columns `[l0, l0 + n)` of `cols` (laid out `[rows, n]`) into `x`: the adjoint of
    /// `gather` (with reflect padding, border entries land on their mirrored pixel).
    pub fn scatter_add(&self, cols: &[f32], l0: usize, n: usize, x: &mut [f32]) {
        self.walk(l0, n, |r, src, kj, ox0, d0, seg| {
            let Some(base) = src else { return };
            let s = &cols[r * n + d0..r * n + d0 + seg];
            let row = &mut x[base..base + self.w];
            let (a, b, off) = self.split(kj, ox0, seg);
            let sw = self.stride.1;
            let start = (a as isize * sw as isize + off).max(0) as usize;
            for (k, &v) in s[a - ox0..b - ox0].iter().enumerate() {
                row[start + k * sw] += v;
            }
            let border = (ox0..a).chain(b..ox0 + seg);
            for ox in border {
                if let Some(i) = source(ox as isize * sw as isize + off, self.w, self.reflect) {
                    row[i] += s[ox - ox0];
                }
            }
        });
    }

    /// `gather`, one rayon task per few channels (each channel owns `kh·kw` contiguous rows).
    pub fn par_gather(&self, x: &[f32], l0: usize, n: usize, out: &mut [f32]) {
        let (one, plane, rows) = self.per_channel(n);
        let min = (GRAIN / rows).max(1);
        out[..self.c * rows]
            .par_chunks_mut(rows)
            .zip(x.par_chunks(plane))
            .with_min_len(min)
            .for_each(|(o, xp)| one.gather(xp, l0, n, o));
    }

    /// `scatter_add`, one rayon task per few channels (a channel's rows only touch its plane).
    pub fn par_scatter_add(&self, cols: &[f32], l0: usize, n: usize, x: &mut [f32]) {
        let (one, plane, rows) = self.per_channel(n);
        let min = (GRAIN / rows).max(1);
        x[..self.c * plane]
            .par_chunks_mut(plane)
            .zip(cols.par_chunks(rows))
            .with_min_len(min)
            .for_each(|(xp, c)| one.scatter_add(c, l0, n, xp));
    }

    /// The one-channel geometry, the plane size and the rows·columns of one channel's block.
    fn per_channel(&self, n: usize) -> (Im2col, usize, usize) {
        let one = Im2col { c: 1, ..*self };
        (one, (self.h * self.w).max(1), (one.rows() * n).max(1))
    }
}

/// The im2col of all `planes` planes of a batch at once: rows `(n·C + c)·kh·kw + …`, which is
/// the [N, C·kH·kW, L] layout of `unfold`.
fn geometry(
    planes: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    p: UnfoldParams,
) -> Im2col {
    let (kh, kw) = p.kernel;
    let (stride, padding, dilation) = (p.stride, p.padding, p.dilation);
    Im2col {
        c: planes,
        h,
        w,
        kh,
        kw,
        stride,
        padding,
        dilation,
        oh,
        ow,
        reflect: false,
    }
}

/// [N, C, H, W] -> [N, C·kH·kW, L] (torch.nn.functional.unfold, zero padding).
pub fn unfold(x: &Tensor, p: UnfoldParams) -> Result<Tensor> {
    let [n, c, h, w] = checks::nchw("unfold", x)?;
    let o = checks::unfold("unfold", h, w, p)?;
    let g = geometry(n * c, (h, w), o, p);
    let mut out = vec![0.0f32; g.rows() * g.cols()];
    if !out.is_empty() {
        g.par_gather(x.cpu_data()?, 0, g.cols(), &mut out);
    }
    Tensor::from_vec(out, [n, c * p.kernel.0 * p.kernel.1, g.cols()])
}

/// [N, C·kH·kW, L] -> [N, C, H, W] summing overlaps (torch.nn.functional.fold): the adjoint of
/// `unfold`.
pub fn fold(cols: &Tensor, out_hw: (usize, usize), p: UnfoldParams) -> Result<Tensor> {
    let ([n, c, h, w], o) = checks::fold(cols, out_hw, p)?;
    let mut out = vec![0.0f32; n * c * h * w];
    if !out.is_empty() {
        let l = o.0 * o.1;
        geometry(n * c, out_hw, o, p).par_scatter_add(cols.cpu_data()?, 0, l, &mut out);
    }
    Tensor::from_vec(out, [n, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x dims, kernel, stride, padding, dilation)
    type Case = (
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        (usize, usize),
    );
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ([2, 3, 7, 9], (3, 3), (1, 1), (1, 1), (1, 1)),
        ([1, 2, 8, 7], (2, 3), (2, 1), (0, 1), (1, 2)),
        ([3, 1, 5, 5], (1, 1), (2, 2), (0, 0), (1, 1)),
        ([1, 4, 6, 6], (4, 4), (2, 2), (1, 1), (1, 1)),
        ([2, 2, 3, 4], (3, 3), (1, 1), (2, 2), (1, 1)), // padding wider than half the image
        ([1, 1, 1, 1], (1, 1), (1, 1), (0, 0), (1, 1)),
        ([1, 2, 9, 5], (3, 2), (3, 2), (1, 0), (2, 1)),
    ];

    fn params(c: &Case) -> UnfoldParams {
        UnfoldParams {
            kernel: c.1,
            stride: c.2,
            padding: c.3,
            dilation: c.4,
        }
    }

    /// Calls `f(x index, cols index)` for every in-image entry of the naive unfold.
    fn each_entry(c: &Case, mut f: impl FnMut(usize, usize)) {
        let ([n, ch, h, w], (kh, kw), (sh, sw), (ph, pw), (dh, dw)) = *c;
        let (oh, ow) = (
            (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1,
            (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1,
        );
        for (s, ci, ki, kj) in (0..n).flat_map(|s| {
            (0..ch).flat_map(move |c| (0..kh).flat_map(move |i| (0..kw).map(move |j| (s, c, i, j))))
        }) {
            for (oy, ox) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
                let iy = (oy * sh + ki * dh) as isize - ph as isize;
                let ix = (ox * sw + kj * dw) as isize - pw as isize;
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    let row = (s * ch + ci) * kh * kw + ki * kw + kj;
                    f(
                        ((s * ch + ci) * h + iy as usize) * w + ix as usize,
                        row * oh * ow + oy * ow + ox,
                    );
                }
            }
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    #[test]
    fn unfold_and_fold_match_naive_loops() {
        for (i, case) in CASES.iter().enumerate() {
            let p = params(case);
            let x = Tensor::randn(case.0, 0.0, 1.0, i as u64);
            let cols = unfold(&x, p).unwrap();
            let [n, c, h, w] = case.0;
            let l = cols.dims()[2];
            assert_eq!(
                cols.dims(),
                &[n, c * p.kernel.0 * p.kernel.1, l],
                "{case:?}"
            );
            let g = Tensor::randn(cols.dims(), 0.0, 1.0, 100 + i as u64);
            let back = fold(&g, (h, w), p).unwrap();
            assert_eq!(back.dims(), x.dims());
            let (xs, gs) = (x.cpu_data().unwrap(), g.cpu_data().unwrap());
            let mut want = vec![0.0f32; cols.numel()];
            let mut want_back = vec![0.0f64; x.numel()];
            each_entry(case, |xi, ci| {
                want[ci] = xs[xi];
                want_back[xi] += gs[ci] as f64;
            });
            assert_eq!(cols.cpu_data().unwrap(), &want[..], "unfold {case:?}");
            for (got, want) in back.cpu_data().unwrap().iter().zip(&want_back) {
                assert!(
                    (*got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "fold {case:?}"
                );
            }
            // fold is the adjoint of unfold: ⟨unfold(x), g⟩ = ⟨x, fold(g)⟩
            let (lhs, rhs) = (
                dot(cols.cpu_data().unwrap(), gs),
                dot(xs, back.cpu_data().unwrap()),
            );
            assert!(
                (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
                "{case:?}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn reflect_gather_blocks_and_scatter_are_adjoint() {
        let win = Im2col {
            c: 3,
            h: 5,
            w: 6,
            kh: 3,
            kw: 4,
            stride: (2, 1),
            padding: (2, 3),
            dilation: (1, 2),
            oh: 4,
            ow: 6,
            reflect: true,
        };
        let (k, l) = (win.rows(), win.cols());
        let x = Tensor::randn([3 * 5 * 6], 0.0, 1.0, 7);
        let xs = x.cpu_data().unwrap();
        let mut full = vec![0.0f32; k * l];
        win.gather(xs, 0, l, &mut full);
        // a reflected entry equals the mirrored pixel: row (c=0, ki=0, kj=0), column 0 reads
        // padded (−2, −3) -> (2, 3)
        assert_eq!(full[0], xs[2 * 6 + 3]);
        // blocks of columns (parallel or not) reproduce the full matrix
        for (l0, m) in [(0, 4), (4, 7), (11, 13)] {
            let mut blk = vec![0.0f32; k * m];
            win.par_gather(xs, l0, m, &mut blk);
            for r in 0..k {
                assert_eq!(&blk[r * m..(r + 1) * m], &full[r * l + l0..r * l + l0 + m]);
            }
        }
        let g = Tensor::randn([k * l], 0.0, 1.0, 8);
        let mut back = vec![0.0f32; xs.len()];
        win.par_scatter_add(g.cpu_data().unwrap(), 0, l, &mut back);
        let (lhs, rhs) = (dot(&full, g.cpu_data().unwrap()), dot(xs, &back));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn unfold_and_fold_reject_bad_input() {
        let p = params(&CASES[0]);
        let x = Tensor::zeros([1, 2, 5, 5]);
        assert!(unfold(&Tensor::zeros([2, 5, 5]), p).is_err());
        assert!(unfold(
            &x,
            UnfoldParams {
                stride: (0, 1),
                ..p
            }
        )
        .is_err());
        assert!(unfold(
            &x,
            UnfoldParams {
                dilation: (1, 0),
                ..p
            }
        )
        .is_err());
        assert!(unfold(
            &x,
            UnfoldParams {
                kernel: (0, 3),
                ..p
            }
        )
        .is_err());
        assert!(unfold(
            &x,
            UnfoldParams {
                kernel: (8, 3),
                ..p
            }
        )
        .is_err());
        let cols = unfold(&x, p).unwrap(); // [1, 18, 25]
        assert!(fold(&cols, (5, 5), p).is_ok());
        assert!(fold(&cols, (5, 6), p).is_err()); // L mismatch
        assert!(fold(&Tensor::zeros([1, 17, 25]), (5, 5), p).is_err()); // not a multiple of 9
        assert!(fold(&Tensor::zeros([18, 25]), (5, 5), p).is_err());
        assert!(fold(&cols, (0, 5), p).is_err());
    }
}

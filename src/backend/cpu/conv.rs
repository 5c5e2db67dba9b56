//! conv2d forward and backward through im2col + GEMM. Per (sample, group), the im2col matrix is
//! built a block of output columns at a time into a reused buffer that stays in cache (honouring
//! zero or reflect padding, see `unfold::Im2col`) and multiplied by `sgemm` straight into the
//! output; the backward scatters GEMM columns back (col2im) or accumulates dy·colsᵀ.

use super::sgemm;
use super::unfold::Im2col;
use crate::backend::checks::{self, ConvGeom};
use crate::backend::*;
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Target size in floats of one im2col block (rows × block columns): wide enough that the GEMM
/// amortises packing the weights, small enough to stay in cache.
const BLOCK_ELEMS: usize = 1 << 18;

/// GEMM footprint (`m·k + k·n`) from which matrixmultiply splits a product over its own threads.
/// Smaller (sample, group) tasks run in parallel on rayon; larger ones run one after another with
/// rayon inside their gathers and scatters, since nesting both would oversubscribe the cores.
const GEMM_THREADED: usize = 1 << 15;

/// Calls `f(task, piece, scratch)` for each `chunk`-sized piece of `out`, in parallel or not.
fn for_tasks<F>(out: &mut [f32], chunk: usize, parallel: bool, f: F)
where
    F: Fn(usize, &mut [f32], &mut Vec<f32>) + Sync + Send,
{
    if parallel {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(Vec::new, |buf, (i, o)| f(i, o, buf));
    } else {
        let mut buf = Vec::new();
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| f(i, o, &mut buf));
    }
}

/// The checked shapes of one conv call.
#[derive(Clone, Copy, Debug)]
struct Geom {
    shape: ConvGeom,
    n: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    /// Output channels per group.
    mg: usize,
    /// im2col of one group of one sample (`win.c` = input channels per group).
    win: Im2col,
}

impl Geom {
    fn hw(&self) -> usize {
        self.win.h * self.win.w
    }
    /// Rows of the group's im2col matrix = columns of its weight matrix.
    fn k(&self) -> usize {
        self.win.rows()
    }
    fn l(&self) -> usize {
        self.win.cols()
    }
    /// A 1×1 kernel with unit stride and no padding: the im2col matrix is the input itself.
    fn pointwise(&self) -> bool {
        let w = &self.win;
        w.kh == 1 && w.kw == 1 && w.stride == (1, 1) && w.padding == (0, 0)
    }
    /// Output columns per im2col block.
    fn block(&self) -> usize {
        (BLOCK_ELEMS / self.k().max(1)).max(64).min(self.l())
    }
    /// Whether the (sample, group) tasks should run in parallel: only when their GEMMs are too
    /// small for the GEMM crate to thread them itself (see `GEMM_THREADED`).
    fn parallel_tasks(&self) -> bool {
        // the pointwise path multiplies all columns at once
        let n = if self.pointwise() {
            self.l()
        } else {
            self.block()
        };
        self.mg * self.k() + self.k() * n < GEMM_THREADED
    }
    /// The input planes of group `gi` of sample `s`.
    fn x_group<'a>(&self, xs: &'a [f32], s: usize, gi: usize) -> &'a [f32] {
        let cg = self.win.c;
        &xs[(s * self.c_in + gi * cg) * self.hw()..][..cg * self.hw()]
    }
    /// The output-gradient planes of group `gi` of sample `s`, as [mg, L].
    fn dy_group<'a>(&self, dys: &'a [f32], s: usize, gi: usize) -> &'a [f32] {
        let (mg, l) = (self.mg, self.l());
        &dys[(s * self.c_out + gi * mg) * l..][..mg * l]
    }
    fn out_shape(&self) -> [usize; 4] {
        self.shape.out()
    }
}

/// The im2col plan of `x` dims [N, C_in, H, W] and `w` dims [C_out, C_in/groups, kH, kW],
/// once `checks::conv` has accepted them with `p`.
fn geometry(op: &'static str, x: &[usize], w: &[usize], p: Conv2dParams) -> Result<Geom> {
    let shape = checks::conv(op, x, w, p)?;
    let ([n, c_in, h, wd], [c_out, cg, kh, kw]) = (shape.x, shape.w);
    let (g, reflect) = (p.groups, p.pad_mode == PadMode::Reflect);
    let (oh, ow) = (shape.oh, shape.ow);
    let win = Im2col {
        c: cg,
        h,
        w: wd,
        kh,
        kw,
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        oh,
        ow,
        reflect,
    };
    Ok(Geom {
        shape,
        n,
        c_in,
        c_out,
        groups: g,
        mg: c_out / g,
        win,
    })
}

/// dst [cols, rows] = srcᵀ, where row r of src starts at `r·rs`. Eight source rows at a time:
/// eight sequential read streams, 32-byte runs written to dst; parallel over bands of dst rows.
/// The GEMM packs a row-major B (and a column-major A) much faster than the transposed
/// layouts, which more than pays for this pass.
fn transpose(src: &[f32], rs: usize, rows: usize, cols: usize, dst: &mut [f32]) {
    const R: usize = 8;
    if rows == 0 || cols == 0 {
        return;
    }
    // one band per thread: narrower bands make the passes too short
    let band = cols.div_ceil(rayon::current_num_threads()).max(64);
    let bands = dst[..rows * cols].par_chunks_mut(band * rows).enumerate();
    bands.for_each(|(t, d)| {
        let (c0, nc) = (t * band, d.len() / rows);
        for r0 in (0..rows).step_by(R) {
            let nr = R.min(rows - r0);
            let mut s: [&[f32]; R] = [&[]; R];
            for (i, si) in s.iter_mut().take(nr).enumerate() {
                *si = &src[(r0 + i) * rs + c0..][..nc];
            }
            for (c, drow) in d.chunks_mut(rows).enumerate() {
                for (o, sr) in drow[r0..r0 + nr].iter_mut().zip(&s) {
                    *o = sr[c];
                }
            }
        }
    });
}

/// Weights as one column-major [K, mg] matrix per group (see `transpose`).
fn weights_t(g: &Geom, ws: &[f32]) -> Vec<f32> {
    let (k, mg) = (g.k(), g.mg);
    let mut wt = vec![0.0f32; ws.len()];
    for (gi, dst) in wt.chunks_mut((mg * k).max(1)).enumerate() {
        transpose(&ws[gi * mg * k..], k, mg, k, dst);
    }
    wt
}

pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: Conv2dParams) -> Result<Tensor> {
    let g = geometry("conv2d", x.dims(), w.dims(), p)?;
    checks::conv_bias("conv2d", &g.shape, bias)?;
    let bias = bias.map(|b| b.cpu_data()).transpose()?;
    let xs = x.cpu_data()?;
    let wt = weights_t(&g, w.cpu_data()?);
    let (k, l, mg) = (g.k(), g.l(), g.mg);
    let mut y = vec![0.0f32; g.n * g.c_out * l];
    if y.is_empty() {
        return Tensor::from_vec(y, g.out_shape());
    }
    for_tasks(&mut y, mg * l, g.parallel_tasks(), |i, yg, buf| {
        let (s, gi) = (i / g.groups, i % g.groups);
        if let Some(b) = bias {
            for (row, &bv) in yg.chunks_mut(l).zip(&b[gi * mg..]) {
                row.fill(bv);
            }
        }
        let (xg, wtg) = (g.x_group(xs, s, gi), &wt[gi * mg * k..][..mg * k]);
        forward_group(&g, xg, wtg, yg, buf);
    });
    Tensor::from_vec(y, g.out_shape())
}

/// yg [mg, L] += wtᵀ [mg, K] · im2col(xg) [K, L], a block of columns at a time.
fn forward_group(g: &Geom, xg: &[f32], wt: &[f32], yg: &mut [f32], buf: &mut Vec<f32>) {
    let (k, l, mg) = (g.k(), g.l(), g.mg);
    if g.pointwise() {
        sgemm(mg, k, l, wt, (1, mg), xg, (l, 1), 1.0, yg, (l, 1));
        return;
    }
    let nb = g.block();
    buf.resize(k * nb, 0.0);
    for l0 in (0..l).step_by(nb) {
        let m = nb.min(l - l0);
        let cols = &mut buf[..k * m];
        g.win.par_gather(xg, l0, m, cols);
        let yb = &mut yg[l0..];
        sgemm(mg, k, m, wt, (1, mg), cols, (m, 1), 1.0, yb, (l, 1));
    }
}

pub fn conv2d_backward_input(
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    p: Conv2dParams,
) -> Result<Tensor> {
    let op = "conv2d_backward_input";
    let g = geometry(op, x_shape, w.dims(), p)?;
    checks::conv_dy(op, &g.shape, dy)?;
    let (dys, ws) = (dy.cpu_data()?, w.cpu_data()?);
    let (k, l, hw, mg, cg) = (g.k(), g.l(), g.hw(), g.mg, g.win.c);
    let mut dx = vec![0.0f32; g.n * g.c_in * hw];
    if dx.is_empty() {
        return Tensor::from_vec(dx, x_shape.to_vec());
    }
    for_tasks(&mut dx, cg * hw, g.parallel_tasks(), |i, dxg, buf| {
        let (s, gi) = (i / g.groups, i % g.groups);
        let (dyg, wg) = (g.dy_group(dys, s, gi), &ws[gi * mg * k..][..mg * k]);
        // columns = wgᵀ [K, mg] · dy [mg, L] (wgᵀ is column-major as stored), then col2im
        if g.pointwise() {
            sgemm(k, mg, l, wg, (1, k), dyg, (l, 1), 0.0, dxg, (l, 1));
            return;
        }
        let nb = g.block();
        buf.resize(k * nb, 0.0);
        for l0 in (0..l).step_by(nb) {
            let m = nb.min(l - l0);
            let cols = &mut buf[..k * m];
            sgemm(k, mg, m, wg, (1, k), &dyg[l0..], (l, 1), 0.0, cols, (m, 1));
            g.win.par_scatter_add(cols, l0, m, dxg);
        }
    });
    Tensor::from_vec(dx, x_shape.to_vec())
}

pub fn conv2d_backward_weight(
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    p: Conv2dParams,
) -> Result<Tensor> {
    let op = "conv2d_backward_weight";
    let g = geometry(op, x.dims(), w_shape, p)?;
    checks::conv_dy(op, &g.shape, dy)?;
    let (xs, dys) = (x.cpu_data()?, dy.cpu_data()?);
    let size = g.c_out * g.k();
    let tasks = (0..g.n).flat_map(|s| (0..g.groups).map(move |gi| (s, gi)));
    if !g.parallel_tasks() {
        let (mut dw, mut buf, mut buf_t) = (vec![0.0f32; size], Vec::new(), Vec::new());
        tasks.for_each(|t| weight_group(&g, xs, dys, t, &mut dw, &mut buf, &mut buf_t));
        return Tensor::from_vec(dw, w_shape.to_vec());
    }
    // Each rayon job sums its tasks into its own dw; the partial sums are then added up.
    let dw = tasks
        .collect::<Vec<_>>()
        .into_par_iter()
        .fold(
            || (vec![0.0f32; size], Vec::new(), Vec::new()),
            |(mut acc, mut buf, mut buf_t), t| {
                weight_group(&g, xs, dys, t, &mut acc, &mut buf, &mut buf_t);
                (acc, buf, buf_t)
            },
        )
        .map(|(acc, _, _)| acc)
        .reduce(
            || vec![0.0f32; size],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    Tensor::from_vec(dw, w_shape.to_vec())
}

/// acc[group gi] [mg, K] += dy[s, gi] [mg, L] · im2col(x[s, gi])ᵀ [L, K], a block of columns at
/// a time; each block is transposed to row-major [m, K] first (see `transpose`).
fn weight_group(
    g: &Geom,
    xs: &[f32],
    dys: &[f32],
    (s, gi): (usize, usize),
    acc: &mut [f32],
    buf: &mut Vec<f32>,
    buf_t: &mut Vec<f32>,
) {
    let (k, l, mg) = (g.k(), g.l(), g.mg);
    let (xg, dyg) = (g.x_group(xs, s, gi), g.dy_group(dys, s, gi));
    let accg = &mut acc[gi * mg * k..][..mg * k];
    let nb = g.block();
    buf_t.resize(k * nb, 0.0);
    if !g.pointwise() {
        buf.resize(k * nb, 0.0);
    }
    for l0 in (0..l).step_by(nb) {
        let m = nb.min(l - l0);
        let (cols, rs) = if g.pointwise() {
            (&xg[l0..], l)
        } else {
            g.win.par_gather(xg, l0, m, &mut buf[..k * m]);
            (&buf[..k * m], m)
        };
        let cols_t = &mut buf_t[..k * m];
        transpose(cols, rs, k, m, cols_t);
        let dyb = &dyg[l0..];
        sgemm(mg, m, k, dyb, (l, 1), cols_t, (k, 1), 1.0, accg, (k, 1));
    }
}

/// Sum of dy over N, H and W -> [C_out] (accumulated in f64: the sums can be long).
pub fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = checks::nchw("conv2d_backward_bias", dy)?;
    let d = dy.cpu_data()?;
    let hw = h * w;
    let out: Vec<f32> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let planes = (0..n).map(|s| &d[(s * c + ci) * hw..][..hw]);
            planes
                .map(|pl| pl.iter().map(|&v| v as f64).sum::<f64>())
                .sum::<f64>() as f32
        })
        .collect();
    Tensor::from_vec(out, [c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// Padded coordinate -> source index (zeros: None outside), independent of `Im2col`.
    fn src(i: isize, n: usize, reflect: bool) -> Option<usize> {
        let n = n as isize;
        let j = if reflect && i < 0 {
            -i
        } else if reflect && i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        (0..n).contains(&j).then_some(j as usize)
    }

    /// Calls `f(x index, w index, y index)` for every multiply-add of the direct convolution.
    fn each_tap(
        xd: [usize; 4],
        wd: [usize; 4],
        p: Conv2dParams,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let ([n, c, h, w], [co, cg, kh, kw]) = (xd, wd);
        let (oh, ow) = p.out_size(h, w, kh, kw).unwrap();
        let reflect = p.pad_mode == PadMode::Reflect;
        for (s, o, oy, ox) in (0..n).flat_map(|s| {
            (0..co).flat_map(move |o| (0..oh).flat_map(move |y| (0..ow).map(move |x| (s, o, y, x))))
        }) {
            for (ci, ki, kj) in (0..cg)
                .flat_map(|ci| (0..kh).flat_map(move |ki| (0..kw).map(move |kj| (ci, ki, kj))))
            {
                let iy = (oy * p.stride.0 + ki * p.dilation.0) as isize - p.padding.0 as isize;
                let ix = (ox * p.stride.1 + kj * p.dilation.1) as isize - p.padding.1 as isize;
                if let (Some(iy), Some(ix)) = (src(iy, h, reflect), src(ix, w, reflect)) {
                    let c_abs = o / (co / p.groups) * cg + ci;
                    f(
                        ((s * c + c_abs) * h + iy) * w + ix,
                        ((o * cg + ci) * kh + ki) * kw + kj,
                        ((s * co + o) * oh + oy) * ow + ox,
                    );
                }
            }
        }
    }

    fn close(name: &str, got: &Tensor, want: &[f64]) {
        let got = got.cpu_data().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
        assert!(
            err <= 1e-5 * scale,
            "{name}: max abs err {err:.3e} (scale {scale:.2})"
        );
    }

    /// Checks ⟨a, b⟩ = ⟨c, d⟩ (the defining identity of an adjoint).
    fn adjoint(name: &str, (a, b): (&Tensor, &Tensor), (c, d): (&Tensor, &Tensor)) {
        let dot = |a: &Tensor, b: &Tensor| -> f64 {
            let (a, b) = (a.cpu_data().unwrap(), b.cpu_data().unwrap());
            a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
        };
        let (lhs, rhs) = (dot(a, b), dot(c, d));
        assert!(
            (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
            "{name}: {lhs} vs {rhs}"
        );
    }

    /// Forward, dx, dw and db against the direct loops, plus the adjoint identities.
    fn check(xd: [usize; 4], wd: [usize; 4], p: Conv2dParams, seed: u64) {
        let x = Tensor::randn(xd, 0.0, 1.0, seed);
        let w = Tensor::randn(wd, 0.0, 1.0, seed + 1);
        let b = Tensor::randn([wd[0]], 0.0, 1.0, seed + 2);
        let y = conv2d(&x, &w, Some(&b), p).unwrap();
        let dy = Tensor::randn(y.dims(), 0.0, 1.0, seed + 3);
        let [xs, ws, bs, ds] = [&x, &w, &b, &dy].map(|t| t.cpu_data().unwrap());
        let (l, co) = (y.dims()[2] * y.dims()[3], wd[0]);
        let mut want: Vec<f64> = (0..y.numel()).map(|i| bs[(i / l) % co] as f64).collect();
        let (mut dx, mut dw, mut db) = (vec![0.0; x.numel()], vec![0.0; w.numel()], vec![0.0; co]);
        each_tap(xd, wd, p, |xi, wi, yi| {
            want[yi] += xs[xi] as f64 * ws[wi] as f64;
            dx[xi] += ws[wi] as f64 * ds[yi] as f64;
            dw[wi] += xs[xi] as f64 * ds[yi] as f64;
        });
        ds.iter()
            .enumerate()
            .for_each(|(i, &d)| db[(i / l) % co] += d as f64);
        let name = format!("{xd:?} * {wd:?} {p:?}");
        let gx = conv2d_backward_input(&dy, &w, &xd, p).unwrap();
        let gw = conv2d_backward_weight(&x, &dy, &wd, p).unwrap();
        close(&format!("y {name}"), &y, &want);
        close(&format!("dx {name}"), &gx, &dx);
        close(&format!("dw {name}"), &gw, &dw);
        close(
            &format!("db {name}"),
            &conv2d_backward_bias(&dy).unwrap(),
            &db,
        );
        // ⟨conv(x) − b, dy⟩ = ⟨x, dx⟩ = ⟨w, dw⟩
        let y0 = conv2d(&x, &w, None, p).unwrap();
        adjoint(&format!("dx {name}"), (&y0, &dy), (&x, &gx));
        adjoint(&format!("dw {name}"), (&y0, &dy), (&w, &gw));
    }

    /// (x dims, w dims, stride, padding, dilation, groups, reflect): awkward shapes.
    type Case = (
        [usize; 4],
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        usize,
        bool,
    );
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ([1, 3, 7, 9], [4, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1, false),
        ([3, 4, 8, 7], [6, 2, 3, 3], (2, 2), (1, 1), (1, 1), 2, false), // groups, stride 2
        ([2, 5, 9, 8], [5, 1, 3, 3], (1, 1), (1, 1), (2, 2), 5, false), // depthwise, dilation 2
        ([1, 3, 6, 5], [6, 1, 3, 3], (1, 1), (1, 1), (1, 1), 3, true),  // depthwise ×2, reflect
        ([1, 2, 6, 7], [3, 2, 5, 5], (1, 1), (2, 2), (1, 1), 1, true),  // reflect pad 2
        ([2, 3, 9, 11], [4, 3, 3, 3], (2, 1), (1, 2), (2, 1), 1, true), // mixed strides
        ([1, 1, 3, 3], [2, 1, 3, 3], (1, 1), (2, 2), (1, 1), 1, true),  // reflect pad = size − 1
        ([3, 5, 5, 3], [7, 5, 1, 1], (1, 1), (0, 0), (1, 1), 1, false), // pointwise
        ([3, 6, 5, 3], [4, 3, 1, 1], (1, 1), (0, 0), (1, 1), 2, false), // grouped pointwise
        ([2, 4, 7, 6], [3, 4, 1, 1], (2, 2), (0, 0), (1, 1), 1, false), // 1×1 stride 2
        ([1, 3, 6, 9], [2, 3, 2, 3], (1, 2), (0, 1), (1, 1), 1, false), // 2×3 kernel
        ([3, 1, 1, 1], [2, 1, 1, 1], (1, 1), (0, 0), (1, 1), 1, false), // 1-sized everything
        // K = 144 -> 1820 columns per block over 50×41 positions: two blocks, the last partial
        ([2, 16, 50, 41], [8, 16, 3, 3], (1, 1), (2, 1), (2, 1), 1, true),
        ([1, 16, 50, 41], [8, 8, 3, 3], (1, 1), (1, 1), (1, 1), 2, false),
        // big enough that the GEMM threads itself: the tasks run in sequence
        ([2, 32, 20, 20], [32, 32, 3, 3], (1, 1), (1, 1), (1, 1), 1, false),
    ];

    fn params(&(_, _, stride, padding, dilation, groups, reflect): &Case) -> Conv2dParams {
        let pad_mode = if reflect {
            PadMode::Reflect
        } else {
            PadMode::Zeros
        };
        Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
            pad_mode,
        }
    }

    #[test]
    fn conv_matches_direct_loops() {
        for (i, case) in CASES.iter().enumerate() {
            check(case.0, case.1, params(case), 10 * i as u64);
        }
        let geom = |c: &Case| geometry("t", &c.0, &c.1, params(c)).unwrap();
        assert!(geom(&CASES[12]).block() < geom(&CASES[12]).l());
        assert!(geom(&CASES[0]).parallel_tasks() && !geom(&CASES[14]).parallel_tasks());
    }

    #[rustfmt::skip]
    const BAD: &[Case] = &[
        ([1, 4, 5, 5], [6, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1, false), // channels
        ([1, 4, 5, 5], [6, 2, 3, 3], (1, 1), (0, 0), (1, 1), 3, false), // groups do not divide
        ([1, 4, 5, 5], [6, 2, 3, 3], (1, 1), (0, 0), (1, 1), 0, false), // zero groups
        ([1, 4, 5, 5], [6, 4, 3, 3], (0, 1), (0, 0), (1, 1), 1, false), // zero stride
        ([1, 4, 5, 5], [6, 4, 3, 3], (1, 1), (0, 0), (1, 0), 1, false), // zero dilation
        ([1, 4, 5, 5], [6, 4, 0, 3], (1, 1), (0, 0), (1, 1), 1, false), // empty kernel
        ([1, 4, 5, 5], [6, 4, 7, 3], (1, 1), (0, 0), (1, 1), 1, false), // kernel > input
        ([1, 4, 0, 5], [6, 4, 1, 1], (1, 1), (1, 0), (1, 1), 1, false), // empty planes
        ([1, 4, 5, 5], [6, 4, 3, 3], (1, 1), (5, 1), (1, 1), 1, true),  // reflect pad ≥ size
    ];

    #[test]
    fn conv_rejects_bad_shapes() {
        for case in BAD {
            let (x, w) = (Tensor::zeros(case.0), Tensor::zeros(case.1));
            let err = conv2d(&x, &w, None, params(case));
            assert!(matches!(
                err,
                Err(Error::Shape { op: "conv2d", .. } | Error::Invalid { .. })
            ));
            let dy = Tensor::zeros([1, 6, 3, 3]);
            assert!(conv2d_backward_input(&dy, &w, &case.0, params(case)).is_err());
            assert!(conv2d_backward_weight(&x, &dy, &case.1, params(case)).is_err());
        }
        let p = Conv2dParams {
            padding: (5, 1),
            ..Default::default()
        };
        let (x, w) = (Tensor::zeros([1, 4, 5, 5]), Tensor::zeros([6, 4, 3, 3]));
        assert!(conv2d(&x, &w, None, p).is_ok()); // zero padding may exceed the input
        assert!(conv2d(&Tensor::zeros([4, 5, 5]), &w, None, p).is_err());
        assert!(conv2d(&x, &Tensor::zeros([6, 4, 3]), None, p).is_err());
        assert!(conv2d(&x, &w, Some(&Tensor::zeros([5])), p).is_err());
        let p = Conv2dParams::default();
        let (dy, dy_ok) = (Tensor::zeros([1, 6, 4, 3]), Tensor::zeros([1, 6, 3, 3]));
        assert!(conv2d_backward_input(&dy, &w, &[1, 4, 5, 5], p).is_err());
        assert!(conv2d_backward_input(&dy_ok, &w, &[1, 4, 5], p).is_err());
        assert!(conv2d_backward_weight(&x, &dy, &[6, 4, 3, 3], p).is_err());
        assert!(conv2d_backward_weight(&x, &dy_ok, &[6, 4, 3, 2], p).is_err());
        assert!(conv2d_backward_bias(&Tensor::zeros([6, 3])).is_err());
    }

    #[test]
    fn conv_degenerate_sizes() {
        let p = Conv2dParams::default();
        let (x, w) = (Tensor::zeros([0, 2, 4, 4]), Tensor::zeros([3, 2, 3, 3]));
        assert_eq!(conv2d(&x, &w, None, p).unwrap().dims(), &[0, 3, 2, 2]);
        // no input channels: the output is the bias
        let b = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
        let (x, w) = (Tensor::zeros([1, 0, 3, 3]), Tensor::zeros([2, 0, 3, 3]));
        let y = conv2d(&x, &w, Some(&b), p).unwrap();
        assert_eq!(y.cpu_data().unwrap(), &[1.0, 2.0]);
    }
}

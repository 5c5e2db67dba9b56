//! Pose label maps: what the networks see of a pose, as f32 planes in CHW order.
//!
//! - `paper` (21 channels): a 3-channel RGB stick figure, then 18 binary keypoint-disk channels
//!   (channel 3 + i is 1 inside keypoint i's disk).
//! - `cocosnet` (20 channels): the same stick figure, then 17 per-limb distance maps.
//!
//! Stick figure: on black, the 17 limbs are drawn in `LIMBS` order as filled capsules (every pixel
//! whose centre lies within the half-width of the segment), limb i in `COLORS[i]`; then the 18
//! keypoint disks in keypoint order, disk i in `COLORS[i]`, so joints show their keypoint colour.
//! Later shapes overwrite earlier ones (opaque, no blending). Colours are the OpenPose RGB values
//! divided by 255. A missing keypoint draws nothing, and a limb with a missing end is not drawn.
//!
//! Sizes scale with the image: half-width and radius are 4 px at 256×256, times min(H, W)/256.
//! Pixel (row r, column c) has its centre at (x, y) = (c, r).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::keypoints::{Keypoint, Pose, COLORS, LIMBS, NUM_KEYPOINTS, NUM_LIMBS};
use crate::error::{Error, Result};

/// Which label map to render.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelKind {
    /// Stick figure (3) + 18 keypoint disks = 21 channels.
    #[default]
    Paper,
    /// Stick figure (3) + 17 limb distance maps = 20 channels (CoCosNet DeepFashion layout).
    Cocosnet,
}

impl LabelKind {
    pub fn channels(self) -> usize {
        match self {
            LabelKind::Paper => 3 + NUM_KEYPOINTS,
            LabelKind::Cocosnet => 3 + NUM_LIMBS,
        }
    }
}

/// A rendered label: `channels` planes of `height`×`width`, row-major, in CHW order.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl LabelMap {
    /// Plane `c` (a `height`×`width` slice).
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}

/// Stroke sizes in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderStyle {
    pub limb_half_width: f32,
    pub point_radius: f32,
}

impl RenderStyle {
    /// 4 px half-width and radius at 256×256, scaled by min(height, width)/256.
    pub fn for_size(height: usize, width: usize) -> Self {
        let s = height.min(width) as f32 / 256.0;
        RenderStyle {
            limb_half_width: 4.0 * s,
            point_radius: 4.0 * s,
        }
    }
}

/// Distance maps divide the L1 distance by this many pixels…
pub const DIST_DIVISOR: f32 = 3.0;
/// …clip the result at this value, then divide by it, giving values in [0, 1].
pub const DIST_CLIP: f32 = 255.0;

/// Renders the label map of `pose` at `height`×`width` with the default style for that size.
pub fn render_label(pose: &Pose, kind: LabelKind, height: usize, width: usize) -> Result<LabelMap> {
    if height == 0 || width == 0 {
        return Err(Error::invalid(
            "render_label",
            format!("empty label size {height}×{width}"),
        ));
    }
    let style = RenderStyle::for_size(height, width);
    let n = height * width;
    let mut data = vec![0.0f32; kind.channels() * n];
    let (stick, rest) = data.split_at_mut(3 * n);
    draw_stick(pose, height, width, &style, stick);
    match kind {
        LabelKind::Paper => draw_keypoint_masks(pose, height, width, &style, rest),
        LabelKind::Cocosnet => draw_limb_distances(pose, height, width, rest),
    }
    Ok(LabelMap {
        channels: kind.channels(),
        height,
        width,
        data,
    })
}

/// Draws the RGB stick figure into 3 planes (`out.len() == 3·h·w`, expected zeroed).
pub fn draw_stick(pose: &Pose, h: usize, w: usize, style: &RenderStyle, out: &mut [f32]) {
    let n = h * w;
    let mut paint = |x: usize, y: usize, rgb: [u8; 3]| {
        for (c, &v) in rgb.iter().enumerate() {
            out[c * n + y * w + x] = v as f32 / 255.0;
        }
    };
    for (i, &(a, b)) in LIMBS.iter().enumerate() {
        let (ka, kb) = (pose.keypoints[a], pose.keypoints[b]);
        if ka.is_present() && kb.is_present() {
            for_capsule_pixels(ka, kb, style.limb_half_width, h, w, |x, y| {
                paint(x, y, COLORS[i])
            });
        }
    }
    for (i, k) in pose.keypoints.iter().enumerate() {
        if k.is_present() {
            for_capsule_pixels(*k, *k, style.point_radius, h, w, |x, y| {
                paint(x, y, COLORS[i])
            });
        }
    }
}

/// Draws one binary disk plane per keypoint (`out.len() == 18·h·w`, expected zeroed).
fn draw_keypoint_masks(pose: &Pose, h: usize, w: usize, style: &RenderStyle, out: &mut [f32]) {
    out.par_chunks_mut(h * w)
        .zip(pose.keypoints.par_iter())
        .for_each(|(plane, k)| {
            if k.is_present() {
                for_capsule_pixels(*k, *k, style.point_radius, h, w, |x, y| {
                    plane[y * w + x] = 1.0
                });
            }
        });
}

/// One plane per limb: min(L1 distance to the limb segment / `DIST_DIVISOR`, `DIST_CLIP`) /
/// `DIST_CLIP`, so 0 on the segment, growing by 1/765 per pixel of L1 distance, 1 at 765 px and
/// beyond. The L1 distance is measured exactly from the pixel centre to the continuous segment.
/// A limb with a missing end gives a plane of ones (everything is far).
fn draw_limb_distances(pose: &Pose, h: usize, w: usize, out: &mut [f32]) {
    out.par_chunks_mut(h * w)
        .zip(LIMBS.par_iter())
        .for_each(|(plane, &(a, b))| {
            let (ka, kb) = (pose.keypoints[a], pose.keypoints[b]);
            if !(ka.is_present() && kb.is_present()) {
                plane.fill(1.0);
                return;
            }
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                for (x, v) in row.iter_mut().enumerate() {
                    let d = l1_distance_to_segment(x as f32, y as f32, (ka.x, ka.y), (kb.x, kb.y));
                    *v = (d / DIST_DIVISOR).min(DIST_CLIP) / DIST_CLIP;
                }
            }
        });
}

/// L1 distance from (px, py) to the segment a–b. |px − x(t)| + |py − y(t)| is convex and
/// piecewise linear in t ∈ [0, 1], so its minimum is at an end or where one term is zero.
pub fn l1_distance_to_segment(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let at = |t: f32| (px - (a.0 + t * dx)).abs() + (py - (a.1 + t * dy)).abs();
    let mut best = at(0.0).min(at(1.0));
    if dx != 0.0 {
        best = best.min(at(((px - a.0) / dx).clamp(0.0, 1.0)));
    }
    if dy != 0.0 {
        best = best.min(at(((py - a.1) / dy).clamp(0.0, 1.0)));
    }
    best
}

/// Squared Euclidean distance from (px, py) to the segment a–b (a point when a == b).
fn sq_distance_to_segment(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (px - (a.0 + t * dx), py - (a.1 + t * dy));
    ex * ex + ey * ey
}

/// Calls `f(x, y)` for every pixel of the h×w image whose centre is within `r` of the segment
/// a–b (a disk when a == b). Only the segment's bounding box, grown by r, is visited.
fn for_capsule_pixels(
    a: Keypoint,
    b: Keypoint,
    r: f32,
    h: usize,
    w: usize,
    mut f: impl FnMut(usize, usize),
) {
    let span = |lo: f32, hi: f32, n: usize| -> Option<(usize, usize)> {
        let (lo, hi) = ((lo - r).ceil(), (hi + r).floor());
        if hi < 0.0 || lo > (n - 1) as f32 || lo > hi {
            return None;
        }
        Some((lo.max(0.0) as usize, hi.min((n - 1) as f32) as usize))
    };
    let Some((x0, x1)) = span(a.x.min(b.x), a.x.max(b.x), w) else {
        return;
    };
    let Some((y0, y1)) = span(a.y.min(b.y), a.y.max(b.y), h) else {
        return;
    };
    let r2 = r * r;
    for y in y0..=y1 {
        for x in x0..=x1 {
            if sq_distance_to_segment(x as f32, y as f32, (a.x, a.y), (b.x, b.y)) <= r2 {
                f(x, y);
            }
        }
    }
}

/// The first three planes of a label (the stick figure) as interleaved RGB bytes, row-major.
pub fn stick_to_rgb8(label: &LabelMap) -> Vec<u8> {
    let n = label.height * label.width;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    (0..n)
        .flat_map(|i| [0, 1, 2].map(|c| to_u8(label.data[c * n + i])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::keypoints::{L_ELBOW, L_WRIST};

    /// A fixed standing pose at 256×256 with the left wrist missing.
    pub(super) fn reference_pose() -> Pose {
        let pts: [(f32, f32); NUM_KEYPOINTS] = [
            (128.0, 40.0),
            (128.0, 70.0),
            (100.0, 72.0),
            (88.0, 110.0),
            (80.0, 145.0),
            (156.0, 72.0),
            (170.0, 108.0),
            (0.0, 0.0),
            (110.0, 140.0),
            (108.0, 185.0),
            (106.0, 230.0),
            (146.0, 140.0),
            (150.0, 185.0),
            (153.5, 230.25),
            (121.0, 34.0),
            (135.0, 34.0),
            (114.0, 38.0),
            (142.0, 38.0),
        ];
        let mut p = Pose::missing();
        for (i, &(x, y)) in pts.iter().enumerate() {
            if i != L_WRIST {
                p.keypoints[i] = Keypoint::new(x, y, 0.9);
            }
        }
        p
    }

    fn rgb_at(label: &LabelMap, x: usize, y: usize) -> [f32; 3] {
        let n = label.height * label.width;
        [0, 1, 2].map(|c| label.data[c * n + y * label.width + x])
    }

    fn color(i: usize) -> [f32; 3] {
        COLORS[i].map(|v| v as f32 / 255.0)
    }

    #[test]
    fn channel_counts_and_sizes() {
        let p = reference_pose();
        for (kind, c) in [(LabelKind::Paper, 21), (LabelKind::Cocosnet, 20)] {
            assert_eq!(kind.channels(), c);
            for (h, w) in [(256, 256), (17, 31), (1, 1)] {
                let l = render_label(&p, kind, h, w).unwrap();
                assert_eq!(
                    (l.channels, l.height, l.width, l.data.len()),
                    (c, h, w, c * h * w)
                );
            }
        }
        assert!(matches!(
            render_label(&p, LabelKind::Paper, 0, 4),
            Err(Error::Invalid { .. })
        ));
        let s = RenderStyle::for_size(64, 128);
        assert_eq!((s.limb_half_width, s.point_radius), (1.0, 1.0));
    }

    #[test]
    fn limb_and_joint_pixels_have_their_colours() {
        let p = reference_pose();
        let l = render_label(&p, LabelKind::Paper, 256, 256).unwrap();
        // Mid-thigh of the right leg, limb 7 = (8, 9): far from any joint disk.
        assert_eq!(rgb_at(&l, 109, 162), color(7));
        // Inside and outside the half-width (4 px) of the near-vertical left shin (12 → 13).
        assert_eq!(rgb_at(&l, 152, 207), color(11));
        assert_eq!(rgb_at(&l, 155, 207), color(11));
        assert_eq!(rgb_at(&l, 157, 207), [0.0; 3]);
        assert_eq!(rgb_at(&l, 0, 0), [0.0; 3]);
        // The nose disk is drawn over the limbs that meet there.
        assert_eq!(rgb_at(&l, 128, 40), color(0));
        // Keypoint disk channel: radius 4 → (x ± 4, y) inside, (x ± 5, y) outside.
        let nose = l.plane(3);
        assert_eq!(nose[40 * 256 + 132], 1.0);
        assert_eq!(nose[40 * 256 + 133], 0.0);
        assert_eq!(nose.iter().filter(|&&v| v == 1.0).count(), disk_area(4.0));
    }

    fn disk_area(r: f32) -> usize {
        let ri = r as i32;
        (-ri..=ri)
            .flat_map(|y| (-ri..=ri).map(move |x| (x, y)))
            .filter(|&(x, y)| (x * x + y * y) as f32 <= r * r)
            .count()
    }

    #[test]
    fn missing_points_draw_nothing() {
        let p = reference_pose();
        let paper = render_label(&p, LabelKind::Paper, 256, 256).unwrap();
        // Left wrist channel is empty, and the forearm (6 → 7) is not drawn.
        assert!(paper.plane(3 + L_WRIST).iter().all(|&v| v == 0.0));
        assert_eq!(rgb_at(&paper, 175, 124), [0.0; 3]);
        let mut with_wrist = p;
        with_wrist.keypoints[L_WRIST] = Keypoint::new(180.0, 140.0, 0.9);
        let drawn = render_label(&with_wrist, LabelKind::Paper, 256, 256).unwrap();
        assert_eq!(rgb_at(&drawn, 175, 124), color(5));
        let coco = render_label(&p, LabelKind::Cocosnet, 256, 256).unwrap();
        let forearm = LIMBS.iter().position(|&l| l == (L_ELBOW, L_WRIST)).unwrap();
        assert!(coco.plane(3 + forearm).iter().all(|&v| v == 1.0));
        // An all-missing pose renders black and empty (distance maps all far).
        let empty = render_label(&Pose::missing(), LabelKind::Cocosnet, 32, 32).unwrap();
        assert!(empty.data[..3 * 1024].iter().all(|&v| v == 0.0));
        assert!(empty.data[3 * 1024..].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn distance_maps_match_a_naive_l1_reference() {
        let p = reference_pose();
        let (h, w) = (37, 53); // awkward size; parts of limbs fall outside, which is fine
        let small = p.map_present(|x, y| (x * 0.2, y * 0.15));
        let l = render_label(&small, LabelKind::Cocosnet, h, w).unwrap();
        for (li, &(a, b)) in LIMBS.iter().enumerate() {
            let (ka, kb) = (small.keypoints[a], small.keypoints[b]);
            if !(ka.is_present() && kb.is_present()) {
                continue;
            }
            let plane = l.plane(3 + li);
            for y in 0..h {
                for x in 0..w {
                    // Naive reference: dense sampling of the segment.
                    let mut d = f32::INFINITY;
                    for s in 0..=4000 {
                        let t = s as f32 / 4000.0;
                        let (qx, qy) = (ka.x + t * (kb.x - ka.x), ka.y + t * (kb.y - ka.y));
                        d = d.min((x as f32 - qx).abs() + (y as f32 - qy).abs());
                    }
                    let want = (d / 3.0).min(255.0) / 255.0;
                    let got = plane[y * w + x];
                    assert!(
                        (got - want).abs() <= 2e-5,
                        "limb {li} at ({x},{y}): {got} vs {want}"
                    );
                }
            }
        }
        // On the segment it is 0; 30 px away (L1) it is 10/255.
        assert_eq!(
            l1_distance_to_segment(5.0, 5.0, (0.0, 0.0), (10.0, 10.0)),
            0.0
        );
        assert_eq!(
            l1_distance_to_segment(30.0, 0.0, (0.0, 0.0), (0.0, 10.0)),
            30.0
        );
        assert_eq!(
            l1_distance_to_segment(3.0, 4.0, (0.0, 0.0), (0.0, 0.0)),
            7.0
        );
    }

    #[test]
    fn width_scales_with_image_size() {
        // At 128² the radius is 2 px: the nose disk at (64, 20) covers 13 pixels.
        let p = reference_pose().map_present(|x, y| (x * 0.5, y * 0.5));
        let l = render_label(&p, LabelKind::Paper, 128, 128).unwrap();
        assert_eq!(
            l.plane(3).iter().filter(|&&v| v == 1.0).count(),
            disk_area(2.0)
        );
        assert_eq!(disk_area(2.0), 13);
        // The right thigh (half-width 2) at row 81: x ≈ 54.5 is covered, 52 is not.
        assert_eq!(rgb_at(&l, 54, 81), color(7));
        assert_eq!(rgb_at(&l, 52, 81), [0.0; 3]);
    }

    const REFERENCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pose_label_reference.png"
    );

    fn reference_rgb() -> Vec<u8> {
        stick_to_rgb8(&render_label(&reference_pose(), LabelKind::Paper, 256, 256).unwrap())
    }

    /// Rewrites the committed fixture from `reference_pose()`. Run only after an intended change
    /// of the renderer: `cargo test --lib pose::render -- --ignored write_reference_image`.
    #[test]
    #[ignore]
    fn write_reference_image() {
        image::save_buffer(
            REFERENCE,
            &reference_rgb(),
            256,
            256,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }

    #[test]
    fn stick_figure_matches_the_reference_image() {
        let want = image::open(REFERENCE)
            .unwrap_or_else(|e| {
                panic!("{REFERENCE}: {e} (regenerate with the ignored write_reference_image test)")
            })
            .to_rgb8();
        assert_eq!(want.dimensions(), (256, 256));
        let got = reference_rgb();
        let diff: Vec<usize> = (0..256 * 256)
            .filter(|&i| got[3 * i..3 * i + 3] != want.as_raw()[3 * i..3 * i + 3])
            .collect();
        assert!(
            diff.is_empty(),
            "{} pixels differ, first at (x {}, y {})",
            diff.len(),
            diff[0] % 256,
            diff[0] / 256
        );
    }
}

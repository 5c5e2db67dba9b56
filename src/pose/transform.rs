//! Keypoint geometry: crop boxes, the crop + resize to the model size, and temporal smoothing.
//!
//! Pixel convention (as in `keypoints`): the centre of pixel column c is x = c. A resize by a
//! factor s maps pixel centres the way image resizers with half-pixel centres do
//! (`align_corners = false`): x' = (x + 0.5)·s − 0.5, so keypoints stay on the same image content
//! as the resized frame. Missing keypoints stay missing; present points that fall outside the box
//! keep their (outside) coordinates and are clipped by the renderer.

use serde::{Deserialize, Serialize};

use super::keypoints::{Keypoint, Pose, NUM_KEYPOINTS};
use crate::error::{Error, Result};

/// The colour that fills the part of a crop box outside the frame: constant mid-grey.
///
/// A constant (rather than the replicated edge pixel) is the same in every frame, so the model
/// sees a still, featureless band instead of streaks that move with whatever touches the border,
/// and a user sees at a glance what is padding. Grey rather than black: 128 is ≈ 0 in the
/// networks' [-1, 1] range (what a zero-padded convolution sees past a border), and it stays
/// distinct from dark hair, clothes and backgrounds at the edge of the person.
pub const CROP_FILL: [u8; 3] = [128, 128, 128];

/// A crop box may be at most this many times the frame's longer side a side: the padded crop is
/// held in memory before resizing, and a larger box can only be a typo.
pub const MAX_BOX_FACTOR: u64 = 2;

/// A pixel rectangle of a frame: top-left corner (x, y), width w, height h. The corner is signed
/// so a box may extend past the frame (see [`CROP_FILL`]); face boxes and other crops of model
/// tensors must lie inside ([`CropBox::check_inside`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

impl CropBox {
    /// One past the right and bottom edges, without overflow.
    fn ends(&self) -> (i64, i64) {
        (self.x as i64 + self.w as i64, self.y as i64 + self.h as i64)
    }

    /// Whether the box is non-empty and lies inside a `frame_w`×`frame_h` frame.
    pub fn is_inside(&self, frame_w: u32, frame_h: u32) -> bool {
        let (x1, y1) = self.ends();
        self.w > 0
            && self.h > 0
            && self.x >= 0
            && self.y >= 0
            && x1 <= frame_w as i64
            && y1 <= frame_h as i64
    }

    /// Checks that the box is non-empty and lies inside a `frame_w`×`frame_h` frame.
    pub fn check_inside(&self, frame_w: u32, frame_h: u32) -> Result<()> {
        if !self.is_inside(frame_w, frame_h) {
            return Err(Error::invalid(
                "CropBox",
                format!("box {self:?} is empty or not inside the {frame_w}×{frame_h} frame"),
            ));
        }
        Ok(())
    }

    /// Checks that the box is non-empty, shares at least one pixel with a `frame_w`×`frame_h`
    /// frame (the rest is padded), and is at most [`MAX_BOX_FACTOR`] × the frame's longer side.
    pub fn check_overlaps(&self, frame_w: u32, frame_h: u32) -> Result<()> {
        let err = |why: String| Err(Error::invalid("CropBox", why));
        if frame_w == 0 || frame_h == 0 {
            return err(format!("empty frame {frame_w}×{frame_h}"));
        }
        if self.w == 0 || self.h == 0 {
            return err(format!("box {self:?} is empty"));
        }
        let (x1, y1) = self.ends();
        if x1 <= 0 || y1 <= 0 || self.x as i64 >= frame_w as i64 || self.y as i64 >= frame_h as i64
        {
            return err(format!(
                "box {self:?} lies entirely outside the {frame_w}×{frame_h} frame"
            ));
        }
        let max = MAX_BOX_FACTOR * frame_w.max(frame_h) as u64;
        if self.w as u64 > max || self.h as u64 > max {
            return err(format!(
                "box {self:?} is larger than {MAX_BOX_FACTOR}× the {frame_w}×{frame_h} frame's \
                 longer side ({max} px)"
            ));
        }
        Ok(())
    }
}

/// The largest centred square of a `frame_w`×`frame_h` frame (a 1920×1080 frame gives the
/// 1080×1080 square at x = 420).
pub fn centre_square_crop(frame_w: u32, frame_h: u32) -> Result<CropBox> {
    if frame_w == 0 || frame_h == 0 {
        return Err(Error::invalid(
            "centre_square_crop",
            format!("empty frame {frame_w}×{frame_h}"),
        ));
    }
    let side = frame_w.min(frame_h);
    // (u32::MAX − side) / 2 always fits an i32.
    Ok(CropBox {
        x: ((frame_w - side) / 2) as i32,
        y: ((frame_h - side) / 2) as i32,
        w: side,
        h: side,
    })
}

/// Start of a `side`-pixel span centred on `centre` along a frame axis of `limit` pixels, moved
/// so that as little of it as possible lies outside the frame: inside when `side <= limit`,
/// otherwise covering the whole axis (the excess is padded). Pixel centres are at integer
/// coordinates, so `side` pixels centred on c start at c − (side − 1)/2.
fn place_span(centre: f32, side: u32, limit: u32) -> i32 {
    let start = (centre - (side as f32 - 1.0) / 2.0).round() as i64;
    let room = limit as i64 - side as i64;
    start.clamp(room.min(0), room.max(0)) as i32
}

/// A square crop around the person: the bounding box of the present keypoints of all `poses`
/// (one box for a whole video keeps the framing still) clipped to the frame, its longer side
/// grown by `margin` of that side on each end, rounded up to whole pixels plus one (the extra
/// pixel absorbs the rounding of the corner, so the grown bounds always fit). The square is
/// centred on the bounds, then shifted towards the frame so as little of it as possible lies
/// outside: it lies inside when it fits, and otherwise extends past the frame (portrait videos
/// keep head and feet) with that part filled by [`CROP_FILL`]. Every in-frame point of the grown
/// bounds is covered by the box's pixels.
pub fn person_square_crop(
    poses: &[Pose],
    frame_w: u32,
    frame_h: u32,
    margin: f32,
) -> Result<CropBox> {
    const OP: &str = "person_square_crop";
    if frame_w == 0 || frame_h == 0 || frame_w.max(frame_h) > i32::MAX as u32 / 4 {
        return Err(Error::invalid(
            OP,
            format!("empty or too large frame {frame_w}×{frame_h}"),
        ));
    }
    if !(margin >= 0.0 && margin.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("margin must be finite and >= 0, got {margin}"),
        ));
    }
    let bounds = poses
        .iter()
        .filter_map(Pose::bounds)
        .reduce(|a, b| a.union(&b))
        .ok_or_else(|| {
            Error::invalid(OP, format!("no present keypoint in {} poses", poses.len()))
        })?;
    // Keypoints past the frame (detector noise) must not blow the box up: nothing is there.
    let clip = |v: f32, limit: u32| v.clamp(0.0, (limit - 1) as f32);
    let (x0, x1) = (clip(bounds.x_min, frame_w), clip(bounds.x_max, frame_w));
    let (y0, y1) = (clip(bounds.y_min, frame_h), clip(bounds.y_max, frame_h));
    let span = (x1 - x0).max(y1 - y0);
    // Round up, ignoring float noise below 1/1000 px (200 × 1.2 is 240.00002 in f32).
    let side = (span * (1.0 + 2.0 * margin) - 1e-3).ceil().max(0.0) + 1.0;
    let max_side = MAX_BOX_FACTOR * frame_w.max(frame_h) as u64;
    if side > max_side as f32 {
        return Err(Error::invalid(
            OP,
            format!(
                "margin {margin} makes a {side} px box for the {frame_w}×{frame_h} frame \
                 (at most {max_side})"
            ),
        ));
    }
    let side = side as u32;
    Ok(CropBox {
        x: place_span(0.5 * (x0 + x1), side, frame_w),
        y: place_span(0.5 * (y0 + y1), side, frame_h),
        w: side,
        h: side,
    })
}

/// Moves a pose into the coordinates of `crop` (a translation by the box's corner).
pub fn crop_pose(pose: &Pose, crop: &CropBox) -> Pose {
    let (dx, dy) = (crop.x as f32, crop.y as f32);
    pose.map_present(|x, y| (x - dx, y - dy))
}

/// Rescales a pose from a `from.0`×`from.1` image to a `to.0`×`to.1` image (width, height).
pub fn resize_pose(pose: &Pose, from: (u32, u32), to: (u32, u32)) -> Result<Pose> {
    if from.0 == 0 || from.1 == 0 || to.0 == 0 || to.1 == 0 {
        return Err(Error::invalid(
            "resize_pose",
            format!("empty size {from:?} -> {to:?}"),
        ));
    }
    let sx = to.0 as f32 / from.0 as f32;
    let sy = to.1 as f32 / from.1 as f32;
    Ok(pose.map_present(|x, y| ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)))
}

/// Frame coordinates to model coordinates: crop by `crop`, then resize the box to `out_w`×`out_h`.
pub fn to_model(pose: &Pose, crop: &CropBox, out_w: u32, out_h: u32) -> Result<Pose> {
    resize_pose(&crop_pose(pose, crop), (crop.w, crop.h), (out_w, out_h))
}

/// Model coordinates back to frame coordinates: the inverse of [`to_model`].
pub fn from_model(pose: &Pose, crop: &CropBox, model_w: u32, model_h: u32) -> Result<Pose> {
    let in_box = resize_pose(pose, (model_w, model_h), (crop.w, crop.h))?;
    let (dx, dy) = (crop.x as f32, crop.y as f32);
    Ok(in_box.map_present(|x, y| (x + dx, y + dy)))
}

/// Temporal median filter over a centred window of `window` frames (odd, >= 1; clipped at the
/// ends of the sequence). Each coordinate of a present keypoint becomes the median of that
/// keypoint's coordinate over the frames of the window where it is present (mean of the two
/// middle values for an even count); its confidence is kept. A keypoint missing in a frame stays
/// missing there: smoothing never invents points.
pub fn smooth_median(poses: &[Pose], window: usize) -> Result<Vec<Pose>> {
    if window == 0 || window.is_multiple_of(2) {
        return Err(Error::invalid(
            "smooth_median",
            format!("window must be odd and >= 1, got {window}"),
        ));
    }
    let radius = window / 2;
    let mut out = poses.to_vec();
    let (mut xs, mut ys) = (Vec::with_capacity(window), Vec::with_capacity(window));
    for (t, pose) in out.iter_mut().enumerate() {
        let lo = t.saturating_sub(radius);
        let hi = (t + radius + 1).min(poses.len());
        for k in 0..NUM_KEYPOINTS {
            if !pose.keypoints[k].is_present() {
                continue;
            }
            xs.clear();
            ys.clear();
            for p in poses[lo..hi]
                .iter()
                .map(|p| p.keypoints[k])
                .filter(Keypoint::is_present)
            {
                xs.push(p.x);
                ys.push(p.y);
            }
            pose.keypoints[k].x = median(&mut xs);
            pose.keypoints[k].y = median(&mut ys);
        }
    }
    Ok(out)
}

/// Median of a non-empty slice (sorted in place).
fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose_with(points: &[(usize, f32, f32)]) -> Pose {
        let mut p = Pose::missing();
        for &(i, x, y) in points {
            p.keypoints[i] = Keypoint::new(x, y, 1.0);
        }
        p
    }

    #[test]
    fn centre_square_of_landscape_and_portrait_frames() {
        let b = centre_square_crop(1920, 1080).unwrap();
        assert_eq!(
            b,
            CropBox {
                x: 420,
                y: 0,
                w: 1080,
                h: 1080
            }
        );
        assert_eq!(
            centre_square_crop(5, 8).unwrap(),
            CropBox {
                x: 0,
                y: 1,
                w: 5,
                h: 5
            }
        );
        assert_eq!(
            centre_square_crop(1, 1).unwrap(),
            CropBox {
                x: 0,
                y: 0,
                w: 1,
                h: 1
            }
        );
        assert!(centre_square_crop(0, 10).is_err());
        b.check_inside(1920, 1080).unwrap();
        assert!(CropBox {
            x: 900,
            y: 0,
            w: 1080,
            h: 1080
        }
        .check_inside(1920, 1080)
        .is_err());
        assert!(CropBox {
            x: 0,
            y: 0,
            w: 0,
            h: 5
        }
        .check_inside(10, 10)
        .is_err());
    }

    #[test]
    fn crop_and_resize_move_present_points_only() {
        let pose = pose_with(&[(0, 520.0, 100.0), (4, 420.0, 0.0)]);
        let crop = CropBox {
            x: 420,
            y: 0,
            w: 1080,
            h: 1080,
        };
        let m = to_model(&pose, &crop, 256, 256).unwrap();
        let s = 256.0 / 1080.0;
        let expect = |v: f32| (v + 0.5) * s - 0.5;
        assert!((m.keypoints[0].x - expect(100.0)).abs() < 1e-4);
        assert!((m.keypoints[0].y - expect(100.0)).abs() < 1e-4);
        assert!((m.keypoints[4].x - expect(0.0)).abs() < 1e-4);
        assert_eq!(m.keypoints[1], Keypoint::MISSING);
        assert_eq!(m.keypoints[0].c, 1.0);
        // A pixel's centre maps to the centre of the matching output pixel (2× downscale).
        let r = resize_pose(&pose_with(&[(0, 1.5, 0.5)]), (8, 4), (4, 2)).unwrap();
        assert_eq!((r.keypoints[0].x, r.keypoints[0].y), (0.5, 0.0));
        // Non-square resize scales x and y separately; the inverse returns to the frame.
        let crop = CropBox {
            x: 3,
            y: 7,
            w: 30,
            h: 50,
        };
        let m = to_model(&pose, &crop, 64, 32).unwrap();
        let back = from_model(&m, &crop, 64, 32).unwrap();
        for i in [0, 4] {
            assert!((back.keypoints[i].x - pose.keypoints[i].x).abs() < 1e-3);
            assert!((back.keypoints[i].y - pose.keypoints[i].y).abs() < 1e-3);
        }
        assert!(resize_pose(&pose, (0, 4), (4, 4)).is_err());
    }

    #[test]
    fn person_crop_is_square_and_inside_the_frame_when_it_fits() {
        let a = pose_with(&[(0, 100.0, 50.0), (10, 140.0, 250.0)]);
        let b = pose_with(&[(0, 90.0, 60.0)]);
        // Union box x 90..140, y 50..250: span 200, margin 0.1 → side 240 + 1, centre (115, 150).
        let c = person_square_crop(&[a, b, Pose::missing()], 640, 480, 0.1).unwrap();
        // x = 115 − 120 < 0 is pushed inside to 0; y = 150 − 120.
        assert_eq!(
            c,
            CropBox {
                x: 0,
                y: 30,
                w: 241,
                h: 241
            }
        );
        c.check_inside(640, 480).unwrap();
        assert!(person_square_crop(&[Pose::missing()], 300, 200, 0.1).is_err());
        assert!(person_square_crop(&[a], 300, 200, -0.5).is_err());
        assert!(person_square_crop(&[a], 300, 200, f32::NAN).is_err());
        assert!(person_square_crop(&[a], 0, 200, 0.1).is_err());
        // A margin that makes the box absurdly large is refused, not allocated.
        assert!(person_square_crop(&[a], 300, 200, 3.0).is_err());
    }

    /// Whether the pixels of `b` cover the span [lo, hi] along x (`horizontal`) or y: pixel c
    /// covers [c − 0.5, c + 0.5].
    fn covers(b: &CropBox, lo: f32, hi: f32, horizontal: bool) -> bool {
        let (start, len) = if horizontal { (b.x, b.w) } else { (b.y, b.h) };
        let tol = 1e-2;
        start as f32 - 0.5 <= lo + tol && hi - tol <= start as f32 + len as f32 - 0.5
    }

    #[test]
    fn person_crop_extends_past_a_portrait_frame() {
        // A 60×100 portrait frame with the dancer filling the height: head at the top edge,
        // feet at the bottom edge, arms wide.
        let (fw, fh, m) = (60, 100, 0.15);
        let pts = [
            (0, 30.0, 3.0),
            (4, 12.0, 40.0),
            (7, 48.0, 40.0),
            (10, 25.0, 96.0),
            (13, 36.0, 97.0),
        ];
        let poses = [pose_with(&pts[..3]), pose_with(&pts[2..])];
        let c = person_square_crop(&poses, fw, fh, m).unwrap();
        // span 94 → 94·1.3 = 122.2 → 123 + 1; centred on (30, 50).
        assert_eq!((c.w, c.h), (124, 124));
        assert!(c.w > fw && c.h > fh, "{c:?}");
        assert_eq!((c.x, c.y), (-32, -12));
        c.check_overlaps(fw, fh).unwrap();
        assert!(!c.is_inside(fw, fh));
        // Every keypoint with the margin on each side is covered.
        let grow = m * 94.0;
        for &(_, x, y) in &pts {
            assert!(covers(&c, x - grow, x + grow, true), "x {x} in {c:?}");
            assert!(covers(&c, y - grow, y + grow, false), "y {y} in {c:?}");
        }
        // Off-centre person in a frame shorter than the box: the box still covers the whole
        // frame axis (no frame pixel lost for padding) and the keypoints.
        // Here 79 px: wider than the frame, so it ends at the frame's right edge instead of
        // being centred on the person at x ≈ 6; it fits the height and lies inside it.
        let left = [pose_with(&[(0, 5.0, 0.0), (10, 8.0, 60.0)])];
        let c = person_square_crop(&left, fw, fh, m).unwrap();
        assert_eq!((c.x, c.w), (60 - 79, 79), "{c:?}");
        assert!(c.y >= 0 && c.y + c.h as i32 <= fh as i32, "{c:?}");
        for (x, y) in [(5.0, 0.0), (8.0, 60.0)] {
            assert!(covers(&c, x, x, true) && covers(&c, y, y, false));
        }
        // Keypoints past the frame are clipped to it before sizing the box.
        let wild = [pose_with(&[(0, 30.0, 3.0), (10, 1e7, -1e7)])];
        let c = person_square_crop(&wild, fw, fh, m).unwrap();
        c.check_overlaps(fw, fh).unwrap();
        assert!(c.w <= 2 * fh);
    }

    #[test]
    fn overlap_check_refuses_boxes_outside_the_frame() {
        let bx = |x, y, w, h| CropBox { x, y, w, h };
        for ok in [
            bx(-5, -3, 10, 10),
            bx(9, 7, 10, 10),
            bx(-9, -7, 10, 8),
            bx(0, 0, 10, 8),
            bx(-10, -12, 20, 20),
        ] {
            ok.check_overlaps(10, 8).unwrap();
        }
        for bad in [
            bx(10, 0, 5, 5),
            bx(0, 8, 5, 5),
            bx(-5, 0, 5, 5),
            bx(0, -5, 5, 5),
            bx(i32::MIN, i32::MIN, u32::MAX, 1),
            bx(0, 0, 0, 5),
            bx(0, 0, 5, 0),
            bx(-50, 0, 60, 5),
        ] {
            let e = bad.check_overlaps(10, 8).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{bad:?}");
            assert!(e.to_string().contains("CropBox"), "{e}");
        }
        assert!(bx(i32::MAX, 0, u32::MAX, 1).check_overlaps(10, 8).is_err());
        assert!(bx(0, 0, 1, 1).check_overlaps(0, 8).is_err());
        let e = bx(20, 0, 5, 5).check_overlaps(10, 8).unwrap_err();
        assert!(e.to_string().contains("entirely outside"), "{e}");
        assert!(!bx(-1, 0, 5, 5).is_inside(10, 8));
        assert!(bx(i32::MAX, 0, u32::MAX, 1).check_inside(10, 8).is_err());
    }

    #[test]
    fn keypoints_round_trip_through_a_box_with_negative_corner() {
        let pose = pose_with(&[(0, 30.0, 3.0), (10, 25.0, 96.0), (4, 0.0, 0.0)]);
        let crop = CropBox {
            x: -32,
            y: -12,
            w: 124,
            h: 124,
        };
        let m = to_model(&pose, &crop, 256, 256).unwrap();
        let s = 256.0 / 124.0;
        let expect = |v: f32, off: f32| (v - off + 0.5) * s - 0.5;
        for i in [0, 10, 4] {
            let k = pose.keypoints[i];
            assert!((m.keypoints[i].x - expect(k.x, -32.0)).abs() < 1e-4);
            assert!((m.keypoints[i].y - expect(k.y, -12.0)).abs() < 1e-4);
            // Every in-frame point lands inside the model frame.
            assert!((0.0..256.0).contains(&m.keypoints[i].x));
            assert!((0.0..256.0).contains(&m.keypoints[i].y));
        }
        assert_eq!(m.keypoints[1], Keypoint::MISSING);
        let back = from_model(&m, &crop, 256, 256).unwrap();
        for i in [0, 10, 4] {
            assert!((back.keypoints[i].x - pose.keypoints[i].x).abs() < 1e-3);
            assert!((back.keypoints[i].y - pose.keypoints[i].y).abs() < 1e-3);
        }
        // The frame's top-left pixel centre sits at (32, 12) of the box.
        let corner = crop_pose(&pose_with(&[(0, 0.0, 0.0)]), &crop);
        assert_eq!((corner.keypoints[0].x, corner.keypoints[0].y), (32.0, 12.0));
    }

    #[test]
    fn boxes_saved_with_unsigned_fields_still_load() {
        // Crop records and checkpoints written before the corner became signed.
        let old = r#"{"x": 420, "y": 0, "w": 1080, "h": 1080}"#;
        let b: CropBox = serde_json::from_str(old).unwrap();
        assert_eq!(b, centre_square_crop(1920, 1080).unwrap());
        let neg = CropBox {
            x: -32,
            y: -12,
            w: 124,
            h: 124,
        };
        let text = serde_json::to_string(&neg).unwrap();
        assert_eq!(text, r#"{"x":-32,"y":-12,"w":124,"h":124}"#);
        assert_eq!(serde_json::from_str::<CropBox>(&text).unwrap(), neg);
        assert!(serde_json::from_str::<CropBox>(r#"{"x":0,"y":0,"w":-1,"h":1}"#).is_err());
    }

    #[test]
    fn median_smoothing_ignores_missing_points() {
        let xs = [0.0, 10.0, 100.0, 12.0, 11.0];
        let mut poses: Vec<Pose> = xs.iter().map(|&x| pose_with(&[(0, x, 2.0 * x)])).collect();
        poses[3].keypoints[0] = Keypoint::MISSING;
        let s = smooth_median(&poses, 3).unwrap();
        let got: Vec<f32> = s.iter().map(|p| p.keypoints[0].x).collect();
        // Windows of present values: [0,10] [0,10,100] [10,100] (missing) [11].
        assert_eq!(got, vec![5.0, 10.0, 55.0, 0.0, 11.0]);
        assert_eq!(s[1].keypoints[0].y, 20.0);
        assert!(!s[3].keypoints[0].is_present());
        assert_eq!(s[2].keypoints[0].c, 1.0);
        // Window 1 is the identity; window 5 clips at both ends.
        assert_eq!(smooth_median(&poses, 1).unwrap(), poses);
        let s5 = smooth_median(&poses, 5).unwrap();
        assert_eq!(s5[0].keypoints[0].x, 10.0); // [0, 10, 100]
        assert_eq!(s5[4].keypoints[0].x, 55.5); // [100, 11]
        assert!(smooth_median(&poses, 4).is_err());
        assert!(smooth_median(&poses, 0).is_err());
        assert!(smooth_median(&[], 3).unwrap().is_empty());
    }
}

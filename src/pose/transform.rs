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

/// A pixel rectangle of a frame: top-left corner (x, y), width w, height h.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl CropBox {
    /// Checks that the box is non-empty and lies inside a `frame_w`×`frame_h` frame.
    pub fn check_inside(&self, frame_w: u32, frame_h: u32) -> Result<()> {
        let fits_x = self.x as u64 + self.w as u64 <= frame_w as u64;
        let fits_y = self.y as u64 + self.h as u64 <= frame_h as u64;
        if self.w == 0 || self.h == 0 || !fits_x || !fits_y {
            return Err(Error::invalid(
                "CropBox",
                format!("box {self:?} is empty or not inside the {frame_w}×{frame_h} frame"),
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
    Ok(CropBox {
        x: (frame_w - side) / 2,
        y: (frame_h - side) / 2,
        w: side,
        h: side,
    })
}

/// A square crop centred on the person: the bounding box of the present keypoints of all `poses`
/// (one box for a whole video keeps the framing still), its longer side grown by `margin` of that
/// side on each end and rounded up to whole pixels, capped at the frame's shorter side, then
/// shifted to lie inside the frame.
pub fn person_square_crop(
    poses: &[Pose],
    frame_w: u32,
    frame_h: u32,
    margin: f32,
) -> Result<CropBox> {
    const OP: &str = "person_square_crop";
    if frame_w == 0 || frame_h == 0 {
        return Err(Error::invalid(
            OP,
            format!("empty frame {frame_w}×{frame_h}"),
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
    let span = (bounds.x_max - bounds.x_min).max(bounds.y_max - bounds.y_min);
    let max_side = frame_w.min(frame_h);
    // Round up, ignoring float noise below 1/1000 px (200 × 1.2 is 240.00002 in f32).
    let side = ((span * (1.0 + 2.0 * margin) - 1e-3).ceil() as u32).clamp(1, max_side);
    let place = |centre: f32, limit: u32| -> u32 {
        let start = (centre - side as f32 / 2.0).round();
        start.clamp(0.0, (limit - side) as f32) as u32
    };
    let cx = 0.5 * (bounds.x_min + bounds.x_max);
    let cy = 0.5 * (bounds.y_min + bounds.y_max);
    Ok(CropBox {
        x: place(cx, frame_w),
        y: place(cy, frame_h),
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
    fn person_crop_is_square_padded_and_inside_the_frame() {
        let a = pose_with(&[(0, 100.0, 50.0), (10, 140.0, 250.0)]);
        let b = pose_with(&[(0, 90.0, 60.0)]);
        // Union box x 90..140, y 50..250: span 200, margin 0.1 → side 240, centre (115, 150).
        let c = person_square_crop(&[a, b, Pose::missing()], 640, 480, 0.1).unwrap();
        // x = 115 − 120 < 0 is pushed inside to 0.
        assert_eq!(
            c,
            CropBox {
                x: 0,
                y: 30,
                w: 240,
                h: 240
            }
        );
        c.check_inside(640, 480).unwrap();
        // Too big for the frame: capped at the shorter side.
        let c = person_square_crop(&[a], 300, 200, 1.0).unwrap();
        assert_eq!((c.w, c.h, c.y), (200, 200, 0));
        c.check_inside(300, 200).unwrap();
        assert!(person_square_crop(&[Pose::missing()], 300, 200, 0.1).is_err());
        assert!(person_square_crop(&[a], 300, 200, -0.5).is_err());
        assert!(person_square_crop(&[a], 300, 200, f32::NAN).is_err());
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

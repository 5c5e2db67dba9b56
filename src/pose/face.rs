//! The face box: where the face generator (G2/D2) crops, from the head keypoints.

use super::keypoints::{Pose, HEAD_POINTS};
use super::transform::CropBox;

/// Face crop side at 256×256 (MODEL.md §4: 64×64 centred on the head keypoints).
pub const FACE_SIZE_AT_256: f32 = 64.0;

/// A square face crop of an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    /// Mean position of the present head points (nose, eyes, ears).
    pub cx: f32,
    pub cy: f32,
    /// The crop: `FACE_SIZE_AT_256`·min(H, W)/256 pixels a side (at least 1, at most min(H, W)),
    /// centred on (cx, cy) rounded to whole pixels, then shifted to lie inside the image.
    pub crop: CropBox,
}

/// The face box of `pose` in a `height`×`width` image; `None` without a present head point or for
/// an empty image.
pub fn face_box(pose: &Pose, height: u32, width: u32) -> Option<FaceBox> {
    if height == 0 || width == 0 {
        return None;
    }
    let (cx, cy) = pose.mean_of(&HEAD_POINTS)?;
    let short = height.min(width);
    let side = ((FACE_SIZE_AT_256 * short as f32 / 256.0).round() as u32).clamp(1, short);
    // Pixel centres are at integer coordinates, so a box of `side` pixels centred on c starts at
    // c − (side − 1)/2.
    let place = |c: f32, limit: u32| -> i32 {
        let start = (c - (side as f32 - 1.0) / 2.0).round();
        start.clamp(0.0, (limit - side) as f32) as i32
    };
    let crop = CropBox {
        x: place(cx, width),
        y: place(cy, height),
        w: side,
        h: side,
    };
    Some(FaceBox { cx, cy, crop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::keypoints::{Keypoint, L_EAR, NECK, NOSE, R_EYE};

    #[test]
    fn face_box_centres_on_head_points_and_stays_inside() {
        let mut p = Pose::missing();
        p.keypoints[NOSE] = Keypoint::new(120.0, 50.0, 1.0);
        p.keypoints[R_EYE] = Keypoint::new(110.0, 44.0, 1.0);
        p.keypoints[L_EAR] = Keypoint::new(136.0, 50.0, 1.0);
        p.keypoints[NECK] = Keypoint::new(0.0, 250.0, 1.0); // not a head point
        let f = face_box(&p, 256, 256).unwrap();
        assert_eq!((f.cx, f.cy), (122.0, 48.0));
        // start = round(122 − 31.5) = 91 (ties away from zero), round(48 − 31.5) = 17.
        assert_eq!(
            f.crop,
            CropBox {
                x: 91,
                y: 17,
                w: 64,
                h: 64
            }
        );
        f.crop.check_inside(256, 256).unwrap();
        // At 64×128 the side is 16; near the top-left corner the box is pushed inside.
        let corner = p.map_present(|x, y| (x * 0.01, y * 0.01));
        let f = face_box(&corner, 64, 128).unwrap();
        assert_eq!(
            f.crop,
            CropBox {
                x: 0,
                y: 0,
                w: 16,
                h: 16
            }
        );
        // Near the bottom-right corner too.
        let far = p.map_present(|x, y| (x + 1000.0, y + 1000.0));
        let f = face_box(&far, 64, 128).unwrap();
        assert_eq!(
            f.crop,
            CropBox {
                x: 112,
                y: 48,
                w: 16,
                h: 16
            }
        );
        assert!(face_box(&Pose::missing(), 256, 256).is_none());
        assert!(face_box(&p, 0, 256).is_none());
        // A tiny image still gives a 1-pixel box.
        assert_eq!(face_box(&p, 2, 2).unwrap().crop.w, 1);
    }
}

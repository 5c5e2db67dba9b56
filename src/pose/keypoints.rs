//! The OpenPose COCO-18 skeleton: keypoint order, limbs, colours, and the `Pose` of one frame.
//!
//! Coordinates are pixels with the centre of pixel (row r, column c) at (x, y) = (c, r), as
//! OpenPose writes them. A missing keypoint is stored as (0, 0, 0); any point with a confidence
//! that is not a finite positive number is treated as missing.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of keypoints in the COCO-18 layout.
pub const NUM_KEYPOINTS: usize = 18;

/// Keypoint names in COCO-18 order.
pub const KEYPOINT_NAMES: [&str; NUM_KEYPOINTS] = [
    "Nose",
    "Neck",
    "RShoulder",
    "RElbow",
    "RWrist",
    "LShoulder",
    "LElbow",
    "LWrist",
    "RHip",
    "RKnee",
    "RAnkle",
    "LHip",
    "LKnee",
    "LAnkle",
    "REye",
    "LEye",
    "REar",
    "LEar",
];

pub const NOSE: usize = 0;
pub const NECK: usize = 1;
pub const R_SHOULDER: usize = 2;
pub const R_ELBOW: usize = 3;
pub const R_WRIST: usize = 4;
pub const L_SHOULDER: usize = 5;
pub const L_ELBOW: usize = 6;
pub const L_WRIST: usize = 7;
pub const R_HIP: usize = 8;
pub const R_KNEE: usize = 9;
pub const R_ANKLE: usize = 10;
pub const L_HIP: usize = 11;
pub const L_KNEE: usize = 12;
pub const L_ANKLE: usize = 13;
pub const R_EYE: usize = 14;
pub const L_EYE: usize = 15;
pub const R_EAR: usize = 16;
pub const L_EAR: usize = 17;

/// Head keypoints (nose, eyes, ears): the points of the paper's eq. 1 and of the face box.
pub const HEAD_POINTS: [usize; 5] = [NOSE, R_EYE, L_EYE, R_EAR, L_EAR];

/// Ankle keypoints, used by the Everybody-Dance-Now normalisation.
pub const ANKLE_POINTS: [usize; 2] = [R_ANKLE, L_ANKLE];

/// Number of limbs drawn in label maps.
pub const NUM_LIMBS: usize = 17;

/// The 17 drawn limbs as (from, to) keypoint indices; limb i is drawn in `COLORS[i]`.
pub const LIMBS: [(usize, usize); NUM_LIMBS] = [
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
];

/// The two pairs that exist in OpenPose's part-affinity fields but are never drawn.
pub const PAF_ONLY_PAIRS: [(usize, usize); 2] = [(2, 16), (5, 17)];

/// OpenPose colours (RGB, 0-255): keypoint i's disk and limb i use `COLORS[i]`.
pub const COLORS: [[u8; 3]; NUM_KEYPOINTS] = [
    [255, 0, 85],
    [255, 0, 0],
    [255, 85, 0],
    [255, 170, 0],
    [255, 255, 0],
    [170, 255, 0],
    [85, 255, 0],
    [0, 255, 0],
    [0, 255, 85],
    [0, 255, 170],
    [0, 255, 255],
    [0, 170, 255],
    [0, 85, 255],
    [0, 0, 255],
    [255, 0, 170],
    [170, 0, 255],
    [255, 0, 255],
    [85, 0, 255],
];

/// COCO-17 (MS-COCO annotation order) to COCO-18: entry i is the COCO-17 index of COCO-18
/// keypoint i; `None` marks the neck, which is the midpoint of the two shoulders (5, 6).
pub const COCO17_TO_COCO18: [Option<usize>; NUM_KEYPOINTS] = [
    Some(0),
    None,
    Some(6),
    Some(8),
    Some(10),
    Some(5),
    Some(7),
    Some(9),
    Some(12),
    Some(14),
    Some(16),
    Some(11),
    Some(13),
    Some(15),
    Some(2),
    Some(1),
    Some(4),
    Some(3),
];

/// One keypoint: position in pixels and detection confidence (0 = missing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub c: f32,
}

impl Keypoint {
    pub const MISSING: Keypoint = Keypoint {
        x: 0.0,
        y: 0.0,
        c: 0.0,
    };

    /// A keypoint from raw values; a non-positive or non-finite confidence, or a non-finite
    /// coordinate, gives the canonical missing point (0, 0, 0).
    pub fn new(x: f32, y: f32, c: f32) -> Self {
        if c > 0.0 && c.is_finite() && x.is_finite() && y.is_finite() {
            Keypoint { x, y, c }
        } else {
            Keypoint::MISSING
        }
    }

    pub fn is_present(&self) -> bool {
        self.c > 0.0
    }
}

/// The 18 COCO keypoints of one person in one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub keypoints: [Keypoint; NUM_KEYPOINTS],
}

/// Axis-aligned bounding box of points: (x_min, y_min, x_max, y_max).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl Bounds {
    pub fn area(&self) -> f32 {
        (self.x_max - self.x_min) * (self.y_max - self.y_min)
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &Bounds) -> Bounds {
        Bounds {
            x_min: self.x_min.min(other.x_min),
            y_min: self.y_min.min(other.y_min),
            x_max: self.x_max.max(other.x_max),
            y_max: self.y_max.max(other.y_max),
        }
    }
}

impl Pose {
    /// A pose with every keypoint missing.
    pub fn missing() -> Self {
        Pose::default()
    }

    /// From 54 floats `[x0, y0, c0, x1, …]` in COCO-18 order.
    pub fn from_flat(values: &[f32]) -> Result<Self> {
        if values.len() != NUM_KEYPOINTS * 3 {
            return Err(Error::invalid(
                "Pose::from_flat",
                format!(
                    "expected {} floats (18 keypoints × 3), got {}",
                    NUM_KEYPOINTS * 3,
                    values.len()
                ),
            ));
        }
        let mut pose = Pose::missing();
        for (k, v) in pose.keypoints.iter_mut().zip(values.chunks_exact(3)) {
            *k = Keypoint::new(v[0], v[1], v[2]);
        }
        Ok(pose)
    }

    /// 54 floats `[x0, y0, c0, …]` in COCO-18 order.
    pub fn to_flat(&self) -> Vec<f32> {
        self.keypoints
            .iter()
            .flat_map(|k| [k.x, k.y, k.c])
            .collect()
    }

    /// From 17 COCO keypoints (MS-COCO order, `[x, y, c]` each). The neck is the shoulders'
    /// midpoint with the smaller of their confidences, present only when both shoulders are.
    pub fn from_coco17(points: &[[f32; 3]]) -> Result<Self> {
        if points.len() != 17 {
            return Err(Error::invalid(
                "Pose::from_coco17",
                format!("expected 17 keypoints, got {}", points.len()),
            ));
        }
        let kp = |i: usize| Keypoint::new(points[i][0], points[i][1], points[i][2]);
        let mut pose = Pose::missing();
        for (dst, src) in pose.keypoints.iter_mut().zip(COCO17_TO_COCO18.iter()) {
            *dst = match src {
                Some(i) => kp(*i),
                None => {
                    let (l, r) = (kp(5), kp(6));
                    if l.is_present() && r.is_present() {
                        Keypoint::new(0.5 * (l.x + r.x), 0.5 * (l.y + r.y), l.c.min(r.c))
                    } else {
                        Keypoint::MISSING
                    }
                }
            };
        }
        Ok(pose)
    }

    pub fn is_present(&self, i: usize) -> bool {
        self.keypoints[i].is_present()
    }

    /// Number of present keypoints.
    pub fn num_present(&self) -> usize {
        self.keypoints.iter().filter(|k| k.is_present()).count()
    }

    /// Bounding box of the present keypoints, `None` when none is present.
    pub fn bounds(&self) -> Option<Bounds> {
        let mut it = self.keypoints.iter().filter(|k| k.is_present());
        let first = it.next()?;
        let init = Bounds {
            x_min: first.x,
            y_min: first.y,
            x_max: first.x,
            y_max: first.y,
        };
        Some(it.fold(init, |b, k| Bounds {
            x_min: b.x_min.min(k.x),
            y_min: b.y_min.min(k.y),
            x_max: b.x_max.max(k.x),
            y_max: b.y_max.max(k.y),
        }))
    }

    /// Mean position of the present keypoints among `indices`, `None` when none is present.
    pub fn mean_of(&self, indices: &[usize]) -> Option<(f32, f32)> {
        let (mut sx, mut sy, mut n) = (0.0f32, 0.0f32, 0usize);
        for &i in indices {
            let k = self.keypoints[i];
            if k.is_present() {
                sx += k.x;
                sy += k.y;
                n += 1;
            }
        }
        (n > 0).then(|| (sx / n as f32, sy / n as f32))
    }

    /// Applies `f` to the position of every present keypoint; missing points stay missing.
    pub fn map_present(&self, mut f: impl FnMut(f32, f32) -> (f32, f32)) -> Pose {
        let mut out = *self;
        for k in out.keypoints.iter_mut().filter(|k| k.is_present()) {
            let (x, y) = f(k.x, k.y);
            k.x = x;
            k.y = y;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_tables_are_consistent() {
        assert_eq!(KEYPOINT_NAMES.len(), 18);
        assert_eq!(KEYPOINT_NAMES[R_ANKLE], "RAnkle");
        assert_eq!(KEYPOINT_NAMES[L_EAR], "LEar");
        for &(a, b) in LIMBS.iter().chain(PAF_ONLY_PAIRS.iter()) {
            assert!(a < NUM_KEYPOINTS && b < NUM_KEYPOINTS && a != b);
        }
        // Every keypoint is reached by some drawn limb.
        for i in 0..NUM_KEYPOINTS {
            assert!(LIMBS.iter().any(|&(a, b)| a == i || b == i), "keypoint {i}");
        }
        assert_eq!(COLORS[0], [255, 0, 85]);
        assert_eq!(COLORS[17], [85, 0, 255]);
    }

    #[test]
    fn flat_round_trip_and_missing_canonicalisation() {
        let mut v: Vec<f32> = (0..54).map(|i| i as f32 + 1.0).collect();
        v[3 * 4 + 2] = 0.0; // RWrist missing, with junk coordinates
        v[3 * 7 + 2] = -1.0; // LWrist negative confidence
        let p = Pose::from_flat(&v).unwrap();
        assert_eq!(p.keypoints[4], Keypoint::MISSING);
        assert_eq!(p.keypoints[7], Keypoint::MISSING);
        assert_eq!(p.num_present(), 16);
        assert_eq!(
            p.keypoints[2],
            Keypoint {
                x: 7.0,
                y: 8.0,
                c: 9.0
            }
        );
        let back = Pose::from_flat(&p.to_flat()).unwrap();
        assert_eq!(back, p);
        assert!(matches!(
            Pose::from_flat(&v[..51]),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn coco17_mapping_builds_neck_from_shoulders() {
        let pts: Vec<[f32; 3]> = (0..17).map(|i| [i as f32 * 10.0, i as f32, 0.9]).collect();
        let p = Pose::from_coco17(&pts).unwrap();
        assert_eq!(
            p.keypoints[NECK],
            Keypoint {
                x: 55.0,
                y: 5.5,
                c: 0.9
            }
        );
        assert_eq!(p.keypoints[R_SHOULDER].x, 60.0);
        assert_eq!(p.keypoints[L_EAR].x, 30.0);
        assert_eq!(p.keypoints[R_ANKLE].x, 160.0);
        let mut one_shoulder = pts.clone();
        one_shoulder[6][2] = 0.0;
        let p = Pose::from_coco17(&one_shoulder).unwrap();
        assert!(!p.is_present(NECK));
        assert!(Pose::from_coco17(&pts[..16]).is_err());
    }

    #[test]
    fn bounds_and_means_ignore_missing_points() {
        let mut p = Pose::missing();
        assert!(p.bounds().is_none());
        p.keypoints[0] = Keypoint::new(10.0, 20.0, 1.0);
        p.keypoints[5] = Keypoint::new(30.0, 5.0, 0.5);
        let b = p.bounds().unwrap();
        assert_eq!(
            (b.x_min, b.y_min, b.x_max, b.y_max),
            (10.0, 5.0, 30.0, 20.0)
        );
        assert_eq!(b.area(), 300.0);
        assert_eq!(p.mean_of(&[0, 5, 6]), Some((20.0, 12.5)));
        assert_eq!(p.mean_of(&[6]), None);
        let q = p.map_present(|x, y| (x + 1.0, y * 2.0));
        assert_eq!(q.keypoints[0], Keypoint::new(11.0, 40.0, 1.0));
        assert_eq!(q.keypoints[6], Keypoint::MISSING);
    }
}

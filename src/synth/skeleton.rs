//! The figure's body: proportions, the joint angles that pose it, and forward kinematics from
//! those angles to the 18 COCO keypoints plus the head geometry the face is drawn with.
//!
//! Angles are radians in image coordinates (y down). `dir(a) = (sin a, cos a)`: 0 points down,
//! +π/2 to the image right. The figure faces the camera, so its right side is the image's left.

use crate::error::{Error, Result};
use crate::pose::keypoints::{
    L_ANKLE, L_EAR, L_ELBOW, L_EYE, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NECK, NOSE, R_ANKLE, R_EAR,
    R_ELBOW, R_EYE, R_HIP, R_KNEE, R_SHOULDER, R_WRIST,
};
use crate::pose::{Keypoint, Pose, NUM_KEYPOINTS};

/// Body segment lengths in units of the default standing height (head top to ankles = 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proportions {
    pub head_radius: f32,
    /// Neck keypoint to head centre.
    pub neck: f32,
    /// Neck keypoint to the midpoint of the hips.
    pub torso: f32,
    pub shoulder_width: f32,
    pub hip_width: f32,
    pub upper_arm: f32,
    pub forearm: f32,
    pub thigh: f32,
    pub shin: f32,
    /// Thickness of arms and legs.
    pub limb_width: f32,
}

impl Default for Proportions {
    fn default() -> Self {
        Proportions {
            head_radius: 0.065,
            neck: 0.095,
            torso: 0.31,
            shoulder_width: 0.22,
            hip_width: 0.14,
            upper_arm: 0.17,
            forearm: 0.16,
            thigh: 0.26,
            shin: 0.27,
            limb_width: 0.05,
        }
    }
}

impl Proportions {
    /// Head top to ankles when standing straight (1 for the default proportions).
    pub fn standing_height(&self) -> f32 {
        self.head_radius + self.neck + self.torso + self.thigh + self.shin
    }

    /// Head top to hip centre, standing.
    pub fn upper_height(&self) -> f32 {
        self.head_radius + self.neck + self.torso
    }

    fn fields(&self) -> [(&'static str, f32); 10] {
        [
            ("head_radius", self.head_radius),
            ("neck", self.neck),
            ("torso", self.torso),
            ("shoulder_width", self.shoulder_width),
            ("hip_width", self.hip_width),
            ("upper_arm", self.upper_arm),
            ("forearm", self.forearm),
            ("thigh", self.thigh),
            ("shin", self.shin),
            ("limb_width", self.limb_width),
        ]
    }

    /// Every length must be finite and in (0, 2] (beyond that the figure is not a body).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in self.fields() {
            if !(v.is_finite() && v > 0.0 && v <= 2.0) {
                return Err(Error::invalid(
                    "synth::Proportions",
                    format!("{name} = {v} is not in (0, 2]"),
                ));
            }
        }
        Ok(())
    }

    /// All lengths multiplied by `k` (a taller or shorter figure of the same shape).
    pub fn scaled(&self, k: f32) -> Proportions {
        let mut p = *self;
        for v in [
            &mut p.head_radius,
            &mut p.neck,
            &mut p.torso,
            &mut p.shoulder_width,
            &mut p.hip_width,
            &mut p.upper_arm,
            &mut p.forearm,
            &mut p.thigh,
            &mut p.shin,
            &mut p.limb_width,
        ] {
            *v *= k;
        }
        p
    }
}

/// Joint angles of one frame. Side index 0 is the figure's right, 1 its left; a positive limb
/// angle moves the limb away from the body on either side.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JointAngles {
    /// Torso rotation about the hips (positive leans to the image right).
    pub lean: f32,
    /// Head rotation about the neck, relative to the torso.
    pub head_tilt: f32,
    /// Upper arm from hanging down (0) outwards; π raises it overhead.
    pub shoulder: [f32; 2],
    /// Forearm relative to the upper arm.
    pub elbow: [f32; 2],
    /// Thigh from straight down outwards.
    pub hip: [f32; 2],
    /// Shin relative to the thigh, bending inwards.
    pub knee: [f32; 2],
}

/// A posed figure in pixels: the 18 keypoints and the head disk they were placed on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub points: [(f32, f32); NUM_KEYPOINTS],
    pub head_centre: (f32, f32),
    pub head_radius: f32,
    /// Unit vector from the neck to the head centre (the face's "up").
    pub head_up: (f32, f32),
    /// Limb thickness in pixels.
    pub limb_width: f32,
    /// Half-width of the torso in pixels.
    pub torso_half_width: f32,
}

/// Image-left side sign for side 0 (figure's right), image-right for side 1.
const SIDE_SIGN: [f32; 2] = [-1.0, 1.0];

pub fn dir(a: f32) -> (f32, f32) {
    (a.sin(), a.cos())
}

fn step(p: (f32, f32), d: (f32, f32), len: f32) -> (f32, f32) {
    (p.0 + d.0 * len, p.1 + d.1 * len)
}

/// Places the figure: `root` is the hip centre in pixels, `unit` the pixels per proportion unit.
pub fn forward(props: &Proportions, a: &JointAngles, root: (f32, f32), unit: f32) -> Figure {
    let p = props.scaled(unit);
    let phi = -a.lean;
    let down = dir(phi);
    let up = (-down.0, -down.1);
    // Perpendicular to the spine, pointing to the image right.
    let across = (down.1, -down.0);
    let mut pts = [(0.0f32, 0.0f32); NUM_KEYPOINTS];
    let neck = step(root, up, p.torso);
    pts[NECK] = neck;
    let arms = [
        (R_SHOULDER, R_ELBOW, R_WRIST),
        (L_SHOULDER, L_ELBOW, L_WRIST),
    ];
    let legs = [(R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)];
    for s in 0..2 {
        let sg = SIDE_SIGN[s];
        let (sh, el, wr) = arms[s];
        pts[sh] = step(neck, across, sg * p.shoulder_width / 2.0);
        let t_upper = phi + sg * a.shoulder[s];
        pts[el] = step(pts[sh], dir(t_upper), p.upper_arm);
        pts[wr] = step(pts[el], dir(t_upper + sg * a.elbow[s]), p.forearm);
        let (hp, kn, an) = legs[s];
        pts[hp] = step(root, across, sg * p.hip_width / 2.0);
        let t_thigh = phi + sg * a.hip[s];
        pts[kn] = step(pts[hp], dir(t_thigh), p.thigh);
        pts[an] = step(pts[kn], dir(t_thigh - sg * a.knee[s]), p.shin);
    }
    let head_up = dir(phi + std::f32::consts::PI + a.head_tilt);
    let centre = step(neck, head_up, p.neck);
    let r = p.head_radius;
    let face_across = (-head_up.1, head_up.0);
    // Face features as (up, across) offsets in head radii; the drawing uses the same points.
    let face = |u: f32, x: f32| step(step(centre, head_up, u * r), face_across, x * r);
    pts[NOSE] = face(-0.12, 0.0);
    pts[R_EYE] = face(0.22, -0.38);
    pts[L_EYE] = face(0.22, 0.38);
    pts[R_EAR] = face(0.05, -0.95);
    pts[L_EAR] = face(0.05, 0.95);
    Figure {
        points: pts,
        head_centre: centre,
        head_radius: r,
        head_up,
        limb_width: p.limb_width,
        torso_half_width: 0.4 * p.shoulder_width,
    }
}

impl Figure {
    /// The same figure moved by (dx, dy) pixels.
    pub fn translated(&self, dx: f32, dy: f32) -> Figure {
        let mut f = *self;
        for p in f.points.iter_mut() {
            *p = (p.0 + dx, p.1 + dy);
        }
        f.head_centre = (f.head_centre.0 + dx, f.head_centre.1 + dy);
        f
    }

    /// A point of the face in head-local coordinates (radii up, radii to the image right).
    pub fn face_point(&self, up: f32, across: f32) -> (f32, f32) {
        let u = self.head_up;
        let x = (-u.1, u.0);
        let r = self.head_radius;
        let c = self.head_centre;
        (
            c.0 + (u.0 * up + x.0 * across) * r,
            c.1 + (u.1 * up + x.1 * across) * r,
        )
    }

    /// Keypoint bounds (x_min, y_min, x_max, y_max), head disk included.
    pub fn extent(&self) -> (f32, f32, f32, f32) {
        let (c, r) = (self.head_centre, self.head_radius);
        let init = (c.0 - r, c.1 - r, c.0 + r, c.1 + r);
        self.points.iter().fold(init, |b, p| {
            (b.0.min(p.0), b.1.min(p.1), b.2.max(p.0), b.3.max(p.1))
        })
    }

    /// The keypoints as a pose (confidence 1). Points outside a `width`×`height` image are
    /// written as missing, as a detector could not see them.
    pub fn to_pose(&self, width: u32, height: u32) -> Pose {
        let mut pose = Pose::missing();
        let (xm, ym) = (width as f32 - 1.0, height as f32 - 1.0);
        for (k, &(x, y)) in pose.keypoints.iter_mut().zip(self.points.iter()) {
            if (0.0..=xm).contains(&x) && (0.0..=ym).contains(&y) {
                *k = Keypoint::new(x, y, 1.0);
            }
        }
        pose
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::keypoints::LIMBS;

    fn dist(a: (f32, f32), b: (f32, f32)) -> f32 {
        ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
    }

    #[test]
    fn standing_pose_has_expected_lengths_and_symmetry() {
        let p = Proportions::default();
        assert!((p.standing_height() - 1.0).abs() < 1e-6);
        let f = forward(&p, &JointAngles::default(), (100.0, 100.0), 200.0);
        let pts = f.points;
        // Neck straight above the root, ankles straight below the hips.
        assert!((pts[NECK].0 - 100.0).abs() < 1e-4);
        assert!((pts[NECK].1 - (100.0 - 0.31 * 200.0)).abs() < 1e-3);
        let ankle_y = 100.0 + (0.26 + 0.27) * 200.0;
        assert!((pts[R_ANKLE].1 - ankle_y).abs() < 1e-3);
        assert!((pts[L_ANKLE].1 - ankle_y).abs() < 1e-3);
        // Right side on the image left, mirror images of each other.
        for (r, l) in [(R_SHOULDER, L_SHOULDER), (R_WRIST, L_WRIST), (R_EYE, L_EYE)] {
            assert!(pts[r].0 < pts[l].0);
            assert!((pts[r].0 + pts[l].0 - 200.0).abs() < 1e-3);
            assert!((pts[r].1 - pts[l].1).abs() < 1e-3);
        }
        // Head top at the standing height.
        let top = f.head_centre.1 - f.head_radius;
        assert!((ankle_y - top - 200.0).abs() < 1e-3);
    }

    #[test]
    fn bone_lengths_are_kept_under_any_angles() {
        let p = Proportions::default();
        let a = JointAngles {
            lean: 0.3,
            head_tilt: -0.4,
            shoulder: [2.1, -0.3],
            elbow: [1.0, 0.5],
            hip: [0.4, 0.1],
            knee: [0.9, 0.2],
        };
        let unit = 150.0;
        let f = forward(&p, &a, (70.0, 90.0), unit);
        let pts = f.points;
        let bones = [
            (R_SHOULDER, R_ELBOW, p.upper_arm),
            (L_ELBOW, L_WRIST, p.forearm),
            (R_HIP, R_KNEE, p.thigh),
            (L_KNEE, L_ANKLE, p.shin),
            (R_SHOULDER, L_SHOULDER, p.shoulder_width),
            (R_HIP, L_HIP, p.hip_width),
        ];
        for (i, j, len) in bones {
            assert!((dist(pts[i], pts[j]) - len * unit).abs() < 1e-3, "{i}-{j}");
        }
        assert!((dist(pts[NECK], f.head_centre) - p.neck * unit).abs() < 1e-3);
        // Ears sit on the head's rim, eyes and nose inside it.
        for (k, max) in [(R_EAR, 1.0), (L_EAR, 1.0), (R_EYE, 0.5), (NOSE, 0.2)] {
            assert!(dist(pts[k], f.head_centre) <= max * f.head_radius + 1e-3);
        }
        // Every drawn limb joins two distinct, nearby points (a connected skeleton).
        for (i, j) in LIMBS {
            let d = dist(pts[i], pts[j]);
            assert!(d > 0.5 && d < 0.5 * unit, "limb {i}-{j}: {d}");
        }
    }

    #[test]
    fn proportions_validate_and_scale() {
        let mut p = Proportions::default();
        p.validate().unwrap();
        assert!((p.scaled(2.0).standing_height() - 2.0).abs() < 1e-6);
        p.thigh = f32::NAN;
        assert!(matches!(p.validate(), Err(Error::Invalid { .. })));
        p.thigh = -0.1;
        assert!(p.validate().is_err());
    }

    #[test]
    fn to_pose_marks_points_outside_the_image_missing() {
        let f = forward(
            &Proportions::default(),
            &JointAngles::default(),
            (50.0, 50.0),
            100.0,
        );
        let pose = f.to_pose(100, 100);
        assert!(pose.is_present(NECK));
        assert!(!pose.is_present(R_ANKLE)); // at y = 103
        let k = pose.keypoints[NOSE];
        assert_eq!((k.x, k.y, k.c), (f.points[NOSE].0, f.points[NOSE].1, 1.0));
        let moved = f.translated(3.0, -2.0);
        assert_eq!(
            moved.points[NECK],
            (f.points[NECK].0 + 3.0, f.points[NECK].1 - 2.0)
        );
    }
}

//! Global pose normalisation: map the source video's poses into the target video's framing.
//!
//! Two methods, chosen by [`NormalizationKind`]; their statistics serialise (serde) so a checkpoint
//! can store them.
//!
//! **Head (the paper's eq. 1, default), y only.** For a frame, L = mean y of its present head
//! points (nose, eyes, ears). Image y grows downwards, so the *farthest* head (a person far from
//! the camera stands higher in the frame) has the *smallest* y: s_min = min over the source frames
//! of L, s_max = max over the source frames of L; t_min, t_max likewise over the target video.
//! N = t_min + (L − s_min)/(s_max − s_min)·(t_max − t_min), and every present keypoint of the frame
//! moves by N − L in y. If s_max == s_min the source head never moves, the ratio is undefined, and
//! N = (t_min + t_max)/2. A frame with no head point reuses the previous frame's shift (no shift
//! before the first frame with a head).
//!
//! **Ankle (Everybody Dance Now), translation + scale.** See [`AnkleStats`] for the statistics
//! and [`AnkleNormalization`] for the per-frame map.

use serde::{Deserialize, Serialize};

use super::keypoints::{Pose, ANKLE_POINTS, HEAD_POINTS};
use crate::error::{Error, Result};

/// Which normalisation to apply to the source poses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormalizationKind {
    None,
    /// The paper's eq. 1 (head based, y shift only).
    #[default]
    Head,
    /// Everybody Dance Now (ankle based, translation + scale).
    Ankle,
}

/// A fitted normalisation, ready to apply to source poses and to store in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Normalization {
    None,
    Head(HeadNormalization),
    Ankle(AnkleNormalization),
}

impl Normalization {
    /// Fits the statistics of the source and target videos for `kind`.
    pub fn fit(kind: NormalizationKind, source: &[Pose], target: &[Pose]) -> Result<Self> {
        Ok(match kind {
            NormalizationKind::None => Normalization::None,
            NormalizationKind::Head => Normalization::Head(HeadNormalization {
                source: HeadStats::from_poses(source)?,
                target: HeadStats::from_poses(target)?,
            }),
            NormalizationKind::Ankle => Normalization::Ankle(AnkleNormalization {
                source: AnkleStats::from_poses(source, DEFAULT_ANKLE_BAND)?,
                target: AnkleStats::from_poses(target, DEFAULT_ANKLE_BAND)?,
            }),
        })
    }

    /// Normalises a sequence of source poses (frame order matters for frames lacking points).
    pub fn apply(&self, poses: &[Pose]) -> Vec<Pose> {
        match self {
            Normalization::None => poses.to_vec(),
            Normalization::Head(h) => h.apply(poses),
            Normalization::Ankle(a) => a.apply(poses),
        }
    }
}

/// Mean y of the present head points, `None` when the frame has none.
pub fn head_y(pose: &Pose) -> Option<f32> {
    pose.mean_of(&HEAD_POINTS).map(|(_, y)| y)
}

/// Head-height statistics of one video: `min` = farthest (smallest y), `max` = closest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStats {
    pub min: f32,
    pub max: f32,
}

impl HeadStats {
    /// Min and max of the frames' mean head y; an error when no frame has a head point.
    pub fn from_poses(poses: &[Pose]) -> Result<Self> {
        let mut it = poses.iter().filter_map(head_y);
        let first = it.next().ok_or_else(|| {
            Error::invalid(
                "HeadStats",
                format!("no head keypoint in any of {} frames", poses.len()),
            )
        })?;
        let (min, max) = it.fold((first, first), |(lo, hi), y| (lo.min(y), hi.max(y)));
        Ok(HeadStats { min, max })
    }
}

/// The paper's eq. 1: the target head y for a source head y `l`.
pub fn eq1(l: f32, source: &HeadStats, target: &HeadStats) -> f32 {
    let span = source.max - source.min;
    if span == 0.0 {
        return 0.5 * (target.min + target.max);
    }
    target.min + (l - source.min) / span * (target.max - target.min)
}

/// Eq. 1 with the statistics of both videos.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadNormalization {
    pub source: HeadStats,
    pub target: HeadStats,
}

impl HeadNormalization {
    pub fn apply(&self, poses: &[Pose]) -> Vec<Pose> {
        let mut shift = 0.0f32;
        poses
            .iter()
            .map(|p| {
                if let Some(l) = head_y(p) {
                    shift = eq1(l, &self.source, &self.target) - l;
                }
                p.map_present(|x, y| (x, y + shift))
            })
            .collect()
    }
}

/// Default width of the ankle band used to find far and close heights: 10 % of the ankle range.
pub const DEFAULT_ANKLE_BAND: f32 = 0.1;

/// The ankle y of a frame: the larger y of its present ankles (the lower foot on screen, the one
/// on the ground), with that ankle's x; `None` without a present ankle.
pub fn ankle_point(pose: &Pose) -> Option<(f32, f32)> {
    ANKLE_POINTS
        .iter()
        .map(|&i| pose.keypoints[i])
        .filter(|k| k.is_present())
        .max_by(|a, b| a.y.total_cmp(&b.y))
        .map(|k| (k.x, k.y))
}

/// Body height of a frame: its ankle y minus the smallest y of its present keypoints.
pub fn body_height(pose: &Pose) -> Option<f32> {
    let (_, a) = ankle_point(pose)?;
    pose.bounds().map(|b| a - b.y_min)
}

/// Ankle statistics of one video (Everybody Dance Now).
///
/// `ankle_min`/`ankle_max`: smallest (farthest) and largest (closest) ankle y over the frames.
/// `height_far`: the largest body height among frames whose ankle y is within `band`·(ankle_max −
/// ankle_min) of `ankle_min`; `height_close` likewise near `ankle_max`. Taking the largest height
/// in the band skips frames where the person crouches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnkleStats {
    pub ankle_min: f32,
    pub ankle_max: f32,
    pub height_far: f32,
    pub height_close: f32,
}

impl AnkleStats {
    /// Statistics over the frames with a present ankle; an error when there is none, when `band`
    /// is not in [0, 1], or when a far/close height is not positive (nothing above the ankles).
    pub fn from_poses(poses: &[Pose], band: f32) -> Result<Self> {
        const OP: &str = "AnkleStats";
        if !(0.0..=1.0).contains(&band) {
            return Err(Error::invalid(
                OP,
                format!("band must be in [0, 1], got {band}"),
            ));
        }
        let frames: Vec<(f32, f32)> = poses
            .iter()
            .filter_map(|p| Some((ankle_point(p)?.1, body_height(p)?)))
            .collect();
        if frames.is_empty() {
            return Err(Error::invalid(
                OP,
                format!("no ankle keypoint in any of {} frames", poses.len()),
            ));
        }
        let ankle_min = frames.iter().map(|f| f.0).fold(f32::INFINITY, f32::min);
        let ankle_max = frames.iter().map(|f| f.0).fold(f32::NEG_INFINITY, f32::max);
        let tol = band * (ankle_max - ankle_min);
        let tallest_near = |a0: f32| -> f32 {
            frames
                .iter()
                .filter(|f| (f.0 - a0).abs() <= tol)
                .map(|f| f.1)
                .fold(0.0, f32::max)
        };
        let (height_far, height_close) = (tallest_near(ankle_min), tallest_near(ankle_max));
        if height_far <= 0.0 || height_close <= 0.0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "body height is 0 at the far or close ankle position \
                     (far {height_far}, close {height_close})"
                ),
            ));
        }
        Ok(AnkleStats {
            ankle_min,
            ankle_max,
            height_far,
            height_close,
        })
    }
}

/// Everybody Dance Now normalisation with the statistics of both videos.
///
/// For a source frame with ankle point (a_x, a): r = (a − s.ankle_min)/(s.ankle_max − s.ankle_min)
/// (r = 1/2 when the source range is 0); the new ankle y is
/// N = t.ankle_min + r·(t.ankle_max − t.ankle_min); the scale is
/// σ = c_far + clamp(r, 0, 1)·(c_close − c_far) with c_far = t.height_far / s.height_far and
/// c_close = t.height_close / s.height_close. Every present point moves to
/// (a_x + σ·(x − a_x), N + σ·(y − a)): the body is scaled about its ankle, which lands at height N.
/// A frame without an ankle reuses the previous frame's map (identity before the first one).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnkleNormalization {
    pub source: AnkleStats,
    pub target: AnkleStats,
}

/// One frame's affine map: scale `scale` about (ax, ay), then move ay to `new_y`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnkleMap {
    pub ax: f32,
    pub ay: f32,
    pub new_y: f32,
    pub scale: f32,
}

impl AnkleMap {
    pub const IDENTITY: AnkleMap = AnkleMap {
        ax: 0.0,
        ay: 0.0,
        new_y: 0.0,
        scale: 1.0,
    };

    pub fn apply(&self, pose: &Pose) -> Pose {
        pose.map_present(|x, y| {
            (
                self.ax + self.scale * (x - self.ax),
                self.new_y + self.scale * (y - self.ay),
            )
        })
    }
}

impl AnkleNormalization {
    /// The map for a frame whose ankle point is (ax, a).
    pub fn frame_map(&self, ax: f32, a: f32) -> AnkleMap {
        let (s, t) = (&self.source, &self.target);
        let span = s.ankle_max - s.ankle_min;
        let r = if span == 0.0 {
            0.5
        } else {
            (a - s.ankle_min) / span
        };
        let new_y = t.ankle_min + r * (t.ankle_max - t.ankle_min);
        let c_far = t.height_far / s.height_far;
        let c_close = t.height_close / s.height_close;
        let scale = c_far + r.clamp(0.0, 1.0) * (c_close - c_far);
        AnkleMap {
            ax,
            ay: a,
            new_y,
            scale,
        }
    }

    pub fn apply(&self, poses: &[Pose]) -> Vec<Pose> {
        let mut map = AnkleMap::IDENTITY;
        poses
            .iter()
            .map(|p| {
                if let Some((ax, a)) = ankle_point(p) {
                    map = self.frame_map(ax, a);
                }
                map.apply(p)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::keypoints::{Keypoint, L_ANKLE, L_EYE, NECK, NOSE, R_ANKLE, R_EAR};

    fn pose_with(points: &[(usize, f32, f32)]) -> Pose {
        let mut p = Pose::missing();
        for &(i, x, y) in points {
            p.keypoints[i] = Keypoint::new(x, y, 1.0);
        }
        p
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * (1.0 + b.abs())
    }

    #[test]
    fn head_y_averages_present_head_points() {
        let p = pose_with(&[
            (NOSE, 0.0, 10.0),
            (L_EYE, 0.0, 8.0),
            (R_EAR, 0.0, 9.0),
            (NECK, 0.0, 30.0),
        ]);
        assert_eq!(head_y(&p), Some(9.0));
        assert_eq!(head_y(&pose_with(&[(NECK, 0.0, 30.0)])), None);
    }

    #[test]
    fn eq1_matches_hand_computed_values() {
        // Source heads 40..80, target heads 100..120.
        let src: Vec<Pose> = [60.0, 40.0, 80.0]
            .iter()
            .map(|&y| pose_with(&[(NOSE, 5.0, y)]))
            .collect();
        let tgt: Vec<Pose> = [100.0, 120.0]
            .iter()
            .map(|&y| pose_with(&[(NOSE, 5.0, y)]))
            .collect();
        let s = HeadStats::from_poses(&src).unwrap();
        let t = HeadStats::from_poses(&tgt).unwrap();
        assert_eq!(
            s,
            HeadStats {
                min: 40.0,
                max: 80.0
            }
        );
        // L = 60: N = 100 + (60-40)/(80-40)·20 = 110.
        assert_eq!(eq1(60.0, &s, &t), 110.0);
        assert_eq!(eq1(40.0, &s, &t), 100.0);
        assert_eq!(eq1(70.0, &s, &t), 115.0);
        // Every present point of the frame moves by N − L = 110 − 60 = +50, x untouched.
        let frame = pose_with(&[(NOSE, 5.0, 60.0), (NECK, 7.0, 90.0), (R_ANKLE, 9.0, 200.0)]);
        let n = HeadNormalization {
            source: s,
            target: t,
        }
        .apply(&[frame]);
        assert_eq!(n[0].keypoints[NOSE], Keypoint::new(5.0, 110.0, 1.0));
        assert_eq!(n[0].keypoints[NECK], Keypoint::new(7.0, 140.0, 1.0));
        assert_eq!(n[0].keypoints[R_ANKLE], Keypoint::new(9.0, 250.0, 1.0));
        assert_eq!(n[0].keypoints[L_ANKLE], Keypoint::MISSING);
    }

    #[test]
    fn eq1_guards_a_constant_source_head() {
        let s = HeadStats {
            min: 50.0,
            max: 50.0,
        };
        let t = HeadStats {
            min: 100.0,
            max: 130.0,
        };
        assert_eq!(eq1(50.0, &s, &t), 115.0);
        let out = HeadNormalization {
            source: s,
            target: t,
        }
        .apply(&[pose_with(&[(NOSE, 1.0, 50.0)])]);
        assert_eq!(out[0].keypoints[NOSE].y, 115.0);
    }

    #[test]
    fn frames_without_head_reuse_the_previous_shift() {
        let s = HeadStats {
            min: 0.0,
            max: 10.0,
        };
        let t = HeadStats {
            min: 0.0,
            max: 20.0,
        };
        let headless = pose_with(&[(NECK, 0.0, 30.0)]);
        let with_head = pose_with(&[(NOSE, 0.0, 5.0)]); // N = 10, shift +5
        let out = HeadNormalization {
            source: s,
            target: t,
        }
        .apply(&[headless, with_head, headless]);
        assert_eq!(out[0].keypoints[NECK].y, 30.0); // no shift yet
        assert_eq!(out[1].keypoints[NOSE].y, 10.0);
        assert_eq!(out[2].keypoints[NECK].y, 35.0);
        assert!(HeadStats::from_poses(&[headless]).is_err());
    }

    #[test]
    fn ankle_stats_and_map_match_hand_computed_values() {
        // Source: far frame ankle 100, head 60 (height 40); close frame ankle 200, head 120 (80).
        let far = pose_with(&[
            (NOSE, 10.0, 60.0),
            (R_ANKLE, 10.0, 100.0),
            (L_ANKLE, 12.0, 98.0),
        ]);
        let close_p = pose_with(&[(NOSE, 10.0, 120.0), (L_ANKLE, 14.0, 200.0)]);
        let crouch = pose_with(&[(NOSE, 10.0, 190.0), (L_ANKLE, 14.0, 199.0)]);
        let s = AnkleStats::from_poses(&[far, close_p, crouch], 0.1).unwrap();
        assert_eq!(
            s,
            AnkleStats {
                ankle_min: 100.0,
                ankle_max: 200.0,
                height_far: 40.0,
                height_close: 80.0
            }
        );
        // Target: ankles 150..250, heights 20 (far) and 100 (close).
        let t = AnkleStats {
            ankle_min: 150.0,
            ankle_max: 250.0,
            height_far: 20.0,
            height_close: 100.0,
        };
        let norm = AnkleNormalization {
            source: s,
            target: t,
        };
        // Frame with ankle (10, 150): r = 0.5, N = 200, σ = 0.5 + 0.5·(1.25 − 0.5) = 0.875.
        let frame = pose_with(&[(NOSE, 30.0, 110.0), (R_ANKLE, 10.0, 150.0)]);
        let m = norm.frame_map(10.0, 150.0);
        assert!(close(m.new_y, 200.0) && close(m.scale, 0.875), "{m:?}");
        let out = norm.apply(&[frame]);
        assert!(close(out[0].keypoints[R_ANKLE].y, 200.0));
        assert!(close(out[0].keypoints[R_ANKLE].x, 10.0));
        assert!(close(out[0].keypoints[NOSE].y, 200.0 - 0.875 * 40.0));
        assert!(close(out[0].keypoints[NOSE].x, 10.0 + 0.875 * 20.0));
        // A frame without ankle reuses the previous map; before any ankle, identity.
        let no_ankle = pose_with(&[(NOSE, 30.0, 110.0)]);
        let out = norm.apply(&[no_ankle, frame, no_ankle]);
        assert_eq!(out[0], no_ankle);
        assert!(close(out[2].keypoints[NOSE].y, out[1].keypoints[NOSE].y));
    }

    #[test]
    fn ankle_guards_and_errors() {
        let p = pose_with(&[(NOSE, 0.0, 10.0), (R_ANKLE, 0.0, 50.0)]);
        let s = AnkleStats::from_poses(&[p, p], 0.1).unwrap();
        let norm = AnkleNormalization {
            source: s,
            target: s,
        };
        let m = norm.frame_map(0.0, 50.0);
        assert_eq!((m.new_y, m.scale), (50.0, 1.0)); // zero range: r = 1/2 of a zero target range
        assert!(AnkleStats::from_poses(&[pose_with(&[(NOSE, 0.0, 1.0)])], 0.1).is_err());
        assert!(AnkleStats::from_poses(&[pose_with(&[(R_ANKLE, 0.0, 1.0)])], 0.1).is_err());
        assert!(AnkleStats::from_poses(&[p], 1.5).is_err());
    }

    #[test]
    fn fitted_normalisation_serialises() {
        let src: Vec<Pose> = [40.0, 80.0]
            .iter()
            .map(|&y| pose_with(&[(NOSE, 0.0, y), (R_ANKLE, 0.0, y + 100.0)]))
            .collect();
        for kind in [
            NormalizationKind::None,
            NormalizationKind::Head,
            NormalizationKind::Ankle,
        ] {
            let n = Normalization::fit(kind, &src, &src).unwrap();
            let text = serde_json::to_string(&n).unwrap();
            let back: Normalization = serde_json::from_str(&text).unwrap();
            assert_eq!(back, n);
            // Normalising a video onto itself changes nothing.
            for (a, b) in n.apply(&src).iter().zip(&src) {
                for (ka, kb) in a.keypoints.iter().zip(&b.keypoints) {
                    assert!(close(ka.x, kb.x) && close(ka.y, kb.y), "{kind:?}");
                }
            }
        }
    }
}

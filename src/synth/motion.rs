//! Smooth, dance-like motion from a seed: every joint angle is a base value plus a sum of three
//! sinusoids at multiples of a random tempo, and the whole body sways, bounces on the beat and
//! drifts slowly. Everything is a smooth function of time, so any frame can be computed alone.

use std::f32::consts::TAU;

use super::skeleton::JointAngles;

/// A small deterministic generator (SplitMix64), so a seed gives the same figure everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform index below `n` (n > 0).
    pub fn index(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One animated value: `base + amp · Σ wₖ sin(2π fₖ t + φₖ)` with Σ wₖ = 1, so it stays within
/// base ± amp.
#[derive(Clone, Debug)]
struct Channel {
    base: f32,
    amp: f32,
    terms: [(f32, f32, f32); 3],
}

impl Channel {
    fn new(rng: &mut Rng, beat_hz: f32, base: f32, amp: f32) -> Channel {
        // Multiples of the beat frequency keep limbs roughly in time with each other.
        const MULTIPLES: [f32; 5] = [0.25, 0.5, 0.5, 1.0, 1.0];
        let mut terms = [(0.0, 0.0, 0.0); 3];
        let mut total = 0.0;
        for t in terms.iter_mut() {
            let f = beat_hz * MULTIPLES[rng.index(MULTIPLES.len())] * rng.range(0.9, 1.1);
            let w = rng.range(0.2, 1.0);
            *t = (f, rng.range(0.0, TAU), w);
            total += w;
        }
        for t in terms.iter_mut() {
            t.2 /= total;
        }
        Channel { base, amp, terms }
    }

    fn at(&self, t: f32) -> f32 {
        let s: f32 = self
            .terms
            .iter()
            .map(|&(f, ph, w)| w * (TAU * f * t + ph).sin())
            .sum();
        self.base + self.amp * s
    }
}

/// The figure's state at one instant: its joint angles and its displacement from its home
/// position, in units of standing height (x right, y down).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionState {
    pub angles: JointAngles,
    pub shift: (f32, f32),
}

/// A seeded dance.
#[derive(Clone, Debug)]
pub struct Motion {
    beat_hz: f32,
    lean: Channel,
    head: Channel,
    shoulder: [Channel; 2],
    elbow: [Channel; 2],
    hip: [Channel; 2],
    knee: [Channel; 2],
    sway: f32,
    bounce: f32,
    drift: [(f32, f32, f32); 2],
}

impl Motion {
    pub fn new(seed: u64) -> Motion {
        let mut rng = Rng::new(seed);
        // 90–130 beats per minute.
        let beat_hz = rng.range(1.5, 2.17);
        let mut ch = |base: f32, amp: f32| Channel::new(&mut rng, beat_hz, base, amp);
        let lean = ch(0.0, 0.15);
        let head = ch(0.0, 0.25);
        // Arms: from near the body up to above the shoulder; elbows bend but never hyperextend.
        let shoulder = [ch(0.9, 0.9), ch(0.9, 0.9)];
        let elbow = [ch(0.7, 0.6), ch(0.7, 0.6)];
        let hip = [ch(0.15, 0.15), ch(0.15, 0.15)];
        let knee = [ch(0.3, 0.3), ch(0.3, 0.3)];
        let sway = rng.range(0.02, 0.05);
        let bounce = rng.range(0.01, 0.03);
        let mut slow = || {
            (
                rng.range(0.03, 0.08),
                rng.range(0.0, TAU),
                rng.range(0.04, 0.1),
            )
        };
        let drift = [slow(), slow()];
        Motion {
            beat_hz,
            lean,
            head,
            shoulder,
            elbow,
            hip,
            knee,
            sway,
            bounce,
            drift,
        }
    }

    /// Beats per second of this dance.
    pub fn beat_hz(&self) -> f32 {
        self.beat_hz
    }

    /// The state at time `t` seconds.
    pub fn at(&self, t: f32) -> MotionState {
        let pair = |c: &[Channel; 2]| [c[0].at(t), c[1].at(t)];
        let angles = JointAngles {
            lean: self.lean.at(t),
            head_tilt: self.head.at(t),
            shoulder: pair(&self.shoulder),
            elbow: pair(&self.elbow),
            hip: pair(&self.hip),
            knee: pair(&self.knee),
        };
        let beat = TAU * self.beat_hz * t;
        let drift = |(f, ph, a): (f32, f32, f32)| a * (TAU * f * t + ph).sin();
        // Sway on every other beat; bounce up once per beat (|sin| peaks each beat).
        let dx = self.sway * (beat / 2.0).sin() + drift(self.drift[0]);
        let dy = -self.bounce * (beat / 2.0).sin().abs() + 0.3 * drift(self.drift[1]);
        MotionState {
            angles,
            shift: (dx, dy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_motion_other_seed_differs() {
        let (a, b, c) = (Motion::new(7), Motion::new(7), Motion::new(8));
        for i in 0..20 {
            let t = i as f32 / 30.0;
            assert_eq!(a.at(t), b.at(t));
        }
        assert_ne!(a.at(0.5), c.at(0.5));
    }

    #[test]
    fn motion_is_smooth_and_bounded() {
        let m = Motion::new(3);
        let dt = 1.0 / 30.0;
        let mut prev = m.at(0.0);
        for i in 1..300 {
            let s = m.at(i as f32 * dt);
            let a = s.angles;
            // Between consecutive frames no angle jumps more than a smooth dance allows.
            let pairs = [
                (a.lean, prev.angles.lean),
                (a.shoulder[0], prev.angles.shoulder[0]),
                (a.elbow[1], prev.angles.elbow[1]),
                (a.knee[0], prev.angles.knee[0]),
            ];
            for (x, y) in pairs {
                assert!((x - y).abs() < 0.5, "step {i}: {x} vs {y}");
            }
            assert!(a.knee.iter().all(|&k| (-1e-4..=0.6001).contains(&k)));
            assert!(a.shoulder.iter().all(|&k| (-1e-4..=1.8001).contains(&k)));
            assert!(s.shift.0.abs() < 0.2 && s.shift.1.abs() < 0.1);
            prev = s;
        }
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = Rng::new(1);
        let n = 10_000;
        let mean: f32 = (0..n).map(|_| r.unit()).sum::<f32>() / n as f32;
        assert!((mean - 0.5).abs() < 0.02);
        assert!((0..100).all(|_| r.index(5) < 5));
    }
}

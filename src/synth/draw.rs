//! Rasterising the figure into an RGB frame: a textured background (vertical gradient, checks,
//! a striped floor), limbs as antialiased capsules striped or checked along their length, a
//! torso, and a head with hair, ears, eyes, nose and mouth placed on the pose's head keypoints.
//!
//! Pixel (row r, column c) has its centre at (x, y) = (c, r), as the keypoints do.

use rayon::prelude::*;

use super::motion::Rng;
use super::skeleton::Figure;
use crate::error::Result;
use crate::pose::keypoints::{
    L_ANKLE, L_EAR, L_ELBOW, L_EYE, L_HIP, L_KNEE, L_SHOULDER, L_WRIST, NECK, NOSE, R_ANKLE, R_EAR,
    R_ELBOW, R_EYE, R_HIP, R_KNEE, R_SHOULDER, R_WRIST,
};
use crate::video::Frame;

type Rgb = [u8; 3];
type Pt = (f32, f32);

/// The colours of one figure and its background, chosen from a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Palette {
    pub sky: [Rgb; 2],
    pub floor: Rgb,
    pub skin: Rgb,
    pub hair: Rgb,
    pub shirt: [Rgb; 2],
    pub pants: [Rgb; 2],
}

// Muted cool backgrounds and warm or saturated clothes, so the figure always stands out.
const SKIES: [[Rgb; 2]; 4] = [
    [[110, 150, 190], [170, 195, 215]],
    [[95, 125, 120], [150, 175, 160]],
    [[120, 115, 150], [175, 170, 195]],
    [[90, 110, 140], [140, 160, 185]],
];
const FLOORS: [Rgb; 3] = [[120, 105, 90], [100, 100, 105], [125, 120, 100]];
const SKINS: [Rgb; 4] = [
    [235, 195, 160],
    [200, 150, 110],
    [150, 100, 65],
    [245, 210, 180],
];
const HAIRS: [Rgb; 3] = [[40, 30, 25], [110, 70, 30], [20, 20, 20]];
const SHIRTS: [[Rgb; 2]; 4] = [
    [[220, 40, 40], [250, 220, 60]],
    [[240, 120, 20], [40, 40, 160]],
    [[200, 30, 140], [250, 250, 250]],
    [[30, 170, 60], [250, 240, 90]],
];
const PANTS: [[Rgb; 2]; 3] = [
    [[30, 30, 80], [230, 230, 240]],
    [[60, 30, 20], [240, 170, 40]],
    [[20, 20, 20], [220, 40, 40]],
];

impl Palette {
    pub fn from_seed(seed: u64) -> Palette {
        let mut r = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE);
        Palette {
            sky: SKIES[r.index(SKIES.len())],
            floor: FLOORS[r.index(FLOORS.len())],
            skin: SKINS[r.index(SKINS.len())],
            hair: HAIRS[r.index(HAIRS.len())],
            shirt: SHIRTS[r.index(SHIRTS.len())],
            pants: PANTS[r.index(PANTS.len())],
        }
    }
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let m = |x: u8, y: u8| {
        (x as f32 + (y as f32 - x as f32) * t)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    [m(a[0], b[0]), m(a[1], b[1]), m(a[2], b[2])]
}

fn shade(c: Rgb, k: f32) -> Rgb {
    let m = |x: u8| (x as f32 * k).round().clamp(0.0, 255.0) as u8;
    [m(c[0]), m(c[1]), m(c[2])]
}

/// The background alone: a sky gradient with faint checks above a striped floor (the lowest
/// fifth of the frame). Rows are filled in parallel.
pub fn background(width: u32, height: u32, palette: &Palette) -> Result<Frame> {
    let mut frame = Frame::filled(width, height, [0, 0, 0])?;
    let (w, h) = (width as usize, height as usize);
    let horizon = h * 4 / 5;
    let cell = (h / 12).max(4);
    let stripe = (h / 24).max(2);
    frame
        .data_mut()
        .par_chunks_mut(w * 3)
        .enumerate()
        .for_each(|(y, row)| {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let c = if y < horizon {
                    let g = mix(palette.sky[0], palette.sky[1], y as f32 / horizon as f32);
                    let check = (x / cell + y / cell) % 2 == 0;
                    shade(g, if check { 1.06 } else { 0.94 })
                } else {
                    // Diagonal floor boards, darker towards the camera.
                    let depth = (y - horizon) as f32 / (h - horizon).max(1) as f32;
                    let board = ((x + 2 * y) / (2 * stripe)) % 2 == 0;
                    shade(
                        palette.floor,
                        (if board { 1.08 } else { 0.92 }) * (1.0 - 0.2 * depth),
                    )
                };
                px.copy_from_slice(&c);
            }
        });
    Ok(frame)
}

/// Blends `colour(x, y, d)` over the pixels within `radius` of segment a–b, with antialiased
/// edges; the colour function gets the position along (0..1) and across (−1..1) the segment.
fn capsule(frame: &mut Frame, a: Pt, b: Pt, radius: f32, colour: &dyn Fn(f32, f32) -> Rgb) {
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    let pad = radius + 1.0;
    let x0 = (a.0.min(b.0) - pad).floor().max(0.0) as i64;
    let x1 = ((a.0.max(b.0) + pad).ceil() as i64).min(w - 1);
    let y0 = (a.1.min(b.1) - pad).floor().max(0.0) as i64;
    let y1 = ((a.1.max(b.1) + pad).ceil() as i64).min(h - 1);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let len = len2.sqrt();
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (px, py) = (x as f32 - a.0, y as f32 - a.1);
            let t = if len2 > 0.0 {
                ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - t * dx, py - t * dy);
            let d = (ex * ex + ey * ey).sqrt();
            let cover = (radius + 0.5 - d).clamp(0.0, 1.0);
            if cover <= 0.0 {
                continue;
            }
            // Signed distance across the segment, as a fraction of the radius.
            let side = if len > 0.0 {
                (px * dy - py * dx) / len
            } else {
                ex
            };
            let across = (side / radius.max(1e-3)).clamp(-1.0, 1.0);
            let c = colour(t, across);
            let (ux, uy) = (x as u32, y as u32);
            if let Some(old) = frame.pixel(ux, uy) {
                frame.set_pixel(ux, uy, mix(old, c, cover));
            }
        }
    }
}

fn disk(frame: &mut Frame, c: Pt, radius: f32, rgb: Rgb) {
    capsule(frame, c, c, radius, &|_, _| rgb);
}

/// Bands along a limb of `len` pixels, `band` pixels long, alternating two colours; with
/// `checks`, the limb is also split lengthwise so the bands form a checkerboard. Shaded
/// towards the edges so it reads as round.
fn limb_texture(len: f32, band: f32, cols: [Rgb; 2], checks: bool) -> impl Fn(f32, f32) -> Rgb {
    move |t, across| {
        let mut k = (t * len / band).floor() as i64;
        if checks && across > 0.0 {
            k += 1;
        }
        shade(cols[k.rem_euclid(2) as usize], 1.0 - 0.3 * across * across)
    }
}

fn dist(a: Pt, b: Pt) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

fn mid(a: Pt, b: Pt) -> Pt {
    (0.5 * (a.0 + b.0), 0.5 * (a.1 + b.1))
}

/// Draws `fig` over `frame`: legs, torso, arms, then the head so the face is always visible.
pub fn draw_figure(frame: &mut Frame, fig: &Figure, pal: &Palette) {
    let p = &fig.points;
    let lw = (fig.limb_width / 2.0).max(1.0);
    let band = (fig.limb_width * 0.9).max(2.0);
    let bone = |frame: &mut Frame, i: usize, j: usize, r: f32, cols: [Rgb; 2], checks: bool| {
        let tex = limb_texture(dist(p[i], p[j]), band, cols, checks);
        capsule(frame, p[i], p[j], r, &tex);
    };
    // Legs: checked trousers, shoes at the ankles.
    for (hip, knee, ankle) in [(R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)] {
        bone(frame, hip, knee, lw * 1.15, pal.pants, true);
        bone(frame, knee, ankle, lw, pal.pants, true);
        disk(frame, p[ankle], lw * 1.2, pal.hair);
    }
    // Torso: hips bar, a wide striped trunk, shoulders bar.
    let hips = mid(p[R_HIP], p[L_HIP]);
    bone(frame, R_HIP, L_HIP, lw * 1.2, pal.pants, false);
    let trunk = limb_texture(dist(p[NECK], hips), band, pal.shirt, false);
    capsule(frame, p[NECK], hips, fig.torso_half_width, &trunk);
    bone(frame, R_SHOULDER, L_SHOULDER, lw * 1.1, pal.shirt, false);
    // Neck in skin, under the head.
    let skin2 = [pal.skin, shade(pal.skin, 0.9)];
    capsule(frame, p[NECK], fig.head_centre, lw * 0.9, &|_, a| {
        shade(pal.skin, 1.0 - 0.2 * a * a)
    });
    // Arms: striped sleeves, bare forearms with a bracelet stripe, hands.
    for (sh, el, wr) in [
        (R_SHOULDER, R_ELBOW, R_WRIST),
        (L_SHOULDER, L_ELBOW, L_WRIST),
    ] {
        bone(frame, sh, el, lw, pal.shirt, false);
        bone(frame, el, wr, lw * 0.85, skin2, false);
        disk(frame, p[wr], lw * 1.1, pal.skin);
    }
    draw_head(frame, fig, pal);
}

/// The head disk with hair on top, then ears, eyes, nose and mouth. Ears, eyes and nose are
/// centred exactly on their keypoints.
fn draw_head(frame: &mut Frame, fig: &Figure, pal: &Palette) {
    let p = &fig.points;
    let r = fig.head_radius;
    let ear_r = (0.22 * r).max(1.0);
    for ear in [R_EAR, L_EAR] {
        disk(frame, p[ear], ear_r, shade(pal.skin, 0.85));
    }
    let c = fig.head_centre;
    let hair = pal.hair;
    let skin = pal.skin;
    capsule(frame, c, c, r, &|_, _| skin);
    // Hair: a disk pushed up the face, covering the crown down to above the eyes.
    let fringe = fig.face_point(0.85, 0.0);
    capsule(frame, fringe, fringe, 0.55 * r, &|_, _| hair);
    for ear in [R_EAR, L_EAR] {
        disk(frame, p[ear], (0.5 * ear_r).max(0.75), shade(skin, 0.7));
    }
    for eye in [R_EYE, L_EYE] {
        disk(frame, p[eye], (0.17 * r).max(0.9), [250, 250, 250]);
        disk(frame, p[eye], (0.09 * r).max(0.6), [25, 25, 40]);
    }
    disk(frame, p[NOSE], (0.09 * r).max(0.7), shade(skin, 0.7));
    let m0 = fig.face_point(-0.5, -0.28);
    let m1 = fig.face_point(-0.5, 0.28);
    capsule(frame, m0, m1, (0.07 * r).max(0.6), &|_, _| [150, 30, 40]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::skeleton::{forward, JointAngles, Proportions};

    #[test]
    fn background_is_deterministic_and_textured() {
        let pal = Palette::from_seed(5);
        assert_eq!(pal, Palette::from_seed(5));
        let a = background(64, 48, &pal).unwrap();
        assert_eq!(a, background(64, 48, &pal).unwrap());
        // Not flat: several distinct colours in the top row and the floor differs from the sky.
        let row: Vec<Rgb> = (0..64).map(|x| a.pixel(x, 0).unwrap()).collect();
        assert!(row.iter().any(|c| *c != row[0]));
        assert_ne!(a.pixel(0, 0), a.pixel(0, 47));
        assert!(background(0, 4, &pal).is_err());
    }

    #[test]
    fn figure_pixels_cover_keypoints_and_capsule_is_antialiased() {
        let pal = Palette::from_seed(1);
        let bg = background(96, 96, &pal).unwrap();
        let fig = forward(
            &Proportions::default(),
            &JointAngles::default(),
            (48.0, 50.0),
            80.0,
        );
        let mut f = bg.clone();
        draw_figure(&mut f, &fig, &pal);
        for (k, &(x, y)) in fig.points.iter().enumerate() {
            let (xi, yi) = (x.round() as u32, y.round() as u32);
            let (a, b) = (f.pixel(xi, yi).unwrap(), bg.pixel(xi, yi).unwrap());
            let diff: i32 = (0..3).map(|i| (a[i] as i32 - b[i] as i32).abs()).sum();
            assert!(diff > 30, "keypoint {k} at ({x}, {y}): {a:?} vs {b:?}");
        }
        // A capsule edge pixel is a blend of the two colours.
        let mut g = Frame::filled(20, 20, [0, 0, 0]).unwrap();
        disk(&mut g, (10.0, 10.0), 3.3, [200, 200, 200]);
        assert_eq!(g.pixel(10, 10), Some([200, 200, 200]));
        let edge = g.pixel(14, 10).unwrap()[0]; // distance 4: coverage 3.3 + 0.5 − 4 < 0
        assert_eq!(edge, 0);
        let part = g.pixel(13, 10).unwrap()[0]; // distance 3: coverage 0.8
        assert_eq!(part, 160);
        // Shapes partly outside the frame are clipped, not a panic.
        disk(&mut g, (-5.0, 25.0), 8.0, [1, 2, 3]);
    }
}

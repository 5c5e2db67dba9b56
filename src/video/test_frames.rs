//! Test helpers: procedural frames (coloured squares moving over a gradient), PSNR, and a
//! self-deleting temporary folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::frame::Frame;

/// `n` frames of `w`×`h`: a smooth gradient background and two soft-edged squares (a red one
/// moving right, a blue one moving down) so consecutive frames differ and edges are not
/// razor-sharp (smooth content, as the codec tests expect).
pub fn moving_squares(w: u32, h: u32, n: usize) -> Vec<Frame> {
    (0..n).map(|i| moving_squares_frame(w, h, i)).collect()
}

pub fn moving_squares_frame(w: u32, h: u32, i: usize) -> Frame {
    let side = (w.min(h) as f32 / 4.0).max(2.0);
    let t = i as f32;
    let squares = [
        (3.0 * t % w as f32, h as f32 * 0.3, [220.0, 40.0, 40.0]),
        (w as f32 * 0.55, 2.0 * t % h as f32, [40.0, 60.0, 210.0]),
    ];
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let mut px = [
                60.0 + 120.0 * fx / w as f32,
                80.0 + 100.0 * fy / h as f32,
                120.0 + 0.3 * t,
            ];
            for (sx, sy, colour) in squares {
                // Coverage ramps over ~3 px at the square's border.
                let dx = (fx - sx).min(sx + side - fx);
                let dy = (fy - sy).min(sy + side - fy);
                let a = ((dx.min(dy) + 1.5) / 3.0).clamp(0.0, 1.0);
                for c in 0..3 {
                    px[c] = px[c] * (1.0 - a) + colour[c] * a;
                }
            }
            data.extend(px.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    Frame::new(w, h, data).expect("test frame size")
}

/// Peak signal-to-noise ratio in dB over all channels (infinite for identical frames).
pub fn psnr(a: &Frame, b: &Frame) -> f64 {
    assert_eq!(a.size(), b.size(), "psnr of frames of different sizes");
    let se: f64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let mse = se / a.data().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// A fresh folder under the system temp dir, deleted with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("engine_video_{tag}_{}_{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! The loss log of a run: `losses.csv` in long form (`iteration,stage,term,value`, one row per
//! term, so stages with different terms share one file) and `losses.png`, one small panel per term
//! with the raw values in grey and a running mean in colour.
//!
//! On resume the log is cut back to the checkpoint's iteration, so it never holds iterations whose
//! parameters were lost.

use super::glyphs::{draw_text, text_width};
use crate::error::{Error, Result};
use crate::video::{write_png_atomic, Frame};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: &str = "iteration,stage,term,value";

/// One logged value.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub iteration: u64,
    pub stage: String,
    pub term: String,
    pub value: f32,
}

pub struct LossLog {
    path: PathBuf,
    rows: Vec<Row>,
}

fn parse_rows(path: &Path, text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(Error::file(
            path,
            format!("not a loss log (expected the header `{HEADER}`)"),
        ));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let bad = || Error::file(path, format!("line {}: cannot parse `{line}`", n + 2));
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 4 {
            return Err(bad());
        }
        rows.push(Row {
            iteration: f[0].parse().map_err(|_| bad())?,
            stage: f[1].to_string(),
            term: f[2].to_string(),
            value: f[3].parse().map_err(|_| bad())?,
        });
    }
    Ok(rows)
}

impl LossLog {
    /// Starts a new log at `path` (replacing any file there: the caller decides when that is
    /// allowed), or, with `resume_at`, keeps the rows up to that iteration.
    pub fn open(path: &Path, resume_at: Option<u64>) -> Result<LossLog> {
        let rows = match resume_at {
            Some(iter) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(Error::io_at(path))?;
                let mut rows = parse_rows(path, &text)?;
                rows.retain(|r| r.iteration <= iter);
                rows
            }
            _ => Vec::new(),
        };
        let log = LossLog {
            path: path.to_path_buf(),
            rows,
        };
        log.rewrite()?;
        Ok(log)
    }

    fn rewrite(&self) -> Result<()> {
        let mut text = String::with_capacity(32 * (self.rows.len() + 1));
        text.push_str(HEADER);
        text.push('\n');
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{},{}\n",
                r.iteration, r.stage, r.term, r.value
            ));
        }
        let tmp = self.path.with_extension("csv.partial");
        std::fs::write(&tmp, text).map_err(Error::io_at(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(Error::io_at(&self.path))
    }

    /// Appends the terms of one iteration to the file and the history.
    pub fn append(&mut self, iteration: u64, stage: &str, terms: &[(&str, f32)]) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(Error::io_at(&self.path))?;
        let mut text = String::new();
        for (term, value) in terms {
            text.push_str(&format!("{iteration},{stage},{term},{value}\n"));
            self.rows.push(Row {
                iteration,
                stage: stage.to_string(),
                term: term.to_string(),
                value: *value,
            });
        }
        file.write_all(text.as_bytes())
            .map_err(Error::io_at(&self.path))
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Series per `stage/term`, in first-seen order.
    pub fn series(&self) -> Vec<(String, Vec<(u64, f32)>)> {
        let mut order = Vec::new();
        let mut map: BTreeMap<String, Vec<(u64, f32)>> = BTreeMap::new();
        for r in &self.rows {
            let key = format!("{}/{}", r.stage, r.term);
            if !map.contains_key(&key) {
                order.push(key.clone());
            }
            map.entry(key).or_default().push((r.iteration, r.value));
        }
        order
            .into_iter()
            .map(|k| {
                let v = map.remove(&k).unwrap_or_default();
                (k, v)
            })
            .collect()
    }

    /// Writes the loss-curve PNG (atomically).
    pub fn plot(&self, path: &Path) -> Result<()> {
        let series = self.series();
        if series.is_empty() {
            return Ok(());
        }
        write_png_atomic(path, &plot_panels(&series)?)
    }
}

const PANEL_W: u32 = 260;
const PANEL_H: u32 = 150;
const COLUMNS: u32 = 4;

/// Draws one panel per series into a grid.
fn plot_panels(series: &[(String, Vec<(u64, f32)>)]) -> Result<Frame> {
    let n = series.len() as u32;
    let cols = n.min(COLUMNS);
    let rows = n.div_ceil(COLUMNS);
    let (w, h) = (cols * PANEL_W, rows * PANEL_H);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    for (k, (name, points)) in series.iter().enumerate() {
        let ox = (k as u32 % COLUMNS) * PANEL_W;
        let oy = (k as u32 / COLUMNS) * PANEL_H;
        draw_panel(&mut buf, w, h, (ox, oy), name, points);
    }
    Frame::new(w, h, buf)
}

fn draw_panel(
    buf: &mut [u8],
    w: u32,
    h: u32,
    (ox, oy): (u32, u32),
    name: &str,
    pts: &[(u64, f32)],
) {
    let finite: Vec<(u64, f32)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
    let last = pts.last().map(|p| p.1).unwrap_or(f32::NAN);
    let title = format!("{name} {last:.4}");
    draw_text(
        buf,
        w,
        h,
        (ox as i64 + 6, oy as i64 + 4),
        &title,
        1,
        [0, 0, 0],
    );
    let (left, top, pw, ph) = (ox + 6, oy + 14, PANEL_W - 12, PANEL_H - 30);
    // Frame.
    for x in left..left + pw {
        put(buf, w, h, x, top, [200; 3]);
        put(buf, w, h, x, top + ph, [200; 3]);
    }
    for y in top..=top + ph {
        put(buf, w, h, left, y, [200; 3]);
        put(buf, w, h, left + pw - 1, y, [200; 3]);
    }
    if finite.is_empty() {
        draw_text(
            buf,
            w,
            h,
            (left as i64 + 4, top as i64 + 4),
            "no finite values",
            1,
            [200, 0, 0],
        );
        return;
    }
    let (lo, hi) = finite
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (x0, x1) = (finite[0].0, finite[finite.len() - 1].0.max(finite[0].0 + 1));
    let to_px = |it: u64, v: f32| {
        let fx = (it - x0) as f32 / (x1 - x0) as f32;
        let fy = (v - lo) / span;
        (
            left + 1 + (fx * (pw - 3) as f32).round() as u32,
            top + ph - 1 - (fy * (ph - 2) as f32).round() as u32,
        )
    };
    for &(it, v) in &finite {
        let (x, y) = to_px(it, v);
        put(buf, w, h, x, y, [170; 3]);
    }
    // Running mean over ~1/20 of the points so the trend shows through GAN noise.
    let alpha = 2.0 / (finite.len() as f32 / 20.0 + 1.0).max(1.0);
    let mut mean = finite[0].1;
    let mut prev = None;
    for &(it, v) in &finite {
        mean += alpha.min(1.0) * (v - mean);
        let p = to_px(it, mean);
        if let Some(q) = prev {
            line(buf, w, h, q, p, [20, 90, 200]);
        }
        prev = Some(p);
    }
    let axis = format!("{lo:.3} .. {hi:.3}  it {x0}-{x1}");
    let ty = (top + ph + 4) as i64;
    let tx = (left + pw).saturating_sub(text_width(&axis, 1)) as i64;
    draw_text(buf, w, h, (tx.max(left as i64), ty), &axis, 1, [90; 3]);
}

fn put(buf: &mut [u8], w: u32, h: u32, x: u32, y: u32, c: [u8; 3]) {
    if x < w && y < h {
        let i = 3 * (y as usize * w as usize + x as usize);
        buf[i..i + 3].copy_from_slice(&c);
    }
}

fn line(buf: &mut [u8], w: u32, h: u32, a: (u32, u32), b: (u32, u32), c: [u8; 3]) {
    let (dx, dy) = (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64);
    let steps = dx.abs().max(dy.abs()).max(1);
    for s in 0..=steps {
        let x = a.0 as i64 + dx * s / steps;
        let y = a.1 as i64 + dy * s / steps;
        put(buf, w, h, x as u32, y as u32, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_frames::TempDir;

    #[test]
    fn append_resume_truncates_and_plots() {
        let tmp = TempDir::new("loss_log");
        let csv = tmp.path().join("losses.csv");
        let mut log = LossLog::open(&csv, None).unwrap();
        for it in 1..=10u64 {
            log.append(
                it,
                "stage1",
                &[("rec", 1.0 / it as f32), ("gan_d", f32::NAN)],
            )
            .unwrap();
        }
        let log = LossLog::open(&csv, Some(6)).unwrap();
        assert_eq!(log.rows().len(), 12);
        assert!(log.rows().iter().all(|r| r.iteration <= 6));
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().count(), 13);
        assert!(text.starts_with(HEADER));
        let series = log.series();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0, "stage1/rec");
        let png = tmp.path().join("losses.png");
        log.plot(&png).unwrap();
        let img = image::open(&png).unwrap();
        assert_eq!(img.width(), 2 * PANEL_W);
    }

    #[test]
    fn bad_log_is_an_error_naming_the_file() {
        let tmp = TempDir::new("loss_log_bad");
        let csv = tmp.path().join("losses.csv");
        std::fs::write(&csv, "hello\n").unwrap();
        let e = LossLog::open(&csv, Some(3)).err().unwrap().to_string();
        assert!(e.contains("losses.csv"), "{e}");
    }
}

//! The report of `engine eval`: per-frame scores, their mean / min / max, and the extra metrics,
//! as a text table and as JSON.
//!
//! Infinite values (PSNR of identical frames) print as "inf"; JSON has no infinity, so there the
//! value is `null` and a sibling key `<name>_infinite: true` says why.

use serde_json::{json, Map, Value};

use super::FrameScores;

/// Mean, minimum and maximum of a series (the mean is +∞ if any value is).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for an empty series.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let (mut n, mut sum) = (0usize, 0.0);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        (n > 0).then(|| Stats {
            mean: sum / n as f64,
            min,
            max,
        })
    }
}

/// Everything `engine eval` measured.
#[derive(Clone, Debug, Default)]
pub struct EvalReport {
    pub pred: String,
    pub truth: String,
    /// The compared frame size (after `--size`, if given).
    pub width: u32,
    pub height: u32,
    pub frames: Vec<FrameScores>,
    /// (name, value) from the extra metrics (`metrics::extra`).
    pub extra: Vec<(String, f64)>,
}

/// A per-frame series: its name and how to read it from the scores.
type Series = (&'static str, fn(&FrameScores) -> f64);

/// The per-frame series, in table order.
const SERIES: [Series; 5] = [
    ("ssim", |s| s.ssim),
    ("psnr_db", |s| s.psnr_db),
    ("sharpness_pred", |s| s.sharpness_pred),
    ("sharpness_truth", |s| s.sharpness_truth),
    ("sharpness_diff", |s| s.sharpness_diff()),
];

/// A number for the table: 4 decimals (or "inf").
pub fn fmt_value(v: f64) -> String {
    if v == f64::INFINITY {
        "inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{v:.4}")
    }
}

/// Inserts `key: v`, or `key: null` plus `key_infinite: true` when `v` is not finite.
fn put(map: &mut Map<String, Value>, key: &str, v: f64) {
    match serde_json::Number::from_f64(v).filter(|_| v.is_finite()) {
        Some(n) => {
            map.insert(key.into(), Value::Number(n));
        }
        None => {
            map.insert(key.into(), Value::Null);
            map.insert(format!("{key}_infinite"), Value::Bool(v.is_infinite()));
        }
    }
}

impl EvalReport {
    /// (series name, stats) for every per-frame series; empty without frames.
    pub fn summary(&self) -> Vec<(&'static str, Stats)> {
        SERIES
            .iter()
            .filter_map(|(name, f)| Stats::of(self.frames.iter().map(f)).map(|s| (*name, s)))
            .collect()
    }

    /// Frames whose prediction equals the truth exactly (infinite PSNR).
    pub fn identical_frames(&self) -> usize {
        self.frames
            .iter()
            .filter(|s| s.psnr_db.is_infinite())
            .count()
    }

    /// The summary as an aligned text table, then the frame count and the extra metrics.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<16} {:>14} {:>14} {:>14}\n",
            "metric", "mean", "min", "max"
        );
        for (name, s) in self.summary() {
            out += &format!(
                "{:<16} {:>14} {:>14} {:>14}\n",
                name,
                fmt_value(s.mean),
                fmt_value(s.min),
                fmt_value(s.max)
            );
        }
        for (name, v) in &self.extra {
            out += &format!("{:<16} {:>14}\n", name, fmt_value(*v));
        }
        out += &format!(
            "frames: {} at {}x{} ({} identical)\n",
            self.frames.len(),
            self.width,
            self.height,
            self.identical_frames()
        );
        out
    }

    /// The report as JSON: inputs, size, summary, extra metrics and every frame's scores.
    pub fn to_json(&self) -> Value {
        let mut summary = Map::new();
        for (name, s) in self.summary() {
            let mut m = Map::new();
            put(&mut m, "mean", s.mean);
            put(&mut m, "min", s.min);
            put(&mut m, "max", s.max);
            summary.insert(name.into(), Value::Object(m));
        }
        let mut extra = Map::new();
        for (name, v) in &self.extra {
            put(&mut extra, name, *v);
        }
        let per_frame: Vec<Value> = self
            .frames
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut m = Map::new();
                m.insert("frame".into(), json!(i));
                for (name, f) in SERIES.iter() {
                    put(&mut m, name, f(s));
                }
                Value::Object(m)
            })
            .collect();
        json!({
            "pred": self.pred,
            "truth": self.truth,
            "frames": self.frames.len(),
            "width": self.width,
            "height": self.height,
            "identical_frames": self.identical_frames(),
            "summary": summary,
            "extra": extra,
            "per_frame": per_frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(ssim: f64, psnr_db: f64) -> FrameScores {
        FrameScores {
            ssim,
            psnr_db,
            sharpness_pred: 10.0,
            sharpness_truth: 12.0,
        }
    }

    #[test]
    fn stats_and_infinite_psnr_in_table_and_json() {
        let r = EvalReport {
            pred: "p".into(),
            truth: "t".into(),
            width: 16,
            height: 16,
            frames: vec![scores(1.0, f64::INFINITY), scores(0.5, 20.0)],
            extra: vec![("fid".into(), 3.5)],
        };
        let s = r.summary();
        assert_eq!(
            s[0],
            (
                "ssim",
                Stats {
                    mean: 0.75,
                    min: 0.5,
                    max: 1.0
                }
            )
        );
        assert_eq!(s[1].1.mean, f64::INFINITY);
        assert_eq!(s[1].1.min, 20.0);
        assert_eq!(s[4].1.mean, -2.0);
        let t = r.table();
        assert!(
            t.contains("inf") && t.contains("frames: 2 at 16x16 (1 identical)"),
            "{t}"
        );
        assert!(t.contains("fid"), "{t}");
        let j = r.to_json();
        assert_eq!(j["summary"]["psnr_db"]["mean"], Value::Null);
        assert_eq!(j["summary"]["psnr_db"]["mean_infinite"], Value::Bool(true));
        assert_eq!(j["summary"]["psnr_db"]["min"], json!(20.0));
        assert_eq!(j["per_frame"][0]["psnr_db_infinite"], Value::Bool(true));
        assert!(j["per_frame"][1].get("psnr_db_infinite").is_none());
        assert_eq!(j["extra"]["fid"], json!(3.5));
        assert_eq!(j["identical_frames"], json!(1));
        assert!(Stats::of(std::iter::empty()).is_none());
    }
}

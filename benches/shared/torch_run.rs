//! PyTorch's timings from the same run on the same card: the JSON list that the yardstick scripts
//! (../shared/tools/torch_baseline.py, torch_model_baseline.py) write to $OUT, one object per
//! case with its `name`, `ms` and an optional `note`. Shared by the GPU benchmarks.

use std::collections::HashMap;

pub struct TorchRun {
    pub path: String,
    /// Name → (ms, note).
    pub rows: HashMap<String, (f64, String)>,
}

impl TorchRun {
    /// The rows with a time; error rows (no `ms`) are left out.
    pub fn parse(path: &str, text: &str) -> Result<TorchRun, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{path}: not JSON: {e}"))?;
        let list = v
            .as_array()
            .ok_or_else(|| format!("{path}: expected a list of rows"))?;
        let rows = list
            .iter()
            .filter_map(|r| {
                let name = r.get("name")?.as_str()?;
                let ms = r.get("ms")?.as_f64()?;
                let note = r.get("note").and_then(|n| n.as_str()).unwrap_or("");
                Some((name.to_string(), (ms, note.to_string())))
            })
            .collect();
        Ok(TorchRun {
            path: path.into(),
            rows,
        })
    }

    /// From the file named by the environment variable `var` when it is set; a file that cannot
    /// be read is reported and left out.
    pub fn from_env(var: &str) -> Option<TorchRun> {
        let path = std::env::var(var).ok()?;
        let r = std::fs::read_to_string(&path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(|text| TorchRun::parse(&path, &text));
        match r {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("PyTorch's same-run timings not used: {e}");
                None
            }
        }
    }

    pub fn ms(&self, key: &str) -> Option<f64> {
        self.rows.get(key).map(|r| r.0)
    }

    /// The peak memory note ("peak N MiB") of row `key`.
    pub fn peak_mib(&self, key: &str) -> Option<f64> {
        let note = &self.rows.get(key)?.1;
        note.strip_prefix("peak ")?
            .strip_suffix(" MiB")?
            .parse()
            .ok()
    }
}

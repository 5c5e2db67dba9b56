//! Progress bars on stderr for long-running subcommands. indicatif draws nothing when stderr is not
//! a terminal (logs, CI), so every command also prints a one-line summary when it finishes.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `len` units of `unit` (e.g. "frames", "iter"), with rate and ETA.
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!(
        "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}}) {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

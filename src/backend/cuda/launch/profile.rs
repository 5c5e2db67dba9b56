//! A per-kernel profile ([`super::Gpu::set_profiling`], [`super::Gpu::take_profile`]) and its
//! markdown table, shared by `engine train --profile-kernels` and benches/cuda_train_step.rs.

/// One kernel's share of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: String,
    pub launches: usize,
    /// GPU time of all its launches, between the events recorded around each.
    pub ms: f64,
}

/// A markdown table of the `top` longest kernels of `profile` (longest first), after a line
/// that sets the kernels' total against `wall_ms`, the wall time of the profiled work.
pub fn profile_table(profile: &[KernelTime], wall_ms: f64, top: usize) -> String {
    let total: f64 = profile.iter().map(|k| k.ms).sum();
    let launches: usize = profile.iter().map(|k| k.launches).sum();
    let mut out = format!(
        "GPU time between the events recorded around each launch: {total:.1} ms in {launches} \
         launches of {} kernels; wall time {wall_ms:.1} ms (the difference: host work and gaps \
         between launches, and the events themselves).\n\n",
        profile.len()
    );
    out.push_str("| kernel | launches | ms | share of kernel time |\n|---|---|---|---|\n");
    for k in profile.iter().take(top) {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.1} % |\n",
            k.kernel,
            k.launches,
            k.ms,
            100.0 * k.ms / total.max(f64::MIN_POSITIVE)
        ));
    }
    if profile.len() > top {
        let rest: f64 = profile[top..].iter().map(|k| k.ms).sum();
        out.push_str(&format!(
            "| {} other kernels | {} | {rest:.2} | {:.1} % |\n",
            profile.len() - top,
            profile[top..].iter().map(|k| k.launches).sum::<usize>(),
            100.0 * rest / total.max(f64::MIN_POSITIVE)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_the_top_kernels_and_folds_the_rest() {
        let k = |kernel: &str, launches, ms| KernelTime {
            kernel: kernel.into(),
            launches,
            ms,
        };
        let p = [k("conv", 10, 6.0), k("norm", 4, 3.0), k("add", 7, 1.0)];
        let t = profile_table(&p, 12.5, 2);
        assert!(t.starts_with("GPU time between the events recorded around each launch: 10.0 ms in 21 launches of 3 kernels; wall time 12.5 ms"), "{t}");
        assert!(t.contains("| conv | 10 | 6.00 | 60.0 % |"), "{t}");
        assert!(t.contains("| norm | 4 | 3.00 | 30.0 % |"), "{t}");
        assert!(t.contains("| 1 other kernels | 7 | 1.00 | 10.0 % |"), "{t}");
        assert!(!t.contains("| add |"), "{t}");
        assert!(profile_table(&[], 1.0, 5).contains("0.0 ms in 0 launches"));
    }
}

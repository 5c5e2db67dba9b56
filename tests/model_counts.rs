//! The `paper` config with the `cocosnet` label must have the sizes of MODEL.md §7 (batch 1, 256²,
//! match_kernel 3, adaptor kernel 3), within 0.5%. Counting is analytic: nothing is built.

use engine::model::{count, ModelConfig};
use engine::pose::LabelKind;

/// Relative tolerance of MODEL.md's rounded figures.
const TOL: f64 = 0.005;

fn close(what: &str, got: f64, want: f64) {
    let rel = (got - want).abs() / want;
    println!(
        "{what:28} {got:10.3} vs {want:8.3}  rel {rel:.5} ({:.0}% of tol)",
        100.0 * rel / TOL
    );
    assert!(rel <= TOL, "{what}: {got} vs {want} (rel {rel:.4})");
}

/// For figures MODEL.md prints to one decimal ("≈5.7 M", "0.8 G"), where 0.5% is finer than the
/// printed precision: the value must round to the printed figure.
fn rounds_to(what: &str, got: f64, printed: &str) {
    println!("{what:28} {got:10.3} rounds to {printed}?");
    assert_eq!(format!("{got:.1}"), printed, "{what}: {got}");
}

fn paper_cocosnet() -> ModelConfig {
    ModelConfig {
        label: LabelKind::Cocosnet,
        ..ModelConfig::preset("paper").unwrap()
    }
}

#[test]
fn paper_cocosnet_matches_model_md_table() {
    let cfg = paper_cocosnet();
    cfg.validate().unwrap();
    let c = count(&cfg).unwrap();
    let k = &c.correspondence;
    close("pose adaptor params (M)", k.pose_adaptor.mparams(), 23.1);
    close("image adaptor params (M)", k.image_adaptor.mparams(), 22.9);
    close("pose adaptor GMAC", k.pose_adaptor.gmacs(), 99.8);
    close("image adaptor GMAC", k.image_adaptor.gmacs(), 98.6);
    close("shared + theta/phi params (M)", k.shared.mparams(), 4.85);
    close("shared + theta/phi GMAC", k.shared.gmacs(), 39.2);
    assert_eq!(k.correlation.params + k.warp.params, 0);
    close("correlation GMAC", k.correlation.gmacs(), 38.7);
    // 4096·4096·48 = 0.805 G: the table prints it to one decimal, so check the rounding there
    // (the exact value is asserted in `exact_totals_are_stable`).
    rounds_to("warp GMAC", k.warp.gmacs(), "0.8");
    assert!(k.cycle.is_none());
    close("generator params (M)", c.generator.total.mparams(), 92.7);
    close("generator GMAC", c.generator.total.gmacs(), 154.5);
    close(
        "generator attention GMAC",
        c.generator.attention.gmacs(),
        12.1,
    );
    close(
        "generator side params (M)",
        c.generator_side().mparams(),
        143.6,
    );
    close("generator side GMAC", c.generator_side().gmacs(), 431.5);
    // D: 5.732 M and 4.470 G exactly (see `exact_totals_are_stable`), printed as ≈5.7 and 4.5.
    rounds_to("multiscale D params (M)", c.discriminator.mparams(), "5.7");
    rounds_to("multiscale D GMAC", c.discriminator.gmacs(), "4.5");
}

#[test]
fn exact_totals_are_stable() {
    // Exact integers of the same walk, so that a silent change of any layer shows up.
    let c = count(&paper_cocosnet()).unwrap();
    assert_eq!(c.correspondence.pose_adaptor.params, 23_095_936);
    assert_eq!(c.correspondence.image_adaptor.params, 22_949_056);
    assert_eq!(c.generator.total.params, 92_740_548);
    assert_eq!(c.correspondence.correlation.macs, 4096 * 4096 * 2304);
    assert_eq!(c.correspondence.warp.macs, 4096 * 4096 * 48);
    assert_eq!(c.generator.attention.macs, 12_079_595_520);
    assert_eq!(c.discriminator.params, 5_732_484);
    assert_eq!(c.discriminator.macs, 4_470_145_024);
}

#[test]
fn options_change_the_counts_as_expected() {
    let base = count(&paper_cocosnet()).unwrap();
    // The paper label has one channel more than cocosnet: slightly larger, same table within 0.5%.
    let paper = count(&ModelConfig::preset("paper").unwrap()).unwrap();
    assert!(paper.generator_side().params > base.generator_side().params);
    close(
        "paper-label side params (M)",
        paper.generator_side().mparams(),
        143.6,
    );
    close(
        "paper-label side GMAC",
        paper.generator_side().gmacs(),
        431.5,
    );
    // match_kernel 1: 256-d descriptors, a ninth of the correlation.
    let mk1 = count(&ModelConfig {
        match_kernel: 1,
        ..paper_cocosnet()
    })
    .unwrap();
    assert_eq!(
        mk1.correspondence.correlation.macs * 9,
        base.correspondence.correlation.macs
    );
    // The warp cycle doubles correlation + warp.
    let cyc = count(&ModelConfig {
        warp_cycle: true,
        ..paper_cocosnet()
    })
    .unwrap();
    let k = &base.correspondence;
    assert_eq!(
        cyc.correspondence.cycle.unwrap().macs,
        k.correlation.macs + k.warp.macs
    );
    // small halves every width: about a quarter of the parameters.
    let small = count(&ModelConfig::preset("small").unwrap()).unwrap();
    let ratio = small.generator_side().params as f64 / paper.generator_side().params as f64;
    assert!((0.22..0.30).contains(&ratio), "small/paper params {ratio}");
    // The temporal D sees l·(label + 3) channels: only its first conv grows.
    assert!(base.temporal_discriminator.params > base.discriminator.params);
}

#[test]
fn engine_info_prints_the_counts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["info", "--config", "paper", "--label", "cocosnet"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"label\": \"cocosnet\""), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("generator side total"))
        .unwrap_or_else(|| panic!("no total row in {text}"));
    let nums: Vec<f64> = row
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{row}");
    close("info: side params (M)", nums[0], 143.6);
    close("info: side GMAC", nums[1], 431.5);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["info", "--config", "huge"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown preset"));
}

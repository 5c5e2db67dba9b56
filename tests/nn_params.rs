//! Parameter store, initialisation, spectral norm and safetensors checkpoints through the public
//! API: round trips, typed errors naming the file and the tensor, atomic writes, Xavier moments,
//! spectral-norm convergence and its gradient against central differences.

use engine::nn::{self, Init, LoadOptions, ParamStore, SpectralNorm};
use engine::{Error, Tensor, Var};
use std::path::{Path, PathBuf};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("engine-nn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dir_names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn values(v: &Var) -> Vec<f32> {
    v.value().to_vec().unwrap()
}

/// A small model: a spectral-normed conv, a plain conv with bias, a shared scalar.
fn build(store: &ParamStore, with_extra: bool, bias_len: usize) -> SpectralNorm {
    let g = store.scope("generator");
    let c0 = g.scope("up_3").scope("conv_0");
    let w = c0
        .param("weight", &[4, 3, 3, 3], Init::XavierNormal { gain: 0.02 })
        .unwrap();
    let sn = SpectralNorm::new(&c0, "weight", &w).unwrap();
    let c1 = g.scope("conv_img");
    c1.param("weight", &[3, 4, 1, 1], Init::XavierNormal { gain: 0.02 })
        .unwrap();
    c1.param("bias", &[bias_len], Init::Zeros).unwrap();
    g.param("attn.gamma", &[], Init::Zeros).unwrap();
    if with_extra {
        g.param("extra.weight", &[2, 2], Init::Ones).unwrap();
    }
    sn
}

#[test]
fn save_load_round_trip_keeps_values_names_and_metadata() {
    let dir = temp_dir("rt");
    let path = dir.join("ckpt.safetensors");
    let a = ParamStore::new(1);
    let sn = build(&a, false, 3);
    sn.forward(true).unwrap();
    a.set(
        "generator.conv_img.bias",
        Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]).unwrap(),
    )
    .unwrap();
    let config = r#"{"model":"tiny","size":64}"#;
    nn::save(&a, &path, config).unwrap();
    assert_eq!(
        dir_names(&dir),
        ["ckpt.safetensors"],
        "no temp file is left behind"
    );

    let meta = nn::read_metadata(&path).unwrap();
    assert_eq!(meta["config"], config);
    assert_eq!(meta["format"], nn::checkpoint::FORMAT);
    assert_eq!(meta["engine_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(nn::read_config(&path).unwrap(), config);

    let b = ParamStore::new(999);
    let sn_b = build(&b, false, 3);
    assert_ne!(values(sn_b.u()), values(sn.u()));
    let meta_b = nn::load(&b, &path).unwrap();
    assert_eq!(meta_b, meta);
    assert_eq!(a.names(), b.names());
    for (ea, eb) in a.entries().iter().zip(b.entries()) {
        assert_eq!(ea.kind, eb.kind, "{}", ea.name);
        assert_eq!(ea.var.dims(), eb.var.dims(), "{}", ea.name);
        assert_eq!(values(&ea.var), values(&eb.var), "{}", ea.name);
    }
    // The buffers travel too, so eval forwards agree exactly after loading.
    assert_eq!(
        values(&sn.forward(false).unwrap()),
        values(&sn_b.forward(false).unwrap())
    );

    let all = nn::load_tensors(&path).unwrap();
    let mut names: Vec<String> = a.names();
    names.sort();
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), names);
    assert!(all.contains_key("generator.up_3.conv_0.weight_u"));
    assert!(all.contains_key("generator.up_3.conv_0.weight_v"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn file_detail(e: Error) -> (PathBuf, String) {
    match e {
        Error::File { path, detail } => (path, detail),
        other => panic!("expected Error::File, got {other:?}"),
    }
}

#[test]
fn missing_unexpected_and_misshaped_tensors_are_named() {
    let dir = temp_dir("mis");
    let path = dir.join("m.safetensors");
    let a = ParamStore::new(1);
    build(&a, false, 3);
    nn::save(&a, &path, "{}").unwrap();

    // The store has a tensor the file lacks.
    let more = ParamStore::new(2);
    build(&more, true, 3);
    let before = values(&more.get("generator.attn.gamma").unwrap());
    let w_before = values(&more.get("generator.conv_img.weight").unwrap());
    let (p, d) = file_detail(nn::load(&more, &path).unwrap_err());
    assert_eq!(p, path);
    assert!(
        d.contains("missing") && d.contains("`generator.extra.weight`"),
        "{d}"
    );
    // Nothing was loaded on error.
    assert_eq!(values(&more.get("generator.attn.gamma").unwrap()), before);
    assert_eq!(
        values(&more.get("generator.conv_img.weight").unwrap()),
        w_before
    );
    let r = nn::load_with(
        &more,
        &path,
        LoadOptions {
            allow_missing: true,
            allow_unexpected: false,
        },
    )
    .unwrap();
    assert_eq!(r.missing, ["generator.extra.weight"]);
    assert_eq!(r.loaded.len(), a.len());
    assert_eq!(
        values(&more.get("generator.conv_img.weight").unwrap()),
        values(&a.get("generator.conv_img.weight").unwrap())
    );

    // The file has a tensor the store lacks.
    let fewer = ParamStore::new(3);
    fewer
        .scope("generator")
        .param("attn.gamma", &[], Init::Zeros)
        .unwrap();
    let (_, d) = file_detail(nn::load(&fewer, &path).unwrap_err());
    assert!(
        d.contains("unexpected") && d.contains("`generator.up_3.conv_0.weight_u`"),
        "{d}"
    );
    let r = nn::load_with(
        &fewer,
        &path,
        LoadOptions {
            allow_missing: false,
            allow_unexpected: true,
        },
    )
    .unwrap();
    assert_eq!(r.loaded, ["generator.attn.gamma"]);
    assert_eq!(r.unexpected.len(), a.len() - 1);

    // Same names, one shape differs.
    let other = ParamStore::new(4);
    build(&other, false, 5);
    let (_, d) = file_detail(nn::load(&other, &path).unwrap_err());
    assert!(
        d.contains("`generator.conv_img.bias`") && d.contains("[3]") && d.contains("[5]"),
        "{d}"
    );
    let lenient = LoadOptions {
        allow_missing: true,
        allow_unexpected: true,
    };
    assert!(matches!(
        nn::load_with(&other, &path, lenient),
        Err(Error::File { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_garbage_and_unreadable_files_are_typed_errors() {
    let dir = temp_dir("trunc");
    let path = dir.join("t.safetensors");
    let a = ParamStore::new(1);
    build(&a, false, 3);
    nn::save(&a, &path, "{}").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (p, d) = file_detail(nn::load(&a, &cut).unwrap_err());
    assert_eq!(p, cut);
    assert!(d.contains("truncated"), "{d}");
    let (_, d) = file_detail(nn::read_metadata(&cut).unwrap_err());
    assert!(d.contains("truncated"), "{d}");
    // Cut inside the header.
    std::fs::write(&cut, &bytes[..20]).unwrap();
    assert!(matches!(nn::load(&a, &cut), Err(Error::File { .. })));
    assert!(matches!(nn::read_metadata(&cut), Err(Error::File { .. })));
    // Not safetensors at all.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, vec![0xffu8; 64]).unwrap();
    assert!(matches!(nn::load(&a, &junk), Err(Error::File { .. })));
    // Unreadable path.
    let gone = dir.join("does_not_exist.safetensors");
    assert!(matches!(nn::load(&a, &gone), Err(Error::Io { path, .. }) if path == gone));
    assert!(matches!(nn::read_metadata(&gone), Err(Error::Io { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failed_saves_leave_the_old_file_and_no_temp_file() {
    let dir = temp_dir("atomic");
    let path = dir.join("c.safetensors");
    let a = ParamStore::new(1);
    build(&a, false, 3);
    nn::save(&a, &path, r#"{"v":1}"#).unwrap();
    let old = std::fs::read(&path).unwrap();

    // Overwriting works and is atomic (no leftovers).
    a.set("generator.attn.gamma", Tensor::scalar(3.0)).unwrap();
    nn::save(&a, &path, r#"{"v":2}"#).unwrap();
    assert_eq!(dir_names(&dir), ["c.safetensors"]);
    assert_eq!(nn::read_config(&path).unwrap(), r#"{"v":2}"#);
    std::fs::write(&path, &old).unwrap();

    // A config that is not JSON, and reserved extra keys, fail before anything is written.
    assert!(matches!(
        nn::save(&a, &path, "{not json"),
        Err(Error::File { .. })
    ));
    let extra: nn::Metadata = [("config".to_string(), "x".to_string())]
        .into_iter()
        .collect();
    assert!(matches!(
        nn::save_with_metadata(&a, &path, "{}", &extra),
        Err(Error::File { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), old);

    // The rename fails (the target is a non-empty folder): the temp file is removed.
    let blocker = dir.join("blocked.safetensors");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    assert!(nn::save(&a, &blocker, "{}").is_err());
    assert_eq!(dir_names(&dir), ["blocked.safetensors", "c.safetensors"]);
    assert_eq!(std::fs::read(&path).unwrap(), old);

    // A missing folder is an Io error naming a path in it.
    let e = nn::save(&a, dir.join("no/such/dir/x.safetensors"), "{}").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let extra: nn::Metadata = [("step".to_string(), "12".to_string())]
        .into_iter()
        .collect();
    nn::save_with_metadata(&a, &path, "{}", &extra).unwrap();
    assert_eq!(nn::read_metadata(&path).unwrap()["step"], "12");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn xavier_std_and_name_determinism_through_the_store() {
    let s = ParamStore::new(7);
    let w = s
        .scope("d")
        .param(
            "conv.weight",
            &[64, 32, 3, 3],
            Init::XavierNormal { gain: 0.02 },
        )
        .unwrap();
    let v = values(&w);
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let std = (v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let want = 0.02 * (2.0 / ((32 * 9 + 64 * 9) as f64)).sqrt();
    assert!((std / want - 1.0).abs() < 0.03, "std {std}, want {want}");
    assert!(mean.abs() < 5.0 * want / n.sqrt(), "mean {mean}");
    let t = ParamStore::new(7);
    t.param(
        "other",
        &[3],
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        },
    )
    .unwrap();
    let w2 = t
        .param(
            "d.conv.weight",
            &[64, 32, 3, 3],
            Init::XavierNormal { gain: 0.02 },
        )
        .unwrap();
    assert_eq!(values(&w2), v);
}

/// Largest singular value of a row-major [rows, cols] matrix by many f64 power iterations.
fn spectral_norm_ref(w: &[f32], rows: usize) -> f64 {
    let cols = w.len() / rows;
    let at = |i: usize, j: usize| f64::from(w[i * cols + j]);
    let mut v: Vec<f64> = (0..cols).map(|j| 1.0 + j as f64 * 0.1).collect();
    let mut sigma = 0.0;
    for _ in 0..2000 {
        let u: Vec<f64> = (0..rows)
            .map(|i| (0..cols).map(|j| at(i, j) * v[j]).sum())
            .collect();
        let nv: Vec<f64> = (0..cols)
            .map(|j| (0..rows).map(|i| at(i, j) * u[i]).sum())
            .collect();
        let n = nv.iter().map(|x| x * x).sum::<f64>().sqrt();
        sigma = n.sqrt();
        v = nv.into_iter().map(|x| x / n).collect();
    }
    sigma
}

#[test]
fn spectral_norm_converges_and_normalises() {
    let s = ParamStore::new(5);
    let diag = Tensor::from_vec(
        vec![3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0],
        [3, 3, 1, 1],
    )
    .unwrap();
    let w = s
        .param("diag.weight", &[3, 3, 1, 1], Init::Value(diag))
        .unwrap();
    let sn = SpectralNorm::new(&s.root(), "diag.weight", &w).unwrap();
    let mut out = sn.forward(true).unwrap();
    for _ in 0..40 {
        out = sn.forward(true).unwrap();
    }
    assert!(
        (sn.sigma().unwrap() - 3.0).abs() < 1e-3,
        "sigma {}",
        sn.sigma().unwrap()
    );
    let o = values(&out);
    assert!(
        (o[0] - 1.0).abs() < 1e-3 && (o[4] - 2.0 / 3.0).abs() < 1e-3,
        "{o:?}"
    );

    // A random conv weight: σ converges to the top singular value and W/σ has norm ≈ 1.
    let w = s
        .param(
            "r.weight",
            &[6, 4, 3, 3],
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
    let sn = SpectralNorm::new(&s.root(), "r.weight", &w)
        .unwrap()
        .with_power_iterations(200);
    let out = sn.forward(true).unwrap();
    let want = spectral_norm_ref(&values(&w), 6);
    assert!(
        (f64::from(sn.sigma().unwrap()) / want - 1.0).abs() < 1e-4,
        "{} vs {want}",
        sn.sigma().unwrap()
    );
    let norm_out = spectral_norm_ref(&values(&out), 6);
    assert!((norm_out - 1.0).abs() < 1e-4, "{norm_out}");
}

#[test]
fn u_persists_across_calls_and_checkpoints() {
    let dir = temp_dir("u");
    let s = ParamStore::new(8);
    let w = s
        .param(
            "c.weight",
            &[5, 2, 3, 3],
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
    let sn = SpectralNorm::new(&s.scope("c"), "weight", &w).unwrap();
    // The same Var as the store's buffer.
    let u_store = s.get("c.weight_u").unwrap();
    let u0 = values(&u_store);
    sn.forward(true).unwrap();
    let u1 = values(&u_store);
    assert_ne!(u0, u1);
    // Two single steps equal one run of two iterations from the same start.
    sn.forward(true).unwrap();
    let u2 = values(sn.u());
    s.set("c.weight_u", Tensor::from_vec(u0.clone(), [5]).unwrap())
        .unwrap();
    sn.power_iterate(2).unwrap();
    let u2b = values(sn.u());
    for (a, b) in u2.iter().zip(&u2b) {
        assert!((a - b).abs() < 1e-6);
    }
    let path = dir.join("u.safetensors");
    nn::save(&s, &path, "{}").unwrap();
    let t = ParamStore::new(9);
    let w_t = t.param("c.weight", &[5, 2, 3, 3], Init::Zeros).unwrap();
    let sn_t = SpectralNorm::new(&t.scope("c"), "weight", &w_t).unwrap();
    nn::load(&t, &path).unwrap();
    assert_eq!(values(sn_t.u()), u2b);
    assert_eq!(values(sn_t.v()), values(sn.v()));
    assert_eq!(
        values(&sn_t.forward(false).unwrap()),
        values(&sn.forward(false).unwrap())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradient_through_sigma_matches_central_differences() {
    let s = ParamStore::new(21);
    let shape = [3, 2, 2, 2];
    let w = s
        .param(
            "w",
            &shape,
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
    let sn = SpectralNorm::new(&s.root(), "w", &w).unwrap();
    sn.forward(true).unwrap(); // sets u, v; eval forwards below keep them fixed
    let r = Var::constant(Tensor::randn(shape, 0.0, 1.0, 77));
    let f = |sn: &SpectralNorm| {
        sn.forward(false)
            .unwrap()
            .mul(&r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let loss = f(&sn);
    loss.backward().unwrap();
    let grad = w.grad().unwrap().to_vec().unwrap();

    // Analytic reference in f64: d/dW Σ R∘W/σ = R/σ − (Σ R∘W)/σ² · u vᵀ.
    let (wv, rv, u, v) = (values(&w), values(&r), values(sn.u()), values(sn.v()));
    let cols = 8;
    let sigma: f64 = (0..3)
        .map(|i| {
            f64::from(u[i])
                * (0..cols)
                    .map(|j| f64::from(wv[i * cols + j]) * f64::from(v[j]))
                    .sum::<f64>()
        })
        .sum();
    let rw: f64 = wv
        .iter()
        .zip(&rv)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let base = wv.clone();
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    for k in 0..base.len() {
        let (i, j) = (k / cols, k % cols);
        let analytic =
            f64::from(rv[k]) / sigma - rw / (sigma * sigma) * f64::from(u[i]) * f64::from(v[j]);
        let eval_at = |delta: f32| {
            let mut p = base.clone();
            p[k] += delta;
            w.set_value(Tensor::from_vec(p, shape).unwrap()).unwrap();
            f64::from(engine::autograd::no_grad(|| f(&sn)).value().item().unwrap())
        };
        let numeric = (eval_at(eps) - eval_at(-eps)) / (2.0 * f64::from(eps));
        let g = f64::from(grad[k]);
        assert!(
            (g - analytic).abs() < 1e-4 * (1.0 + analytic.abs()),
            "elem {k}: autograd {g} vs analytic {analytic}"
        );
        assert!(
            (g - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
            "elem {k}: autograd {g} vs numeric {numeric}"
        );
        worst = worst.max((g - numeric).abs());
    }
    println!("spectral norm gradcheck: max |autograd - numeric| = {worst:.2e}");
}

#[test]
fn spectral_norm_passes_the_autograd_gradcheck() {
    // Re-registering the same buffer names returns the same u and v, so every evaluation inside
    // gradcheck uses one fixed (u, v) pair, set by a training step first.
    let s = ParamStore::new(31);
    let w0 = Tensor::randn([5, 3, 1, 3], 0.0, 1.0, 4);
    let sn = SpectralNorm::new(&s.root(), "w", &Var::constant(w0.clone())).unwrap();
    sn.forward(true).unwrap();
    let f = |xs: &[Var]| SpectralNorm::new(&s.root(), "w", &xs[0])?.forward(false);
    engine::autograd::gradcheck(f, &[w0], 1e-2, 1e-2, 1e-3).unwrap();
}

//! Tensor creation, views and device handling through the public API; bad input gives typed errors.

use engine::{Device, Error, Tensor};

#[test]
fn creation_and_shape_checks() {
    let t = Tensor::from_vec((0..6).map(|i| i as f32).collect(), [2, 3]).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
    assert_eq!(t.numel(), 6);
    assert!(matches!(
        Tensor::from_vec(vec![1.0; 5], [2, 3]),
        Err(Error::Shape { .. })
    ));
    assert_eq!(Tensor::zeros([4, 0]).numel(), 0);
    assert_eq!(Tensor::scalar(2.5).item().unwrap(), 2.5);
    assert!(t.item().is_err());
}

#[test]
fn seeded_random_is_reproducible_and_has_the_right_moments() {
    let a = Tensor::randn([100_000], 1.0, 2.0, 7);
    let b = Tensor::randn([100_000], 1.0, 2.0, 7);
    assert_eq!(a.to_vec().unwrap(), b.to_vec().unwrap());
    let v = a.to_vec().unwrap();
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
    assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
    let u = Tensor::rand_uniform([10_000], -1.0, 3.0, 1)
        .to_vec()
        .unwrap();
    assert!(u.iter().all(|&x| (-1.0..3.0).contains(&x)));
    assert_ne!(
        Tensor::randn([8], 0.0, 1.0, 1).to_vec().unwrap(),
        Tensor::randn([8], 0.0, 1.0, 2).to_vec().unwrap()
    );
}

#[test]
fn reshape_is_a_view_and_checks_counts() {
    let t = Tensor::randn([2, 3, 4], 0.0, 1.0, 0);
    let r = t.reshape([6, usize::MAX]).unwrap();
    assert_eq!(r.dims(), &[6, 4]);
    assert!(r.shares_storage(&t));
    assert!(t.reshape([5, 5]).is_err());
    assert!(t.reshape([usize::MAX, usize::MAX]).is_err());
    assert!(t.reshape([5, usize::MAX]).is_err());
}

#[test]
fn permute_narrow_concat() {
    let t = Tensor::from_vec((0..24).map(|i| i as f32).collect(), [2, 3, 4]).unwrap();
    let p = t.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.dims(), &[4, 2, 3]);
    // p[k, i, j] = t[i, j, k]
    let (pv, tv) = (p.to_vec().unwrap(), t.to_vec().unwrap());
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                assert_eq!(pv[k * 6 + i * 3 + j], tv[i * 12 + j * 4 + k]);
            }
        }
    }
    assert!(t.permute(&[0, 0, 1]).is_err());
    let n = t.narrow(1, 1, 2).unwrap();
    assert_eq!(n.dims(), &[2, 2, 4]);
    assert_eq!(n.to_vec().unwrap()[0], 4.0);
    assert!(t.narrow(1, 2, 2).is_err());
    assert!(t.narrow(3, 0, 1).is_err());
    let c = Tensor::concat(&[&t, &n], 1).unwrap();
    assert_eq!(c.dims(), &[2, 5, 4]);
    assert!(Tensor::concat(&[&t, &n], 0).is_err());
    assert!(Tensor::concat(&[], 0).is_err());
}

#[test]
fn devices_resolve_without_panicking() {
    assert_eq!(Device::Cpu.resolve().unwrap(), Device::Cpu);
    // Auto always resolves to something usable; on a machine without a GPU that is the CPU.
    let auto = Device::Auto.resolve().unwrap();
    let t = Tensor::ones([3]).to_device(auto).unwrap();
    assert_eq!(t.device(), auto);
    if engine::backend::cuda_probe::probe().is_err() {
        // No GPU here: both asking for CUDA ops and copying to CUDA are typed errors.
        assert!(matches!(
            Device::Cuda.resolve(),
            Err(Error::DeviceUnavailable { .. })
        ));
        assert!(matches!(
            Tensor::ones([3]).to_device(Device::Cuda),
            Err(Error::DeviceUnavailable { .. })
        ));
    }
    assert!("tpu".parse::<Device>().is_err());
    assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
}

#[test]
fn shape_broadcasting_rules() {
    use engine::Shape;
    let b = Shape::broadcast("t", &Shape::new(&[3, 1, 5]), &Shape::new(&[4, 1])).unwrap();
    assert_eq!(b.dims(), &[3, 4, 5]);
    assert!(Shape::broadcast("t", &Shape::new(&[3]), &Shape::new(&[4])).is_err());
    assert_eq!(Shape::new(&[2, 3, 4]).strides(), vec![12, 4, 1]);
}

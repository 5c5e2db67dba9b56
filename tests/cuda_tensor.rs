//! Tensors on the GPU: host->device->host copies are exact, and a CUDA tensor used where host
//! values or CUDA ops are needed gives a typed error, not a panic; and the device's own services:
//! running out of memory, the per-kernel profile. Ignored without a GPU; run on the lent GPU
//! machine (`--ignored`). No other test here launches a matmul, so the profile's count is exact.
#![cfg(feature = "cuda")]

mod common;

use common::gpu_ok;
use engine::{Device, Error, Tensor};

#[test]
#[ignore]
fn host_device_round_trip_is_exact() {
    if !gpu_ok() {
        return;
    }
    for (i, shape) in [vec![0usize], vec![1], vec![3, 5, 7], vec![1_000_003]]
        .into_iter()
        .enumerate()
    {
        let t = Tensor::randn(shape.clone(), 0.0, 1.0, i as u64);
        let d = t.to_device(Device::Cuda).unwrap();
        assert_eq!(d.device(), Device::Cuda);
        assert_eq!(d.dims(), &shape[..]);
        let d2 = d.to_device(Device::Cuda).unwrap(); // device -> host -> device
        let back = d2.to_device(Device::Cpu).unwrap();
        assert_eq!(back.device(), Device::Cpu);
        assert_eq!(
            back.to_vec().unwrap(),
            t.to_vec().unwrap(),
            "shape {shape:?}"
        );
        assert_eq!(d.to_vec().unwrap(), t.to_vec().unwrap());
        assert!(d.reshape([usize::MAX]).unwrap().shares_storage(&d));
        println!("round trip {shape:?} ok");
    }
}

#[test]
#[ignore]
fn cuda_tensors_give_typed_errors_where_host_values_are_needed() {
    if !gpu_ok() {
        return;
    }
    let d = Tensor::ones([4, 4]).to_device(Device::Cuda).unwrap();
    assert!(matches!(d.cpu_data(), Err(Error::DeviceMismatch { .. })));
    let mut m = d.clone();
    assert!(m.data_mut().is_err());
    // Ops on CUDA tensors run on the CUDA backend and stay on the device.
    let host = Tensor::from_vec((0..16).map(|v| v as f32).collect(), vec![4, 4]).unwrap();
    let p = host
        .to_device(Device::Cuda)
        .unwrap()
        .permute(&[1, 0])
        .unwrap();
    assert_eq!(p.device(), Device::Cuda);
    let back = p.to_device(Device::Cpu).unwrap();
    assert_eq!(
        back.cpu_data().unwrap(),
        host.permute(&[1, 0]).unwrap().cpu_data().unwrap()
    );
    println!("typed errors ok");
}

#[test]
#[ignore]
fn running_out_of_gpu_memory_is_a_clear_error() {
    if !gpu_ok() {
        return;
    }
    let g = engine::backend::cuda::launch::global().unwrap();
    // 2^42 floats, 16 TiB: more than any card has.
    let err = match g.alloc(1 << 42) {
        Ok(_) => panic!("a 16 TiB allocation succeeded"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::DeviceFault { .. }), "{msg}");
    assert!(
        msg.contains("out of GPU memory") && msg.contains("--batch"),
        "{msg}"
    );
    // The device stays usable.
    let d = Tensor::ones([3]).to_device(Device::Cuda).unwrap();
    assert_eq!(d.to_vec().unwrap(), vec![1.0; 3]);
    println!("out of memory: {msg}");
}

#[test]
#[ignore]
fn the_kernel_profile_counts_each_launch_while_on() {
    use engine::backend::cuda::launch::{global, matmul_kernel};
    use engine::backend::cuda::params::MatmulArgs;
    use engine::backend::{for_device, Precision};
    if !gpu_ok() {
        return;
    }
    let g = global().unwrap();
    let cuda = for_device(Device::Cuda).unwrap();
    let a = Tensor::randn(vec![33, 40], 0.0, 1.0, 1)
        .to_device(Device::Cuda)
        .unwrap();
    let b = Tensor::randn(vec![40, 29], 0.0, 1.0, 2)
        .to_device(Device::Cuda)
        .unwrap();
    let matmul = || drop(cuda.matmul(&a, &b, false, false).unwrap());
    matmul(); // compiled and loaded before the profile
    g.set_profiling(true);
    for _ in 0..3 {
        matmul();
    }
    g.set_profiling(false);
    matmul(); // not recorded
    let profile = g.take_profile().unwrap();
    let args = MatmulArgs {
        m: 33,
        n: 29,
        k: 40,
        ..Default::default()
    };
    let want = matmul_kernel(&args, Precision::F32).0;
    let mm = profile
        .iter()
        .find(|k| k.kernel == want)
        .unwrap_or_else(|| panic!("no {want} in {profile:?}"));
    assert_eq!(mm.launches, 3, "{profile:?}");
    assert!(mm.ms.is_finite() && mm.ms >= 0.0, "{profile:?}");
    assert!(
        profile.windows(2).all(|w| w[0].ms >= w[1].ms),
        "longest first"
    );
    assert!(
        g.take_profile().unwrap().is_empty(),
        "taking the profile clears it"
    );
    println!("profile: {profile:?}");
}

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}

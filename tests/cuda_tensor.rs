//! Tensors on the GPU: host->device->host copies are exact, and a CUDA tensor used where host
//! values or CUDA ops are needed gives a typed error, not a panic. Ignored without a GPU; run on
//! the lent GPU machine (`--ignored`).
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

/// The tests above without a GPU, on the emulated driver (tests/common/emulated.rs).
#[test]
fn on_the_emulated_driver() {
    common::emulated::rerun_ignored(&[], 300, &[]);
}

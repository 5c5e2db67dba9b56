//! Finds out, without panicking, whether a CUDA driver, NVRTC and a GPU are present.
//! cudarc panics when a library is missing, so its presence checks run before any other call.

/// What the probe found on a machine with a usable GPU.
#[derive(Clone, Debug)]
pub struct CudaInfo {
    pub driver_version: (i32, i32),
    pub nvrtc_version: (i32, i32),
    pub devices: Vec<String>,
}

/// Ok with the driver/NVRTC versions and the GPUs, or the reason CUDA cannot be used.
#[cfg(feature = "cuda")]
pub fn probe() -> Result<CudaInfo, String> {
    use cudarc::driver::{result, sys as dsys};
    use cudarc::nvrtc::sys as nsys;
    // SAFETY: these only try to dlopen the libraries; they call nothing inside them.
    if !unsafe { dsys::is_culib_present() } {
        return Err("the CUDA driver library (libcuda.so) was not found".into());
    }
    if !unsafe { nsys::is_culib_present() } {
        return Err("NVRTC (libnvrtc.so) was not found; install the CUDA 13 runtime compiler or put its lib folder on LD_LIBRARY_PATH".into());
    }
    result::init().map_err(|e| format!("the CUDA driver failed to initialise: {e}"))?;
    let mut dv = 0;
    // SAFETY: the driver library is present and initialised; dv is a valid out-pointer.
    unsafe { dsys::cuDriverGetVersion(&mut dv) }
        .result()
        .map_err(|e| format!("cuDriverGetVersion: {e}"))?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is present; both are valid out-pointers.
    unsafe { nsys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| format!("nvrtcVersion: {e:?}"))?;
    let count = result::device::get_count().map_err(|e| format!("cannot count GPUs: {e}"))?;
    if count == 0 {
        return Err("the CUDA driver is present but reports no GPU".into());
    }
    let mut devices = Vec::new();
    for i in 0..count {
        let dev = result::device::get(i).map_err(|e| format!("GPU {i}: {e}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown".into());
        // SAFETY: dev is a valid device handle from the driver.
        let mem = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
        let cc = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0);
        let major = cc(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        let minor = cc(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        devices.push(format!(
            "{i}: {name}, compute capability {major}.{minor}, {:.1} GiB",
            mem as f64 / (1u64 << 30) as f64
        ));
    }
    Ok(CudaInfo {
        driver_version: (dv / 1000, (dv % 1000) / 10),
        nvrtc_version: (major, minor),
        devices,
    })
}

#[cfg(not(feature = "cuda"))]
pub fn probe() -> Result<CudaInfo, String> {
    Err("this build has no CUDA support (rebuild with the `cuda` feature)".into())
}

//! Where tensors live, and how `Auto` is resolved.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda,
    /// CUDA when a driver, NVRTC and a GPU are present, else the CPU.
    Auto,
}

impl Device {
    /// Resolves `Auto` and checks that the chosen device can hold tensors in this build.
    pub fn resolve(self) -> Result<Device> {
        match self {
            Device::Cpu => Ok(Device::Cpu),
            Device::Auto => Ok(match crate::backend::cuda_probe::probe() {
                Ok(_) if crate::backend::cuda_backend_built() => Device::Cuda,
                _ => Device::Cpu,
            }),
            Device::Cuda => {
                crate::backend::cuda_probe::probe().map_err(|reason| Error::DeviceUnavailable {
                    device: "cuda".into(),
                    reason,
                })?;
                crate::backend::cuda_backend_status().map_err(|reason| {
                    Error::DeviceUnavailable {
                        device: "cuda".into(),
                        reason: format!(
                            "a GPU was found, but the CUDA backend cannot start: {reason}"
                        ),
                    }
                })?;
                Ok(Device::Cuda)
            }
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "auto" => Ok(Device::Auto),
            _ => Err(Error::invalid(
                "device",
                format!("unknown device '{s}' (expected cpu, cuda or auto)"),
            )),
        }
    }
}

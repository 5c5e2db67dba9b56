//! `Tensor`: an immutable, contiguous, row-major f32 array on a device. Values are shared
//! (cloning is cheap); ops return new tensors. Only parameters and optimiser state are updated in
//! place, through `data_mut`, which copies first if the storage is shared.

mod device;
mod rng;
mod shape;

pub use device::Device;
pub use rng::Rng;
pub use shape::Shape;

use crate::error::{Error, Result};
use std::sync::Arc;

/// Where the values are. The CUDA variant comes with the CUDA backend.
#[derive(Clone)]
pub enum Storage {
    Cpu(Arc<Vec<f32>>),
    /// Device memory on the process-wide GPU (`backend::cuda::launch::global`), from its
    /// caching pool (the buffer goes back to the pool when the last tensor using it drops; it
    /// may be longer than the tensor).
    #[cfg(feature = "cuda")]
    Cuda(Arc<crate::backend::cuda::pool::DeviceBuf>),
}

#[derive(Clone)]
pub struct Tensor {
    shape: Shape,
    storage: Storage,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.device())
    }
}

impl Tensor {
    // ---- creation -------------------------------------------------------------------------

    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "from_vec",
                format!(
                    "{} values for shape {:?} ({} elements)",
                    data.len(),
                    shape,
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor {
            shape,
            storage: Storage::Cpu(Arc::new(data)),
        })
    }
    pub fn full(value: f32, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        Tensor {
            shape,
            storage: Storage::Cpu(Arc::new(vec![value; n])),
        }
    }
    pub fn zeros(shape: impl Into<Shape>) -> Tensor {
        Self::full(0.0, shape)
    }
    pub fn ones(shape: impl Into<Shape>) -> Tensor {
        Self::full(1.0, shape)
    }
    pub fn scalar(value: f32) -> Tensor {
        Self::full(value, Shape(vec![]))
    }
    /// Normal(mean, std) samples from a seed: the same values on every machine.
    pub fn randn(shape: impl Into<Shape>, mean: f32, std: f32, seed: u64) -> Tensor {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let data = (0..shape.numel())
            .map(|_| mean + std * rng.normal() as f32)
            .collect();
        Tensor {
            shape,
            storage: Storage::Cpu(Arc::new(data)),
        }
    }
    /// Uniform [lo, hi) samples from a seed.
    pub fn rand_uniform(shape: impl Into<Shape>, lo: f32, hi: f32, seed: u64) -> Tensor {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let data = (0..shape.numel())
            .map(|_| lo + (hi - lo) * rng.uniform() as f32)
            .collect();
        Tensor {
            shape,
            storage: Storage::Cpu(Arc::new(data)),
        }
    }

    // ---- accessors ------------------------------------------------------------------------

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    pub fn device(&self) -> Device {
        match self.storage {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Device::Cuda,
        }
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// The values of a CPU tensor (row-major).
    pub fn cpu_data(&self) -> Result<&[f32]> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Err(Self::on_gpu("cpu_data")),
        }
    }
    /// Mutable values; copies the storage first if another tensor shares it.
    pub fn data_mut(&mut self) -> Result<&mut [f32]> {
        match &mut self.storage {
            Storage::Cpu(v) => Ok(Arc::make_mut(v).as_mut_slice()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Err(Self::on_gpu("data_mut")),
        }
    }
    #[cfg(feature = "cuda")]
    fn on_gpu(op: &'static str) -> Error {
        Error::DeviceMismatch {
            op,
            a: "cuda".into(),
            b: "cpu (copy with to_device(Device::Cpu) first)".into(),
        }
    }
    /// A host copy of the values, from any device.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v.to_vec()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(d) => crate::backend::cuda::launch::global()?.download_n(d, self.numel()),
        }
    }
    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("tensor of shape {:?} is not a scalar", self.shape),
            ));
        }
        match &self.storage {
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Ok(self.to_vec()?[0]),
            _ => Ok(self.cpu_data()?[0]),
        }
    }
    /// Copies to a device (host->device, device->host). `Auto` picks the device whose backend can
    /// run ops; `Cuda` only needs a GPU (ops on it need the CUDA backend).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        let target = if device == Device::Auto {
            device.resolve()?
        } else {
            device
        };
        if target == Device::Cpu {
            return Ok(Tensor {
                shape: self.shape.clone(),
                storage: Storage::Cpu(Arc::new(self.to_vec()?)),
            });
        }
        self.to_cuda()
    }
    /// This tensor on `device`: itself (shared, no copy) when it is there already, else a copy.
    /// Tensors are immutable and in-place updates copy shared storage first, so sharing is safe.
    pub fn on_device(&self, device: Device) -> Result<Tensor> {
        if self.device() == device {
            Ok(self.clone())
        } else {
            self.to_device(device)
        }
    }
    #[cfg(feature = "cuda")]
    fn to_cuda(&self) -> Result<Tensor> {
        let gpu = crate::backend::cuda::launch::global()?;
        let dev = gpu.upload_buf(&self.to_vec()?)?;
        Ok(Tensor {
            shape: self.shape.clone(),
            storage: Storage::Cuda(Arc::new(dev)),
        })
    }
    /// A tensor over a device buffer holding at least `shape`'s element count (for the CUDA
    /// backend's outputs).
    #[cfg(feature = "cuda")]
    pub(crate) fn from_cuda(
        buf: crate::backend::cuda::pool::DeviceBuf,
        shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if buf.len() < shape.numel() {
            return Err(Error::shape(
                "from_cuda",
                format!("{} device values for shape {:?}", buf.len(), shape),
            ));
        }
        Ok(Tensor {
            shape,
            storage: Storage::Cuda(Arc::new(buf)),
        })
    }
    /// The storage, for in-place device updates (the CUDA Adam step).
    #[cfg(feature = "cuda")]
    pub(crate) fn storage_mut(&mut self) -> &mut Storage {
        &mut self.storage
    }
    #[cfg(not(feature = "cuda"))]
    fn to_cuda(&self) -> Result<Tensor> {
        Err(Error::DeviceUnavailable {
            device: "cuda".into(),
            reason: "this build has no CUDA support (rebuild with the `cuda` feature)".into(),
        })
    }
    /// True when both tensors share the same storage buffer (no copy was made).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        match (&self.storage, &other.storage) {
            (Storage::Cpu(a), Storage::Cpu(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "cuda")]
            (Storage::Cuda(a), Storage::Cuda(b)) => Arc::ptr_eq(a, b),
            #[cfg(feature = "cuda")]
            _ => false,
        }
    }

    // ---- views (no copy) ------------------------------------------------------------------

    /// Same values, new shape. One dim may be `usize::MAX` to be inferred.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let mut dims = shape.into().0;
        let known: usize = dims.iter().filter(|&&d| d != usize::MAX).product();
        let inferred = dims.iter().filter(|&&d| d == usize::MAX).count();
        if inferred > 1 {
            return Err(Error::invalid("reshape", "more than one inferred dim"));
        }
        if inferred == 1 {
            if known == 0 || self.numel() % known != 0 {
                return Err(Error::shape(
                    "reshape",
                    format!("cannot infer a dim of {:?} from {:?}", dims, self.shape),
                ));
            }
            for d in dims.iter_mut().filter(|d| **d == usize::MAX) {
                *d = self.numel() / known;
            }
        }
        let shape = Shape(dims);
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} -> {:?} changes the element count", self.shape, shape),
            ));
        }
        Ok(Tensor {
            shape,
            storage: self.storage.clone(),
        })
    }

    // ---- copies through the backend -------------------------------------------------------

    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        crate::backend::for_tensor(self)?.permute(self, dims)
    }
    /// `len` entries starting at `start` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        crate::backend::for_tensor(self)?.narrow(self, axis, start, len)
    }
    pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = xs
            .first()
            .ok_or_else(|| Error::invalid("concat", "no tensors"))?;
        crate::backend::for_tensor(first)?.concat(xs, axis)
    }
}

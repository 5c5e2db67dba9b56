//! Placing a stage's trainer and its batches on a device. Every network of a trainer keeps its
//! values in the trainer's stores (the modules hold clones of the same `Var`s), so moving the
//! stores moves the networks; the optimisers' moments then follow their parameters.

use super::{FaceBatch, FaceTrainer, Stage1Batch, Stage1Trainer, TemporalBatch, TemporalTrainer};
use crate::error::Result;
use crate::nn::ParamStore;
use crate::optim::Adam;
use crate::tensor::{Device, Tensor};

/// Moves the stores (and so every network built on them) and then the optimisers' moments.
fn move_all(stores: &[&ParamStore], opts: [&mut Adam; 2], device: Device) -> Result<()> {
    for s in stores {
        s.to_device(device)?;
    }
    for o in opts {
        o.follow_params()?;
    }
    Ok(())
}

impl Stage1Trainer {
    /// Moves G, D, the VGG19 and both optimisers' state to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        let stores = [&self.g_store, &self.d_store, self.vgg.store()];
        move_all(&stores, [&mut self.g_opt, &mut self.d_opt], device)
    }
}

impl TemporalTrainer {
    /// Moves the frozen stage-1 copy, G1, D1, the VGG19 and both optimisers' state.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        let stores = [&self.frozen, &self.g_store, &self.d_store, self.vgg.store()];
        move_all(&stores, [&mut self.g_opt, &mut self.d_opt], device)
    }
}

impl FaceTrainer {
    /// Moves the frozen stage-1 copy, G2, D2, the VGG19 and both optimisers' state.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        let stores = [&self.frozen, &self.g_store, &self.d_store, self.vgg.store()];
        move_all(&stores, [&mut self.g_opt, &mut self.d_opt], device)
    }
}

impl Stage1Batch {
    pub fn to_device(&self, device: Device) -> Result<Stage1Batch> {
        Ok(Stage1Batch {
            label: self.label.on_device(device)?,
            exemplar: self.exemplar.on_device(device)?,
            gt: self.gt.on_device(device)?,
        })
    }
}

impl TemporalBatch {
    pub fn to_device(&self, device: Device) -> Result<TemporalBatch> {
        let all = |ts: &[Tensor]| {
            ts.iter()
                .map(|t| t.on_device(device))
                .collect::<Result<Vec<_>>>()
        };
        Ok(TemporalBatch {
            labels: all(&self.labels)?,
            frames: all(&self.frames)?,
            exemplar: self.exemplar.on_device(device)?,
        })
    }
}

impl FaceBatch {
    pub fn to_device(&self, device: Device) -> Result<FaceBatch> {
        Ok(FaceBatch {
            label: self.label.on_device(device)?,
            exemplar: self.exemplar.on_device(device)?,
            gt: self.gt.on_device(device)?,
            boxes: self.boxes.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vgg19::{Vgg19, Vgg19Spec};
    use crate::model::ModelConfig;

    /// On the CPU the move is a no-op that keeps every value (the GPU side runs in
    /// tests/cuda_pipeline.rs on a GPU machine).
    #[test]
    fn moving_to_the_cpu_keeps_values_and_shares_storage() {
        let cfg = ModelConfig::preset("tiny").unwrap();
        let vgg = Vgg19::new(Vgg19Spec::scaled(8), 1).unwrap();
        let mut t = Stage1Trainer::new(&cfg, 3, vgg).unwrap();
        let before: Vec<Tensor> = t.g_store.entries().iter().map(|e| e.var.value()).collect();
        t.to_device(Device::Cpu).unwrap();
        for (e, b) in t.g_store.entries().iter().zip(&before) {
            assert!(e.var.value().shares_storage(b), "{} was copied", e.name);
        }
        let batch = Stage1Batch {
            label: Tensor::zeros([1, 2, 4, 4]),
            exemplar: Tensor::ones([1, 3, 4, 4]),
            gt: Tensor::ones([1, 3, 4, 4]),
        };
        let moved = batch.to_device(Device::Cpu).unwrap();
        assert!(moved.label.shares_storage(&batch.label));
        assert!(moved.gt.shares_storage(&batch.gt));
    }
}

//! The three training stages of Algorithm 1 laid end to end on one iteration counter: stage 1
//! (correspondence + G + D), stage 2 (temporal G1/D1, stage 1 frozen), stage 3 (face G2/D2, the
//! main G frozen). Each stage has its own linear-decay schedule over its own length.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{GeneratorSide, ModelConfig};
use crate::nn::ParamStore;
use crate::tensor::Rng;
use crate::train_step::{FaceBatch, TemporalBatch};
use serde::{Deserialize, Serialize};

/// Iterations of each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    pub stage1: u64,
    pub temporal: u64,
    pub face: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Stage1,
    Temporal,
    Face,
}

impl Stage {
    /// The name in the loss log.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Stage1 => "stage1",
            Stage::Temporal => "temporal",
            Stage::Face => "face",
        }
    }
}

impl StagePlan {
    pub fn total(&self) -> u64 {
        self.stage1 + self.temporal + self.face
    }

    /// The stage of 0-based global iteration `it`, the iteration within it and the stage length.
    pub fn locate(&self, it: u64) -> Option<(Stage, u64, u64)> {
        let (t1, t2) = (self.stage1, self.stage1 + self.temporal);
        if it < t1 {
            Some((Stage::Stage1, it, self.stage1))
        } else if it < t2 {
            Some((Stage::Temporal, it - t1, self.temporal))
        } else if it < self.total() {
            Some((Stage::Face, it - t2, self.face))
        } else {
            None
        }
    }

    /// Whether the trainers of `stage` exist after `done` global iterations (a stage's
    /// networks are built when it starts and kept afterwards).
    pub fn started(&self, stage: Stage, done: u64) -> bool {
        match stage {
            Stage::Stage1 => true,
            Stage::Temporal => self.temporal > 0 && done >= self.stage1,
            Stage::Face => self.face > 0 && done >= self.stage1 + self.temporal,
        }
    }
}

/// A new store holding a copy of the trained generator side of `src` (values are shared
/// copy-on-write tensors, so this is cheap), for a later stage to freeze.
pub fn copy_generator_store(src: &ParamStore, cfg: &ModelConfig) -> Result<ParamStore> {
    let store = ParamStore::new(src.seed());
    GeneratorSide::new(&store.root(), cfg)?;
    // On the source's device first, so the copy shares its buffers instead of a host round trip.
    store.to_device(src.device())?;
    for e in src.entries() {
        store.set(&e.name, e.var.value())?;
    }
    Ok(store)
}

/// The temporal-stage batch of `indices`: the window of l frames ending at each.
pub fn temporal_batch(
    data: &Dataset,
    indices: &[usize],
    l: usize,
    rng: &mut Rng,
) -> Result<TemporalBatch> {
    let b = data.temporal_batch(indices, l, rng)?;
    Ok(TemporalBatch {
        labels: b.labels,
        frames: b.frames,
        exemplar: b.exemplar,
    })
}

/// Train frames whose pose shows a head (a face box of `crop` pixels exists).
pub fn face_frames(data: &Dataset, crop: usize) -> Vec<usize> {
    data.train_indices()
        .iter()
        .copied()
        .filter(|&i| data.face_box(i, crop).is_some())
        .collect()
}

/// The face-stage batch: `picks` index into `with_face` (the frames with a face box).
pub fn face_batch(
    data: &Dataset,
    with_face: &[usize],
    picks: &[usize],
    crop: usize,
    rng: &mut Rng,
) -> Result<FaceBatch> {
    if with_face.is_empty() {
        return Err(Error::invalid(
            "train",
            "the face stage needs frames whose pose shows a head keypoint (nose, eyes or ears), \
             and no training frame has one; pass --face-iters 0",
        ));
    }
    let idx: Vec<usize> = picks
        .iter()
        .map(|&p| with_face[p % with_face.len()])
        .collect();
    let boxes = idx
        .iter()
        .map(|&i| {
            data.face_box(i, crop).map(|f| f.crop).ok_or_else(|| {
                Error::invalid(
                    "train",
                    format!("frame {i} has no face box of {crop} pixels"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let b = data.stage1_batch(&idx, rng)?;
    Ok(FaceBatch {
        label: b.label,
        exemplar: b.exemplar,
        gt: b.gt,
        boxes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_locates_every_iteration() {
        let p = StagePlan {
            stage1: 3,
            temporal: 2,
            face: 1,
        };
        let got: Vec<_> = (0..7).map(|i| p.locate(i)).collect();
        assert_eq!(got[0], Some((Stage::Stage1, 0, 3)));
        assert_eq!(got[2], Some((Stage::Stage1, 2, 3)));
        assert_eq!(got[3], Some((Stage::Temporal, 0, 2)));
        assert_eq!(got[5], Some((Stage::Face, 0, 1)));
        assert_eq!(got[6], None);
        assert!(!p.started(Stage::Temporal, 2) && p.started(Stage::Temporal, 3));
        assert!(p.started(Stage::Face, 5) && !p.started(Stage::Face, 4));
        let none = StagePlan {
            stage1: 3,
            ..StagePlan::default()
        };
        assert!(!none.started(Stage::Temporal, 10));
    }
}

//! Training samples over one clip: the held-out split, seeded epoch shuffles, exemplar frames
//! (another frame of the same video, MODEL.md §5), stage-1 batches, temporal windows of l frames
//! and face crops.

use rayon::prelude::*;

use super::clip::Clip;
use crate::error::{Error, Result};
use crate::pose::{face_box, render_label, FaceBox, LabelKind, Pose};
use crate::tensor::{Rng, Tensor};
use crate::train_step::Stage1Batch;

pub use super::patch::{crop_tensor, paste_tensor};

/// The inputs of one temporal (G1/D1) step for a batch of B samples.
pub struct TemporalBatch {
    /// l tensors [B, C, S, S], oldest frame first.
    pub labels: Vec<Tensor>,
    /// l tensors [B, 3, S, S] in [-1, 1], oldest first.
    pub frames: Vec<Tensor>,
    /// [B, 3, S, S]: one exemplar per sample, another train frame.
    pub exemplar: Tensor,
}

/// A clip split into train and held-out frames, with every label map rendered once.
pub struct Dataset {
    clip: Clip,
    kind: LabelKind,
    /// [C, S, S] per frame. Rendered up front and kept: at 256² a 21-channel label is 5.5 MB, so
    /// a few hundred frames cost a few GB at most, against re-rendering every label every step.
    labels: Vec<Tensor>,
    train: Vec<usize>,
    heldout: Vec<usize>,
}

/// A uniform integer in 0..bound (bound > 0), by the multiply-shift reduction of 64 random bits.
fn below(rng: &mut Rng, bound: usize) -> usize {
    ((rng.next_u64() as u128 * bound as u128) >> 64) as usize
}

impl Dataset {
    /// Splits `clip` into train frames and held-out frames (the last ceil(n·holdout_fraction),
    /// keeping at least one train frame) and renders every frame's `label` map.
    pub fn new(clip: Clip, label: LabelKind, holdout_fraction: f32) -> Result<Dataset> {
        const OP: &str = "Dataset::new";
        let n = clip.frames.len();
        if n < 2 {
            return Err(Error::invalid(
                OP,
                format!("a dataset needs at least 2 frames, the clip has {n}"),
            ));
        }
        if clip.poses.len() != n {
            return Err(Error::shape(
                OP,
                format!("{n} frames but {} poses", clip.poses.len()),
            ));
        }
        if !(0.0..1.0).contains(&holdout_fraction) {
            return Err(Error::invalid(
                OP,
                format!("holdout fraction {holdout_fraction} is not in [0, 1)"),
            ));
        }
        let size = clip.frames[0].size();
        if let Some(f) = clip.frames.iter().find(|f| f.size() != size) {
            return Err(Error::shape(
                OP,
                format!("frames of {:?} and {:?} in one clip", size, f.size()),
            ));
        }
        // Read the fraction as the decimal it was written as (0.2f32 is 0.2000000030 in f64, which
        // would make ceil(10 · 0.2) = 3), and forgive rounding noise in the product.
        let frac: f64 = holdout_fraction.to_string().parse().unwrap_or(0.0);
        let held = ((n as f64 * frac - 1e-9).ceil().max(0.0) as usize).min(n - 1);
        let (w, h) = (size.0 as usize, size.1 as usize);
        let labels = clip
            .poses
            .par_iter()
            .map(|p| {
                let m = render_label(p, label, h, w)?;
                Tensor::from_vec(m.data, vec![m.channels, h, w])
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Dataset {
            clip,
            kind: label,
            labels,
            train: (0..n - held).collect(),
            heldout: (n - held..n).collect(),
        })
    }

    /// Number of frames (train and held-out).
    pub fn len(&self) -> usize {
        self.clip.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.clip.frames.is_empty()
    }
    pub fn train_indices(&self) -> &[usize] {
        &self.train
    }
    pub fn heldout_indices(&self) -> &[usize] {
        &self.heldout
    }
    pub fn clip(&self) -> &Clip {
        &self.clip
    }
    pub fn label_kind(&self) -> LabelKind {
        self.kind
    }

    fn check_index(&self, op: &'static str, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::invalid(
                op,
                format!("frame {i} requested, the dataset has {}", self.len()),
            ));
        }
        Ok(())
    }

    /// The label map of frame `i`, [C, S, S].
    pub fn label(&self, i: usize) -> Result<Tensor> {
        self.check_index("Dataset::label", i)?;
        Ok(self.labels[i].clone())
    }

    /// Frame `i` as [3, S, S] with values byte/127.5 − 1 in [-1, 1] (`Frame::to_tensor`).
    pub fn image(&self, i: usize) -> Result<Tensor> {
        self.check_index("Dataset::image", i)?;
        self.clip.frames[i].to_tensor()
    }

    /// The train indices in a shuffled order that depends only on (seed, epoch): a Fisher-Yates
    /// shuffle driven by an `Rng` seeded from both.
    pub fn epoch_order(&self, seed: u64, epoch: usize) -> Vec<usize> {
        // Spread the epoch over all 64 bits so that nearby (seed, epoch) pairs do not collide.
        let mix = (epoch as u64 ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut rng = Rng::new(seed ^ mix.rotate_left(29));
        let mut order = self.train.clone();
        for k in (1..order.len()).rev() {
            order.swap(k, below(&mut rng, k + 1));
        }
        order
    }

    /// A uniformly random train frame other than `i` (`i` itself only when it is the sole train
    /// frame). `i` may be a held-out frame; then any train frame qualifies.
    pub fn pick_exemplar(&self, i: usize, rng: &mut Rng) -> usize {
        let n_train = self.train.len();
        // Train indices are 0..n_train: skip over `i` by shifting the draws at or above it.
        if i < n_train {
            if n_train == 1 {
                return i;
            }
            let k = below(rng, n_train - 1);
            if k < i {
                k
            } else {
                k + 1
            }
        } else {
            below(rng, n_train)
        }
    }

    /// The `l` frame indices ending at `i`, oldest first; before the clip start frame 0 repeats,
    /// so the window always has `l` entries.
    pub fn window(&self, i: usize, l: usize) -> Vec<usize> {
        (0..l).map(|k| (i + k + 1).saturating_sub(l)).collect()
    }

    /// Labels, exemplars (drawn with `rng`) and ground-truth frames of `indices`, stacked to [B, ..].
    pub fn stage1_batch(&self, indices: &[usize], rng: &mut Rng) -> Result<Stage1Batch> {
        self.check_batch("Dataset::stage1_batch", indices)?;
        let exemplars: Vec<usize> = indices
            .iter()
            .map(|&i| self.pick_exemplar(i, rng))
            .collect();
        Ok(Stage1Batch {
            label: stack(&self.labels_of(indices))?,
            exemplar: stack(&self.images_of(&exemplars)?)?,
            gt: stack(&self.images_of(indices)?)?,
        })
    }

    /// For each sample, the labels and frames of the window of `l` frames ending at it (oldest
    /// first, stacked per time step) and one exemplar frame.
    pub fn temporal_batch(
        &self,
        indices: &[usize],
        l: usize,
        rng: &mut Rng,
    ) -> Result<TemporalBatch> {
        const OP: &str = "Dataset::temporal_batch";
        self.check_batch(OP, indices)?;
        if l == 0 {
            return Err(Error::invalid(OP, "the window length l must be at least 1"));
        }
        let exemplars: Vec<usize> = indices
            .iter()
            .map(|&i| self.pick_exemplar(i, rng))
            .collect();
        let windows: Vec<Vec<usize>> = indices.iter().map(|&i| self.window(i, l)).collect();
        let mut labels = Vec::with_capacity(l);
        let mut frames = Vec::with_capacity(l);
        for t in 0..l {
            let at: Vec<usize> = windows.iter().map(|w| w[t]).collect();
            labels.push(stack(&self.labels_of(&at))?);
            frames.push(stack(&self.images_of(&at)?)?);
        }
        Ok(TemporalBatch {
            labels,
            frames,
            exemplar: stack(&self.images_of(&exemplars)?)?,
        })
    }

    /// The face box of frame `i` (see `sized_face_box`); `None` also for an index out of range.
    pub fn face_box(&self, i: usize, crop: usize) -> Option<FaceBox> {
        let (w, h) = self.clip.frames.get(i)?.size();
        sized_face_box(&self.clip.poses[i], w, h, crop)
    }

    fn check_batch(&self, op: &'static str, indices: &[usize]) -> Result<()> {
        if indices.is_empty() {
            return Err(Error::invalid(op, "empty batch"));
        }
        indices.iter().try_for_each(|&i| self.check_index(op, i))
    }

    fn labels_of(&self, indices: &[usize]) -> Vec<Tensor> {
        indices.iter().map(|&i| self.labels[i].clone()).collect()
    }

    fn images_of(&self, indices: &[usize]) -> Result<Vec<Tensor>> {
        indices
            .par_iter()
            .map(|&i| self.clip.frames[i].to_tensor())
            .collect()
    }
}

/// Stacks equally shaped CPU tensors [..] into [B, ..].
fn stack(items: &[Tensor]) -> Result<Tensor> {
    let first = items
        .first()
        .ok_or_else(|| Error::invalid("stack", "no tensors"))?;
    let mut dims = vec![items.len()];
    dims.extend_from_slice(first.dims());
    let mut data = Vec::with_capacity(items.len() * first.numel());
    for t in items {
        if t.dims() != first.dims() {
            return Err(Error::shape(
                "stack",
                format!("{:?} and {:?}", first.dims(), t.dims()),
            ));
        }
        data.extend_from_slice(t.cpu_data()?);
    }
    Tensor::from_vec(data, dims)
}

/// A `crop`×`crop` square centred on the mean of `pose`'s head keypoints in a `w`×`h` image,
/// shifted to lie inside it (training and transfer place face crops alike). `None` without a
/// head keypoint, or for a crop of 0 or larger than the image.
pub fn sized_face_box(pose: &Pose, w: u32, h: u32, crop: usize) -> Option<FaceBox> {
    let side = u32::try_from(crop).ok()?;
    if side == 0 || side > w.min(h) {
        return None;
    }
    let mut fb = face_box(pose, h, w)?;
    // Same placement rule as pose::face_box, with the requested side: pixel centres are at
    // integer coordinates, so `side` pixels centred on c start at c − (side − 1)/2.
    let place = |c: f32, limit: u32| -> i32 {
        let start = (c - (side as f32 - 1.0) / 2.0).round();
        start.clamp(0.0, (limit - side) as f32) as i32
    };
    fb.crop.x = place(fb.cx, w);
    fb.crop.y = place(fb.cy, h);
    fb.crop.w = side;
    fb.crop.h = side;
    Some(fb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::CropBox;
    use crate::synth::{generate, SynthOptions};
    use crate::video::FrameRate;

    const S: usize = 24;

    fn clip(n: usize) -> Clip {
        let opts = SynthOptions {
            width: S as u32,
            height: S as u32,
            frames: n,
            seed: 5,
            ..SynthOptions::default()
        };
        let (frames, poses) = generate(&opts).unwrap();
        Clip {
            frames,
            poses,
            crop: CropBox {
                x: 0,
                y: 0,
                w: S as u32,
                h: S as u32,
            },
            source_size: (S as u32, S as u32),
            fps: FrameRate::new(30, 1).unwrap(),
        }
    }

    fn data(n: usize, holdout: f32) -> Dataset {
        Dataset::new(clip(n), LabelKind::Paper, holdout).unwrap()
    }

    /// Sample `b` of a stacked [B, ..] tensor.
    fn sample(t: &Tensor, b: usize) -> Vec<f32> {
        let per = t.numel() / t.dims()[0];
        t.cpu_data().unwrap()[b * per..(b + 1) * per].to_vec()
    }

    #[test]
    fn split_sizes() {
        let d = data(10, 0.2);
        assert_eq!(d.len(), 10);
        assert_eq!(d.train_indices(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(d.heldout_indices(), &[8, 9]);
        // ceil(10 · 0.25) = 3; a fraction near 1 still leaves one train frame.
        assert_eq!(data(10, 0.25).heldout_indices().len(), 3);
        assert_eq!(data(10, 0.7).heldout_indices().len(), 7);
        assert_eq!(data(7, 0.3).heldout_indices().len(), 3);
        assert_eq!(data(10, 0.0).heldout_indices().len(), 0);
        assert_eq!(data(3, 0.99).train_indices(), &[0]);
        assert_eq!(data(2, 0.01).heldout_indices(), &[1]);
        for bad in [1.0, -0.1, f32::NAN] {
            assert!(
                Dataset::new(clip(4), LabelKind::Paper, bad).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            Dataset::new(clip(1), LabelKind::Paper, 0.0),
            Err(Error::Invalid { .. })
        ));
        let mut c = clip(3);
        c.poses.pop();
        assert!(matches!(
            Dataset::new(c, LabelKind::Paper, 0.0),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn labels_and_images_match_render_and_frames() {
        let d = Dataset::new(clip(3), LabelKind::Cocosnet, 0.0).unwrap();
        let l = d.label(1).unwrap();
        assert_eq!(l.dims(), &[20, S, S]);
        let want = render_label(&d.clip().poses[1], LabelKind::Cocosnet, S, S).unwrap();
        assert_eq!(l.cpu_data().unwrap(), &want.data[..]);
        let img = d.image(2).unwrap();
        assert_eq!(img.dims(), &[3, S, S]);
        assert_eq!(
            img.cpu_data().unwrap(),
            d.clip().frames[2].to_tensor().unwrap().cpu_data().unwrap()
        );
        assert!(d.label(3).is_err() && d.image(3).is_err());
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let d = data(12, 0.25);
        let a = d.epoch_order(7, 0);
        assert_eq!(a, d.epoch_order(7, 0));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, d.train_indices());
        assert_ne!(a, d.train_indices(), "not shuffled");
        assert_ne!(a, d.epoch_order(7, 1));
        assert_ne!(a, d.epoch_order(8, 0));
        // Every epoch of a few is a distinct permutation.
        let epochs: Vec<Vec<usize>> = (0..6).map(|e| d.epoch_order(7, e)).collect();
        for i in 0..6 {
            for j in i + 1..6 {
                assert_ne!(epochs[i], epochs[j], "epochs {i} and {j}");
            }
        }
    }

    #[test]
    fn exemplar_is_another_train_frame_drawn_uniformly() {
        let d = data(6, 0.3); // train 0..4, held out 4, 5
        let mut rng = Rng::new(1);
        for i in 0..6 {
            let mut seen = [0usize; 6];
            for _ in 0..400 {
                let e = d.pick_exemplar(i, &mut rng);
                assert!(e != i && e < 4, "frame {i} got exemplar {e}");
                seen[e] += 1;
            }
            let others = if i < 4 { 3 } else { 4 };
            let expected = 400 / others;
            for (e, &c) in seen.iter().enumerate().take(4).filter(|&(e, _)| e != i) {
                assert!(c > expected / 2, "frame {i}: exemplar {e} drawn {c} times");
            }
        }
        let lone = data(2, 0.5); // one train frame
        assert_eq!(lone.pick_exemplar(0, &mut rng), 0);
        assert_eq!(lone.pick_exemplar(1, &mut rng), 0);
    }

    #[test]
    fn windows_clamp_at_the_clip_start() {
        let d = data(8, 0.0);
        assert_eq!(d.window(5, 3), vec![3, 4, 5]);
        assert_eq!(d.window(1, 4), vec![0, 0, 0, 1]);
        assert_eq!(d.window(0, 2), vec![0, 0]);
        assert_eq!(d.window(6, 1), vec![6]);
        assert!(d.window(3, 0).is_empty());
    }

    #[test]
    fn stage1_and_temporal_batches_stack_the_right_frames() {
        let d = data(7, 0.0);
        let mut rng = Rng::new(3);
        let idx = [4, 0, 4];
        let b = d.stage1_batch(&idx, &mut rng).unwrap();
        assert_eq!(b.label.dims(), &[3, 21, S, S]);
        assert_eq!(b.exemplar.dims(), &[3, 3, S, S]);
        assert_eq!(b.gt.dims(), &[3, 3, S, S]);
        let images: Vec<Vec<f32>> = (0..7)
            .map(|i| d.image(i).unwrap().to_vec().unwrap())
            .collect();
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(sample(&b.label, k), d.label(i).unwrap().to_vec().unwrap());
            assert_eq!(sample(&b.gt, k), images[i]);
            let ex = sample(&b.exemplar, k);
            let j = images
                .iter()
                .position(|im| *im == ex)
                .expect("exemplar is a frame");
            assert_ne!(j, i);
        }
        let t = d.temporal_batch(&[1, 5], 3, &mut rng).unwrap();
        assert_eq!((t.labels.len(), t.frames.len()), (3, 3));
        assert_eq!(t.exemplar.dims(), &[2, 3, S, S]);
        for (k, &i) in [1usize, 5].iter().enumerate() {
            for (step, &f) in d.window(i, 3).iter().enumerate() {
                assert_eq!(t.labels[step].dims(), &[2, 21, S, S]);
                assert_eq!(sample(&t.frames[step], k), images[f]);
                assert_eq!(
                    sample(&t.labels[step], k),
                    d.label(f).unwrap().to_vec().unwrap()
                );
            }
        }
        assert!(d.stage1_batch(&[], &mut rng).is_err());
        assert!(d.stage1_batch(&[7], &mut rng).is_err());
        assert!(d.temporal_batch(&[1], 0, &mut rng).is_err());
    }

    #[test]
    fn face_box_uses_the_requested_side_and_stays_inside() {
        let d = data(3, 0.0);
        let f = d.face_box(1, 6).expect("the dancer has a head");
        assert_eq!((f.crop.w, f.crop.h), (6, 6));
        assert!(f.crop.x as usize + 6 <= S && f.crop.y as usize + 6 <= S);
        // Centred on the head point mean unless clamped.
        let want_x = (f.cx - 2.5).round().clamp(0.0, (S - 6) as f32) as i32;
        assert_eq!(f.crop.x, want_x);
        assert!(d.face_box(1, 0).is_none());
        assert!(d.face_box(1, S + 1).is_none());
        assert!(d.face_box(3, 6).is_none());
        assert_eq!(
            d.face_box(0, S).unwrap().crop,
            CropBox {
                x: 0,
                y: 0,
                w: S as u32,
                h: S as u32
            }
        );
    }
}

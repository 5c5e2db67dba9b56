//! `engine transfer`: the source video's motion onto the target person of a trained run.
//!
//! Source frames and poses are cropped to the model size, the poses are normalised against the
//! target's statistics stored in the checkpoint (MODEL.md §1 step 3), rendered as label maps and
//! translated with a target exemplar frame (by G1, conditioned on the previous outputs, when the
//! run trained the temporal stage), faces are refined by G2 when the run trained the face stage,
//! and the frames are encoded as they are made.

pub mod demo;

use crate::autograd::no_grad;
use crate::data::sized_face_box;
use crate::data::{load_clip, ClipOptions, CropMode};
use crate::error::{Error, Result};
use crate::model::{
    crop_faces, paste_faces, FaceGenerator, GeneratorSide, ModelConfig, TemporalGenerator,
};
use crate::nn::{checkpoint as store_io, ParamStore};
use crate::pose::openpose_json::EmptyFrame;
use crate::pose::render::stick_to_rgb8;
use crate::pose::{render_label, LabelMap, Normalization, NormalizationKind, Pose, ReadOptions};
use crate::tensor::{Device, Tensor};
use crate::train::checkpoint::{self, TargetData};
use crate::video::{Frame, Sink};
use crate::Var;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which stored target frame serves as the exemplar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExemplarChoice {
    /// The stored candidate showing the most keypoints (one exemplar: no flicker).
    Auto,
    /// Candidate k.
    Index(usize),
    /// Per frame, the candidate whose pose is nearest to the normalised source pose.
    Nearest,
}

#[derive(Clone, Debug)]
pub struct TransferOptions {
    pub source: PathBuf,
    pub source_poses: PathBuf,
    /// A run folder or a checkpoint folder.
    pub model: PathBuf,
    /// A video path (.mp4, …) or a folder for PNG frames.
    pub out: PathBuf,
    pub crop: CropMode,
    pub max_frames: Option<usize>,
    /// Source frames whose pose file holds no person get an empty label instead of an error.
    pub allow_missing_person: bool,
    /// Overrides the checkpoint config's normalisation.
    pub normalization: Option<NormalizationKind>,
    pub exemplar: ExemplarChoice,
    /// Write source | label | output side by side instead of the output alone.
    pub side_by_side: bool,
    pub batch: usize,
    pub overwrite: bool,
    /// Where the networks run (`Cpu` or `Cuda`; resolved, not `Auto`).
    pub device: Device,
}

#[derive(Clone, Debug)]
pub struct TransferSummary {
    pub out: PathBuf,
    pub frames: usize,
    pub writer: String,
    /// Seconds spent generating (model work only) and in total.
    pub generate_seconds: f64,
    pub total_seconds: f64,
    pub checkpoint: PathBuf,
    pub iteration: u64,
    /// The networks used, e.g. `G + G1 (temporal) + G2 (face)`.
    pub networks: String,
}

/// A trained generator side and what it needs from the target, plus the temporal generator G1
/// and the face generator G2 when the run reached stages 2 and 3.
pub struct TargetModel {
    pub cfg: ModelConfig,
    pub gen: GeneratorSide,
    pub temporal: Option<TemporalGenerator>,
    pub face: Option<FaceGenerator>,
    pub target: TargetData,
    pub checkpoint: PathBuf,
    pub iteration: u64,
    /// Where the networks are (`to_device` moves them).
    device: Device,
    _stores: Vec<ParamStore>,
}

/// Loads the optional network of a later stage from `dir/file`, when the run has it.
fn load_optional<T>(
    dir: &Path,
    file: &str,
    build: impl FnOnce(&ParamStore) -> Result<T>,
    stores: &mut Vec<ParamStore>,
) -> Result<Option<T>> {
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(None);
    }
    let store = ParamStore::new(0);
    let net = build(&store)?;
    store_io::load(&store, &path)?;
    stores.push(store);
    Ok(Some(net))
}

impl TargetModel {
    /// Loads the latest checkpoint of a run folder (or a checkpoint folder).
    pub fn load(path: &Path) -> Result<TargetModel> {
        let dir = checkpoint::resolve(path)?;
        let state = checkpoint::read_state(&dir)?;
        let cfg = state.model_config(&dir)?;
        let store = ParamStore::new(0);
        let gen = GeneratorSide::new(&store.root(), &cfg)?;
        let file = dir.join(checkpoint::GENERATOR_FILE);
        store_io::load(&store, &file)?;
        let mut stores = vec![store];
        let temporal = load_optional(
            &dir,
            checkpoint::TEMPORAL_GENERATOR_FILE,
            |st| TemporalGenerator::new(&st.root(), &cfg),
            &mut stores,
        )?;
        let face = load_optional(
            &dir,
            checkpoint::FACE_GENERATOR_FILE,
            |st| FaceGenerator::new(&st.root(), &cfg),
            &mut stores,
        )?;
        let target = checkpoint::read_target(&dir)?;
        let s = cfg.image_size;
        if target.exemplars.dims()[2..] != [s, s] {
            return Err(Error::file(
                dir.join(checkpoint::TARGET_FILE),
                format!(
                    "exemplars are {:?}, the model works at {s}×{s}",
                    target.exemplars.dims()
                ),
            ));
        }
        Ok(TargetModel {
            cfg,
            gen,
            temporal,
            face,
            target,
            checkpoint: dir,
            iteration: state.iteration,
            device: Device::Cpu,
            _stores: stores,
        })
    }

    /// Moves every network to `device` (`Cpu` or `Cuda`); `generate` then runs there.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        for store in &self._stores {
            store.to_device(device)?;
        }
        self.device = device;
        Ok(())
    }

    /// Generates consecutive frames for `labels` [B, C, S, S] with exemplars [B, 3, S, S] and
    /// the poses the labels were drawn from. With G1, frames are made in order, each conditioned
    /// on the previous outputs kept in `history` across calls; with G2, each face is refined.
    pub fn generate(
        &self,
        labels: &Tensor,
        exemplars: &Tensor,
        poses: &[Pose],
        history: &mut Vec<Var>,
    ) -> Result<Tensor> {
        let host = no_grad(|| {
            let label = Var::constant(labels.on_device(self.device)?);
            let exemplar = Var::constant(exemplars.on_device(self.device)?);
            let frames = match &self.temporal {
                None => self.gen.forward(&label, &exemplar, false)?.fake,
                Some(g1) => {
                    let warped = self.gen.corr.forward(&label, &exemplar, false)?.warped;
                    let keep = self.cfg.temporal_window.saturating_sub(1);
                    let mut outs = Vec::with_capacity(poses.len());
                    for k in 0..poses.len() {
                        let (w, l) = (warped.narrow(0, k, 1)?, label.narrow(0, k, 1)?);
                        let out = g1.forward(&w, &l, history, false)?;
                        history.push(out.clone());
                        let extra = history.len().saturating_sub(keep);
                        history.drain(..extra);
                        outs.push(out);
                    }
                    Var::concat(&outs.iter().collect::<Vec<_>>(), 0)?
                }
            };
            match &self.face {
                None => Ok(frames.value()),
                Some(g2) => self.refine_faces(g2, &label, &frames, poses),
            }
        })?;
        // The frames are encoded on the host.
        host.on_device(Device::Cpu)
    }

    /// Pastes G2's refinement into every frame whose pose shows a head.
    fn refine_faces(
        &self,
        g2: &FaceGenerator,
        label: &Var,
        frames: &Var,
        poses: &[Pose],
    ) -> Result<Tensor> {
        let s = self.cfg.image_size as u32;
        let mut out = Vec::with_capacity(poses.len());
        for (k, pose) in poses.iter().enumerate() {
            let frame = frames.narrow(0, k, 1)?;
            let Some(fb) = sized_face_box(pose, s, s, self.cfg.face_crop) else {
                out.push(frame);
                continue;
            };
            let boxes = [fb.crop];
            let l = crop_faces(&label.narrow(0, k, 1)?, &boxes)?;
            let refined = g2.forward(&l, &crop_faces(&frame, &boxes)?, false)?;
            out.push(paste_faces(&frame, &refined, &boxes)?);
        }
        Ok(Var::concat(&out.iter().collect::<Vec<_>>(), 0)?.value())
    }

    /// The networks `generate` uses.
    pub fn networks(&self) -> String {
        let mut n = vec!["G"];
        if self.temporal.is_some() {
            n.push("G1 (temporal)");
        }
        if self.face.is_some() {
            n.push("G2 (face)");
        }
        n.join(" + ")
    }

    fn exemplar(&self, k: usize) -> Result<Tensor> {
        self.target.exemplars.narrow(0, k, 1)
    }
}

/// Mean distance over keypoints present in both poses (infinite when none are shared).
fn pose_distance(a: &Pose, b: &Pose) -> f32 {
    let (mut sum, mut n) = (0.0f32, 0);
    for (p, q) in a.keypoints.iter().zip(&b.keypoints) {
        if p.is_present() && q.is_present() {
            sum += ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
            n += 1;
        }
    }
    if n == 0 {
        f32::INFINITY
    } else {
        sum / n as f32
    }
}

/// The exemplar index for `pose` under `choice`.
fn pick_exemplar(target: &TargetData, choice: ExemplarChoice, pose: &Pose) -> Result<usize> {
    let k = target.exemplar_poses.len();
    match choice {
        ExemplarChoice::Index(i) if i < k => Ok(i),
        ExemplarChoice::Index(i) => Err(Error::invalid(
            "transfer",
            format!(
                "--exemplar {i}: the checkpoint stores {k} exemplars (0..{})",
                k - 1
            ),
        )),
        ExemplarChoice::Auto => Ok((0..k)
            .max_by_key(|&i| (target.exemplar_poses[i].num_present(), usize::MAX - i))
            .unwrap_or(0)),
        ExemplarChoice::Nearest => Ok((0..k)
            .min_by(|&i, &j| {
                let (di, dj) = (
                    pose_distance(&target.exemplar_poses[i], pose),
                    pose_distance(&target.exemplar_poses[j], pose),
                );
                di.total_cmp(&dj)
            })
            .unwrap_or(0)),
    }
}

/// Renders the labels of `poses`: the maps (for the side-by-side stick figure) and one
/// [B, C, S, S] tensor of them.
fn labels_for(cfg: &ModelConfig, poses: &[Pose]) -> Result<(Vec<LabelMap>, Tensor)> {
    let s = cfg.image_size;
    let maps = poses
        .iter()
        .map(|p| render_label(p, cfg.label, s, s))
        .collect::<Result<Vec<_>>>()?;
    let data: Vec<f32> = maps.iter().flat_map(|m| m.data.iter().copied()).collect();
    let t = Tensor::from_vec(data, vec![poses.len(), cfg.label_channels(), s, s])?;
    Ok((maps, t))
}

/// Places frames side by side (all the same height).
fn hstack(frames: &[&Frame]) -> Result<Frame> {
    let h = frames[0].height();
    let w: u32 = frames.iter().map(|f| f.width()).sum();
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        for f in frames {
            let row = 3 * f.width() as usize;
            data.extend_from_slice(&f.data()[y * row..(y + 1) * row]);
        }
    }
    Frame::new(w, h, data)
}

/// Runs the transfer; `observe(done, total)` hears every batch.
pub fn transfer(
    o: &TransferOptions,
    observe: &mut dyn FnMut(usize, usize),
) -> Result<TransferSummary> {
    let began = Instant::now();
    if o.batch == 0 {
        return Err(Error::invalid("transfer", "--batch must be at least 1"));
    }
    let mut model = TargetModel::load(&o.model)?;
    model.to_device(o.device)?;
    let cfg = &model.cfg;
    let s = cfg.image_size;
    let clip = load_clip(
        &o.source,
        &o.source_poses,
        &ClipOptions {
            size: s as u32,
            crop: o.crop,
            max_frames: o.max_frames,
            read: ReadOptions {
                empty: if o.allow_missing_person {
                    EmptyFrame::AllMissing
                } else {
                    EmptyFrame::Error
                },
                ..ReadOptions::default()
            },
            ..ClipOptions::default()
        },
    )?;
    let kind = o.normalization.unwrap_or(cfg.pose_normalization);
    let norm = Normalization::fit(kind, &clip.poses, &model.target.poses)?;
    let poses = norm.apply(&clip.poses);
    let width = if o.side_by_side {
        3 * s as u32
    } else {
        s as u32
    };
    let mut sink = Sink::create(&o.out, width, s as u32, clip.fps, o.overwrite)?;
    let mut generate_seconds = 0.0;
    let mut history = Vec::new();
    let n = poses.len();
    for start in (0..n).step_by(o.batch) {
        let chunk = &poses[start..(start + o.batch).min(n)];
        let (maps, labels) = labels_for(cfg, chunk)?;
        let ex = chunk
            .iter()
            .map(|p| model.exemplar(pick_exemplar(&model.target, o.exemplar, p)?))
            .collect::<Result<Vec<_>>>()?;
        let exemplars = Tensor::concat(&ex.iter().collect::<Vec<_>>(), 0)?;
        let t0 = Instant::now();
        let out = model.generate(&labels, &exemplars, chunk, &mut history)?;
        generate_seconds += t0.elapsed().as_secs_f64();
        for k in 0..chunk.len() {
            let frame = Frame::from_tensor(&out.narrow(0, k, 1)?)?;
            let frame = if o.side_by_side {
                let stick = Frame::new(s as u32, s as u32, stick_to_rgb8(&maps[k]))?;
                hstack(&[&clip.frames[start + k], &stick, &frame])?
            } else {
                frame
            };
            sink.push(&frame)?;
        }
        observe((start + o.batch).min(n), n);
    }
    let (out, frames, writer) = sink.finish()?;
    Ok(TransferSummary {
        out,
        frames,
        writer,
        generate_seconds,
        total_seconds: began.elapsed().as_secs_f64(),
        checkpoint: model.checkpoint.clone(),
        iteration: model.iteration,
        networks: model.networks(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::Keypoint;

    fn pose_at(dx: f32, present: usize) -> Pose {
        let mut p = Pose::missing();
        for (i, k) in p.keypoints.iter_mut().enumerate().take(present) {
            *k = Keypoint::new(10.0 + i as f32 + dx, 20.0 + i as f32, 1.0);
        }
        p
    }

    #[test]
    fn exemplar_choices() {
        let target = TargetData {
            exemplars: Tensor::zeros(vec![3, 3, 4, 4]),
            exemplar_poses: vec![pose_at(0.0, 10), pose_at(30.0, 18), pose_at(5.0, 18)],
            poses: vec![],
        };
        let src = pose_at(4.0, 18);
        assert_eq!(
            pick_exemplar(&target, ExemplarChoice::Auto, &src).unwrap(),
            1
        );
        assert_eq!(
            pick_exemplar(&target, ExemplarChoice::Nearest, &src).unwrap(),
            2
        );
        assert_eq!(
            pick_exemplar(&target, ExemplarChoice::Index(0), &src).unwrap(),
            0
        );
        assert!(pick_exemplar(&target, ExemplarChoice::Index(3), &src).is_err());
        assert!(pose_distance(&Pose::missing(), &src).is_infinite());
    }

    #[test]
    fn hstack_places_frames_in_order() {
        let a = Frame::filled(2, 2, [1, 1, 1]).unwrap();
        let b = Frame::filled(3, 2, [9, 9, 9]).unwrap();
        let c = hstack(&[&a, &b]).unwrap();
        assert_eq!(c.size(), (5, 2));
        assert_eq!(c.pixel(1, 1), Some([1, 1, 1]));
        assert_eq!(c.pixel(2, 0), Some([9, 9, 9]));
    }
}

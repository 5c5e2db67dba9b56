//! One training session: the data, the trainers of the stages reached so far, the loss log, and
//! the loop that steps them, writes sample sheets and checkpoints.

use super::checkpoint::{self as ckpt, RunState, TargetData};
use super::kernel_profile;
use super::loss_log::LossLog;
use super::run_dir::RunDir;
use super::sheet::{self, Column};
use super::stages::{self, Stage, StagePlan};
use super::{build_vgg, Progress, TrainOptions, TrainSummary};
use crate::autograd::no_grad;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::nn::checkpoint as store_io;
use crate::nn::safetensors_io::Metadata;
use crate::nn::ParamStore;
use crate::optim::{Adam, LinearDecay};
use crate::tensor::{Rng, Tensor};
use crate::train_step::{FaceTrainer, LossTerms, Stage1Trainer, TemporalTrainer};
use crate::Var;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub(super) struct Session {
    pub opts: TrainOptions,
    pub run: RunDir,
    pub cfg: ModelConfig,
    pub data: Dataset,
    pub state: RunState,
    pub log: LossLog,
    pub stage1: Stage1Trainer,
    pub temporal: Option<TemporalTrainer>,
    pub face: Option<FaceTrainer>,
    /// What transfer needs from the target, the same in every checkpoint of the session.
    pub target: TargetData,
    /// Training frames with a face box (the face stage samples from them).
    pub with_face: Vec<usize>,
}

/// The four files of one stage's trainer in a checkpoint folder.
struct StageFiles {
    g: &'static str,
    d: &'static str,
    g_adam: &'static str,
    d_adam: &'static str,
}

const STAGE1_FILES: StageFiles = StageFiles {
    g: ckpt::GENERATOR_FILE,
    d: ckpt::DISCRIMINATOR_FILE,
    g_adam: ckpt::G_ADAM_FILE,
    d_adam: ckpt::D_ADAM_FILE,
};
const TEMPORAL_FILES: StageFiles = StageFiles {
    g: ckpt::TEMPORAL_GENERATOR_FILE,
    d: "temporal_discriminator.safetensors",
    g_adam: "temporal_g_adam.safetensors",
    d_adam: "temporal_d_adam.safetensors",
};
const FACE_FILES: StageFiles = StageFiles {
    g: ckpt::FACE_GENERATOR_FILE,
    d: "face_discriminator.safetensors",
    g_adam: "face_g_adam.safetensors",
    d_adam: "face_d_adam.safetensors",
};

/// The stores and optimisers of one stage, borrowed for saving or loading.
struct StageParts<'a> {
    g: &'a ParamStore,
    d: &'a ParamStore,
    g_opt: &'a mut Adam,
    d_opt: &'a mut Adam,
}

fn save_parts(
    dir: &Path,
    f: &StageFiles,
    p: StageParts<'_>,
    cfg: &str,
    meta: &Metadata,
) -> Result<()> {
    store_io::save_with_metadata(p.g, dir.join(f.g), cfg, meta)?;
    store_io::save_with_metadata(p.d, dir.join(f.d), cfg, meta)?;
    p.g_opt.save(dir.join(f.g_adam))?;
    p.d_opt.save(dir.join(f.d_adam))
}

fn load_parts(dir: &Path, f: &StageFiles, p: StageParts<'_>) -> Result<()> {
    store_io::load(p.g, dir.join(f.g))?;
    store_io::load(p.d, dir.join(f.d))?;
    p.g_opt.load(dir.join(f.g_adam))?;
    p.d_opt.load(dir.join(f.d_adam))
}

macro_rules! parts {
    ($t:expr) => {
        StageParts {
            g: &$t.g_store,
            d: &$t.d_store,
            g_opt: &mut $t.g_opt,
            d_opt: &mut $t.d_opt,
        }
    };
}

/// Evenly spaced training frames as exemplar candidates for transfer.
pub(super) fn target_data(data: &Dataset, k: usize) -> Result<TargetData> {
    let train = data.train_indices();
    let k = k.min(train.len());
    let picks: Vec<usize> = (0..k).map(|j| train[j * train.len() / k]).collect();
    let images = picks
        .iter()
        .map(|&i| {
            let x = data.image(i)?;
            let d = x.dims().to_vec();
            x.reshape([1, d[0], d[1], d[2]])
        })
        .collect::<Result<Vec<_>>>()?;
    let clip = data.clip();
    Ok(TargetData {
        exemplars: Tensor::concat(&images.iter().collect::<Vec<_>>(), 0)?,
        exemplar_poses: picks.iter().map(|&i| clip.poses[i]).collect(),
        poses: train.iter().map(|&i| clip.poses[i]).collect(),
    })
}

/// The batch of 0-based iteration `it`: a walk through per-epoch shuffles of `n` items, so
/// resuming at any iteration gives the same batches as an uninterrupted run.
fn walk(data: &Dataset, seed: u64, batch: usize, it: u64) -> Vec<usize> {
    let n = data.train_indices().len();
    let mut cached: Option<(usize, Vec<usize>)> = None;
    (0..batch)
        .map(|k| {
            let global = it as usize * batch + k;
            let epoch = global / n;
            if cached.as_ref().map(|c| c.0) != Some(epoch) {
                cached = Some((epoch, data.epoch_order(seed, epoch)));
            }
            cached.as_ref().map(|c| c.1[global % n]).unwrap_or(0)
        })
        .collect()
}

impl Session {
    fn plan(&self) -> StagePlan {
        self.state.plan
    }

    /// Builds the trainers of the later stages that `done` iterations have reached.
    pub fn ensure_stages(&mut self, done: u64) -> Result<()> {
        let (plan, seed) = (self.plan(), self.state.seed);
        if plan.started(Stage::Temporal, done) && self.temporal.is_none() {
            let frozen = stages::copy_generator_store(&self.stage1.g_store, &self.cfg)?;
            let vgg = build_vgg(&self.state.vgg, seed ^ 0x766767)?;
            let mut t = TemporalTrainer::new(&self.cfg, frozen, seed ^ 0x7e, vgg)?;
            t.to_device(self.opts.device)?;
            self.temporal = Some(t);
        }
        if plan.started(Stage::Face, done) && self.face.is_none() {
            let frozen = stages::copy_generator_store(&self.stage1.g_store, &self.cfg)?;
            let vgg = build_vgg(&self.state.vgg, seed ^ 0x766767)?;
            let mut f = FaceTrainer::new(&self.cfg, frozen, seed ^ 0xfa, vgg)?;
            f.to_device(self.opts.device)?;
            self.face = Some(f);
        }
        Ok(())
    }

    pub fn save_checkpoint(&mut self, iteration: u64) -> Result<PathBuf> {
        let dir = self.run.begin_save()?;
        let cfg = self.cfg.to_json()?;
        let mut meta = Metadata::new();
        meta.insert("iteration".into(), iteration.to_string());
        save_parts(&dir, &STAGE1_FILES, parts!(self.stage1), &cfg, &meta)?;
        if let Some(t) = &mut self.temporal {
            save_parts(&dir, &TEMPORAL_FILES, parts!(t), &cfg, &meta)?;
        }
        if let Some(f) = &mut self.face {
            save_parts(&dir, &FACE_FILES, parts!(f), &cfg, &meta)?;
        }
        ckpt::write_target(&dir, &self.target)?;
        self.state.iteration = iteration;
        ckpt::write_state(&dir, &self.state)?;
        self.run.commit_save()
    }

    /// Loads every stage the checkpoint's iteration has reached. A stage that starts exactly at
    /// `done` (e.g. one a resumed plan adds after a finished stage 1) has no files yet and starts
    /// fresh; one that ran must have them.
    pub fn load_checkpoint(&mut self, dir: &Path, done: u64) -> Result<()> {
        load_parts(dir, &STAGE1_FILES, parts!(self.stage1))?;
        self.ensure_stages(done)?;
        let plan = self.plan();
        let ran = |start: u64| done > start;
        if let Some(t) = &mut self.temporal {
            if ran(plan.stage1) || dir.join(TEMPORAL_FILES.g).is_file() {
                load_parts(dir, &TEMPORAL_FILES, parts!(t))?;
            }
        }
        if let Some(f) = &mut self.face {
            if ran(plan.stage1 + plan.temporal) || dir.join(FACE_FILES.g).is_file() {
                load_parts(dir, &FACE_FILES, parts!(f))?;
            }
        }
        Ok(())
    }

    /// Up to 4 held-out frames (training frames when nothing is held out).
    fn sheet_indices(&self) -> Vec<usize> {
        let pool = match self.data.heldout_indices() {
            [] => self.data.train_indices(),
            h => h,
        };
        pool.iter().copied().take(4).collect()
    }

    fn write_samples(&self, stage: Stage, iteration: u64) -> Result<PathBuf> {
        let idx = self.sheet_indices();
        let mut rng = Rng::new(self.state.seed ^ 0x5a3_91e5);
        let path = self.run.samples().join(format!("iter_{iteration:07}.png"));
        match stage {
            Stage::Stage1 => {
                let b = self
                    .data
                    .stage1_batch(&idx, &mut rng)?
                    .to_device(self.opts.device)?;
                let out = no_grad(|| {
                    self.stage1.gen.forward(
                        &Var::constant(b.label.clone()),
                        &Var::constant(b.exemplar.clone()),
                        false,
                    )
                })?;
                let (warped, fake) = (out.corr.warped.value(), out.fake.value());
                sheet::write_sheet(
                    &path,
                    &[
                        Column::Label("label", &b.label),
                        Column::Image("exemplar", &b.exemplar),
                        Column::Image("warped", &warped),
                        Column::Image("output", &fake),
                        Column::Image("truth", &b.gt),
                    ],
                )?;
            }
            Stage::Temporal => self.temporal_sheet(&path, &idx, &mut rng)?,
            Stage::Face => self.face_sheet(&path, &mut rng)?,
        }
        Ok(path)
    }

    /// label | previous output | output | truth, for the last frame of each window.
    fn temporal_sheet(&self, path: &Path, idx: &[usize], rng: &mut Rng) -> Result<()> {
        let Some(t) = &self.temporal else {
            return Ok(());
        };
        let l = self.cfg.temporal_window;
        let b = stages::temporal_batch(&self.data, idx, l, rng)?.to_device(self.opts.device)?;
        let outs = no_grad(|| {
            let ex = Var::constant(b.exemplar.clone());
            let mut outs: Vec<Var> = Vec::new();
            for label in &b.labels {
                let label = Var::constant(label.clone());
                let warped = t.stage1.corr.forward(&label, &ex, false)?.warped;
                let prev = outs[outs.len().saturating_sub(l - 1)..].to_vec();
                outs.push(t.gen.forward(&warped, &label, &prev, false)?);
            }
            Ok::<_, Error>(outs)
        })?;
        let last = outs.len() - 1;
        let (prev, out) = (outs[last.saturating_sub(1)].value(), outs[last].value());
        sheet::write_sheet(
            path,
            &[
                Column::Label("label", &b.labels[last]),
                Column::Image("previous", &prev),
                Column::Image("output", &out),
                Column::Image("truth", &b.frames[last]),
            ],
        )
    }

    /// label | stage-1 output | face-refined output | truth.
    fn face_sheet(&self, path: &Path, rng: &mut Rng) -> Result<()> {
        let Some(f) = &self.face else {
            return Ok(());
        };
        let picks: Vec<usize> = (0..4.min(self.with_face.len())).collect();
        let crop = self.cfg.face_crop;
        let b = stages::face_batch(&self.data, &self.with_face, &picks, crop, rng)?
            .to_device(self.opts.device)?;
        let (fake, refined) = no_grad(|| {
            let label = Var::constant(b.label.clone());
            let fake = f
                .main
                .forward(&label, &Var::constant(b.exemplar.clone()), false)?
                .fake;
            let (frame, _) = f.refine(&label, &fake, &b.boxes, false)?;
            Ok::<_, Error>((fake.value(), frame.value()))
        })?;
        sheet::write_sheet(
            path,
            &[
                Column::Label("label", &b.label),
                Column::Image("stage 1", &fake),
                Column::Image("face", &refined),
                Column::Image("truth", &b.gt),
            ],
        )
    }

    /// One iteration of whichever stage `it` falls in.
    fn step(&mut self, it: u64) -> Result<(Stage, LossTerms, f32)> {
        let (stage, local, len) = self
            .plan()
            .locate(it)
            .ok_or_else(|| Error::invalid("train", format!("iteration {it} is past the plan")))?;
        self.ensure_stages(it)?;
        let lr = LinearDecay::new(len, self.cfg.optim.decay_start)?.factor(local);
        let (seed, batch, dev) = (self.state.seed, self.state.batch, self.opts.device);
        let mut rng = Rng::new(seed ^ it.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let idx = walk(&self.data, seed, batch, it);
        let terms = match stage {
            Stage::Stage1 => {
                let b = self.data.stage1_batch(&idx, &mut rng)?.to_device(dev)?;
                self.stage1.step(&b, lr)?
            }
            Stage::Temporal => {
                let l = self.cfg.temporal_window;
                let b = stages::temporal_batch(&self.data, &idx, l, &mut rng)?.to_device(dev)?;
                let t = self.temporal.as_mut().ok_or_else(|| missing("temporal"))?;
                t.step(&b, lr)?
            }
            Stage::Face => {
                let crop = self.cfg.face_crop;
                let b = stages::face_batch(&self.data, &self.with_face, &idx, crop, &mut rng)?
                    .to_device(dev)?;
                let f = self.face.as_mut().ok_or_else(|| missing("face"))?;
                f.step(&b, lr)?
            }
        };
        Ok((stage, terms, lr))
    }

    pub fn run_loop(
        &mut self,
        start: u64,
        observe: &mut dyn FnMut(Progress<'_>),
    ) -> Result<TrainSummary> {
        let total = self.plan().total();
        let began = Instant::now();
        let mut last = LossTerms::default();
        let mut checkpoint = self.run.latest().unwrap_or_else(|| self.run.checkpoint());
        // The second iteration of this run, or the only one.
        let profile_at = self
            .opts
            .profile_kernels
            .then(|| (start + 1).min(total.saturating_sub(1)));
        for it in start..total {
            let t0 = Instant::now();
            let profiled = profile_at == Some(it);
            if profiled {
                kernel_profile::begin()?;
            }
            let stepped = self.step(it);
            if profiled {
                let path = self.run.kernel_profile();
                let what = format!("iteration {} of `engine train`", it + 1);
                kernel_profile::finish(&path, &what, t0.elapsed().as_secs_f64() * 1e3)?;
            }
            let (stage, terms, lr) = stepped?;
            if let Some((name, v)) = terms.terms.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::invalid(
                    "train",
                    format!(
                        "{} loss term `{name}` became {v} at iteration {}; stopping without \
                         saving. The last good checkpoint is {} (try a lower learning rate)",
                        stage.name(),
                        it + 1,
                        checkpoint.display()
                    ),
                ));
            }
            let mut row: Vec<(&str, f32)> = terms.terms.clone();
            row.push(("lr_factor", lr));
            row.push(("seconds", t0.elapsed().as_secs_f32()));
            let done = it + 1;
            self.log.append(done, stage.name(), &row)?;
            let stage_ends = self.plan().locate(done).map(|s| s.0) != Some(stage);
            if done % self.opts.sample_every == 0 || stage_ends {
                self.write_samples(stage, done)?;
            }
            if done % self.opts.checkpoint_every == 0 || stage_ends {
                checkpoint = self.save_checkpoint(done)?;
                self.log.plot(&self.run.losses_png())?;
            }
            observe(Progress {
                iteration: done,
                total,
                stage: stage.name(),
                terms: &terms,
            });
            last = terms;
        }
        if start >= total {
            self.log.plot(&self.run.losses_png())?;
        }
        Ok(TrainSummary {
            start_iteration: start,
            iteration: total.max(start),
            seconds: began.elapsed().as_secs_f64(),
            checkpoint,
            last_terms: last,
        })
    }
}

fn missing(stage: &str) -> Error {
    Error::invalid("train", format!("the {stage} trainer was not built"))
}

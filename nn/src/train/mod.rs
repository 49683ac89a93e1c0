//! lens-train's engine: the reference recipe (BCE-with-logits, AdamW, cosine per batch, flips and rot90, early
//! stopping on validation AUC) on a memory-mapped pack, with exact resume, on one process or as one rank of a
//! data-parallel group. A [`Trainer`] holds a run in progress; [`train`] drives it to the end. The library prints
//! nothing: what happens reaches the caller as [`Event`]s.

pub(crate) mod auto_resume;
pub(crate) mod checkpoint;
pub mod ddp;
pub(crate) mod ema;
mod events;
pub mod launch;
pub(crate) mod scaler;
pub(crate) mod schedule;
pub(crate) mod split;
pub(crate) mod step;
mod validate;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::batch::{draw_augmentations, streams, Batcher, Planned};
use crate::config::TrainConfig;
use crate::device::{prepare_cuda, Precision};
use crate::dist::ProcessGroup;
use crate::models::layers::vars_to_channels_last;
use crate::models::Model;
use crate::optim::AdamW;
use crate::run_dir::{EpochTiming, MetricsRow, RunDir, ValPrediction};
use crate::setting::{Setting, SettingError};
use checkpoint::TrainState;
use ddp::{shard, GradSync};
use ema::Ema;
pub use events::Event;
use split::{epoch_order, Data};
use step::{forward_backward, optimizer_step, param_groups, StepSettings};
use writer::{host_copy, Job, Writer};

/// Steps between reads of the training loss (for the progress line and the non-finite check): the host waits for
/// the device only then.
const READ_EVERY: usize = 25;

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    StoppedEarly,
    /// A signal asked us to stop; the checkpoint is saved.
    Interrupted,
    /// The time limit stopped the run at the end of an epoch; the checkpoint is saved.
    TimeLimit,
}

/// Trains (or resumes) the run in `run` to its end. `stop` is polled after every step (set it from SIGTERM/SIGINT).
/// With a `time_limit`, the run stops at the end of an epoch (its checkpoint written) when another epoch as long
/// as the last one would end after the limit, counted from this call: a budget that is never overrun by more than
/// the first epoch, and a run that `--resume` continues exactly.
///
/// With a process group, this process is one rank of a data-parallel run: `cfg.batch_size` is per rank, each rank
/// trains on its shard of every epoch, gradients are averaged, validation is split and gathered, and rank 0 alone
/// writes files and receives events. Every rank returns the same outcome.
pub(crate) fn train(
    cfg: &TrainConfig,
    run: &RunDir,
    resume: bool,
    stop: &AtomicBool,
    pg: Option<&ProcessGroup>,
    time_limit: Option<Duration>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let started = Instant::now();
    let mut trainer = Trainer::new(cfg, run, resume, pg, on_event)?;
    // libtorch's errors inside the steps (a GPU out of memory above all) reach us as tch's panics: an error here.
    let outcome = crate::panics::catch(|| trainer.run(stop, started, time_limit))
        .map_err(|e| out_of_memory_advice(e, cfg.batch_size, trainer.device));
    // The files handed to the writer are on disk before the run returns, whatever its outcome.
    let written = trainer.writer.as_mut().map_or(Ok(()), Writer::wait);
    let outcome = outcome?;
    written?;
    Ok(outcome)
}

/// An out-of-memory error with what to do about it: the batch size to try (half of `batch`).
fn out_of_memory_advice(e: anyhow::Error, batch: usize, device: Device) -> anyhow::Error {
    if !crate::panics::is_out_of_memory(&e) {
        return e;
    }
    let first = format!("{e:#}").lines().next().unwrap_or_default().to_string();
    let place = if device.is_cuda() { "the GPU's" } else { "the host's" };
    let problem = format!(
        "out of memory: its activations do not fit in {place} memory; try {} (per process; a recipe scales the \
         learning rate with it) [{first}]",
        (batch / 2).max(1)
    );
    SettingError::new(Setting::BatchSize, batch, problem).into()
}

/// A metrics row whose validation AUC is `auc` (the other figures those of a perfect ranking), for tests.
#[cfg(test)]
pub(crate) fn validation_row_for_tests(auc: f64) -> MetricsRow {
    let mut row = validate::metrics_row(&[1.0, -1.0], &[1, 0], &[None, None], 1.0);
    row.val_auc = auc;
    row
}

/// The model's weights in host memory, sorted by name (timm's names), as model.safetensors holds them.
pub(crate) fn weights_on_host(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(k, v)| (k, host_copy(&v))).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Optimizer steps per epoch of the run `cfg` describes on `world` processes (opens its packs and draws its
/// split, as training will): what a recipe needs to cap its warm-up.
pub(crate) fn steps_per_epoch(cfg: &TrainConfig, world: usize) -> Result<usize> {
    if cfg.batch_size == 0 {
        return Err(SettingError::new(Setting::BatchSize, 0, "must be at least 1").into());
    }
    Ok(training_rows(cfg)?.div_ceil(world.max(1)).div_ceil(cfg.batch_size))
}

/// The number of training objects of the run `cfg` describes (opens its packs and draws its split, as training will).
pub(crate) fn training_rows(cfg: &TrainConfig) -> Result<usize> {
    Ok(Data::open(cfg)?.train_rows.len())
}

/// A run in progress on this process.
pub(crate) struct Trainer<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    pg: Option<&'a ProcessGroup>,
    on_event: &'a mut dyn FnMut(Event),
    rank: usize,
    world: usize,
    device: Device,
    data: Data,
    batcher: Batcher,
    val_batcher: Option<Batcher>,
    vs: VarStore,
    model: Model,
    opt: AdamW,
    state: TrainState,
    grad_sync: Option<GradSync>,
    pos_weight: Option<Tensor>,
    steps_per_epoch: usize,
    /// Optimizer steps skipped for non-finite gradients (fp16).
    skipped: usize,
    /// Training loss sum and count of this rank since the ranks last added theirs into `state`: the sum is kept on
    /// the device (float64, in step order, as a host sum would be) and read only every [`READ_EVERY`] steps and at
    /// the end of the epoch, so that the host does not wait for the device at every step.
    pending: (Tensor, usize),
    /// Steps with a non-finite gradient since the last read (fp32 and bf16, where that ends the run), and the
    /// first global step of that stretch.
    nonfinite: (Tensor, usize),
    /// The last epoch's phases, for timing.csv.
    epoch_time: EpochTiming,
    /// The last validation's logits, in the order of the validation rows.
    val_logits: Vec<f64>,
    /// Writes the run's files in the background (rank 0 only).
    writer: Option<Writer>,
    /// The moving average of the weights (--ema-half-life).
    ema: Option<Ema>,
}

impl<'a> Trainer<'a> {
    /// Sets the run up: opens the packs, builds the model (fresh, pretrained or from the checkpoint with
    /// `resume`), and with a process group gives every rank rank 0's weights and moments.
    pub(crate) fn new(
        cfg: &'a TrainConfig,
        run: &'a RunDir,
        resume: bool,
        pg: Option<&'a ProcessGroup>,
        on_event: &'a mut dyn FnMut(Event),
    ) -> Result<Trainer<'a>> {
        let (rank, world) = pg.map_or((0, 1), |p| (p.rank, p.world));
        let device = cfg.device.resolve(pg.map_or(0, |p| p.local_rank))?;
        prepare_cuda(device);
        let data = Data::open(cfg)?;
        for (setting, value) in [(Setting::BatchSize, cfg.batch_size), (Setting::Epochs, cfg.epochs)] {
            if value == 0 {
                return Err(SettingError::new(setting, 0, "must be at least 1").into());
            }
        }
        let vs = VarStore::new(device);
        // The initial weights follow the seed.
        tch::manual_seed((cfg.seed ^ streams::TORCH) as i64);
        let model = cfg.model_config.build(&vs.root());
        // The layout before the optimizer: AdamW's moments take their parameters' strides, which the fused kernel
        // needs (CUDA's refuses a mismatch; the CPU's would pair each moment with the wrong element).
        if cfg.channels_last {
            vars_to_channels_last(&vs);
        }
        // Worse conditions (--degrade) are applied on the host, where batches are gathered.
        let placement = if cfg.degrade.is_some() { Some(false) } else { cfg.data_on_device };
        let batcher = Batcher::new(Arc::clone(&data.pack), device, placement)?;
        let val_batcher =
            data.val_pack.as_ref().map(|v| Batcher::new(Arc::clone(v), device, cfg.data_on_device)).transpose()?;
        let opt_params = param_groups(&vs, cfg.weight_decay, cfg.no_decay_norm_bias);
        let mut trainer = Trainer {
            cfg,
            run,
            pg,
            on_event,
            rank,
            world,
            device,
            steps_per_epoch: data.train_rows.len().div_ceil(world).div_ceil(cfg.batch_size),
            data,
            batcher,
            val_batcher,
            vs,
            model,
            opt: AdamW::new(opt_params, 0.9, 0.999, 1e-8),
            state: TrainState::new(),
            grad_sync: None,
            pos_weight: cfg.pos_weight.map(|w| Tensor::from_slice(&[w as f32]).to_device(device)),
            skipped: 0,
            pending: (Tensor::zeros([], (Kind::Double, device)), 0),
            nonfinite: (Tensor::zeros([], (Kind::Float, device)), usize::MAX),
            epoch_time: EpochTiming::default(),
            val_logits: Vec::new(),
            writer: if rank == 0 { Some(Writer::new()?) } else { None },
            ema: None,
        };
        trainer.initial_state(resume)?;
        Ok(trainer)
    }

    /// The weights and counters to start from, the same on every rank.
    fn initial_state(&mut self, resume: bool) -> Result<()> {
        if let (Some(ckpt), false, true) = (&self.cfg.pretrained, resume, self.is_main()) {
            let report = crate::models::import::import_timm(&self.vs, &self.cfg.model_config, ckpt)?;
            self.emit(Event::Pretrained { path: ckpt, report: &report });
        }
        if resume {
            self.state = checkpoint::load(&self.run.checkpoint_dir(), &mut self.opt, self.cfg.channels_last)?;
        }
        if let Some(pg) = self.pg {
            // Rank 0's weights (fresh, pretrained or resumed) and moments everywhere.
            ddp::check_same_layout(pg, &self.opt)?;
            ddp::broadcast_state(pg, &self.opt)?;
            self.grad_sync = Some(GradSync::new(&self.opt, ddp::BUCKET_BYTES));
        }
        if let Some(half_life) = self.cfg.ema_half_life {
            // From the weights every rank starts with; a resumed run's average from its checkpoint.
            let decay = ema::decay_per_step(half_life, self.steps_per_epoch);
            let cfg = self.cfg;
            let average = Ema::new(&cfg.model_config, &self.vs, cfg.channels_last, decay, self.device)?;
            if resume {
                checkpoint::load_ema(&self.run.checkpoint_dir(), &average)?;
            }
            self.ema = Some(average);
        }
        if self.state.world_size != self.world {
            self.continue_at_world_size();
        }
        if resume {
            let s = &self.state;
            let event = Event::Resumed { epoch: s.epoch, batch: s.batch_in_epoch, step: s.global_step };
            self.emit(event);
        }
        Ok(())
    }

    /// Resuming with another number of processes: continue from the same position in the epoch's order.
    fn continue_at_world_size(&mut self) {
        let (from, to) = (self.state.world_size, self.world);
        let done = self.state.batch_in_epoch * self.cfg.batch_size * from;
        let per_step = self.cfg.batch_size * to;
        self.state.batch_in_epoch = done / per_step;
        self.state.global_step = self.state.epoch * self.steps_per_epoch + self.state.batch_in_epoch;
        self.state.world_size = to;
        if done % per_step != 0 {
            self.emit(Event::WorldChanged { from, to, repeated: done % per_step });
        }
    }

    fn is_main(&self) -> bool {
        self.rank == 0
    }

    fn emit(&mut self, event: Event) {
        if self.is_main() {
            (self.on_event)(event);
        }
    }

    /// Trains to the end of the run, an interruption or the time limit (counted from `started`).
    fn run(&mut self, stop: &AtomicBool, started: Instant, time_limit: Option<Duration>) -> Result<Outcome> {
        if self.is_complete() {
            self.emit(Event::AlreadyComplete);
            return Ok(Outcome::Finished);
        }
        while !self.is_complete() {
            let epoch_started = Instant::now();
            if !self.epoch(stop)? {
                return Ok(Outcome::Interrupted);
            }
            let row = self.validate()?;
            if let Some(outcome) = self.finish_epoch(row, stop)? {
                return Ok(outcome);
            }
            if let Some(limit) = time_limit {
                let next_would_end = started.elapsed() + epoch_started.elapsed();
                // Rank 0's clock decides for all, so that every rank stops after the same epoch.
                if !self.is_complete() && self.any_rank(self.is_main() && next_would_end > limit)? {
                    let (epoch, epochs) = (self.state.epoch, self.cfg.epochs);
                    self.emit(Event::TimeLimit { epoch, epochs, seconds: started.elapsed().as_secs_f64() });
                    return Ok(Outcome::TimeLimit);
                }
            }
        }
        Ok(Outcome::Finished)
    }

    /// Whether every epoch is done or early stopping ended the run.
    pub(crate) fn is_complete(&self) -> bool {
        self.state.stopped_early || self.state.epoch >= self.cfg.epochs
    }

    fn total_steps(&self) -> usize {
        self.steps_per_epoch * self.cfg.epochs
    }

    /// Trains the rest of the epoch in progress. Returns false when a signal stopped it (the checkpoint is saved).
    pub(crate) fn epoch(&mut self, stop: &AtomicBool) -> Result<bool> {
        let (epoch, world) = (self.state.epoch, self.world);
        let order = epoch_order(&self.data.train_rows, self.cfg.seed, epoch);
        let mine = shard(&order, self.rank, world);
        let images = (mine.len() * world) as u64;
        let done = ((self.state.batch_in_epoch * self.cfg.batch_size * world) as u64).min(images);
        self.emit(Event::EpochStarted { epoch: epoch + 1, epochs: self.cfg.epochs, images, done });
        let started = Instant::now();
        let mut trained = 0usize;
        let manifest = &self.data.pack.manifest;
        let square = manifest.height == manifest.width;
        let plan: Vec<Planned> = mine
            .chunks(self.cfg.batch_size)
            .skip(self.state.batch_in_epoch)
            .map(|rows| Planned {
                rows: rows.to_vec(),
                augs: Some(draw_augmentations(rows, self.cfg.seed, epoch, square, self.cfg.degrade)),
            })
            .collect();
        let mut batches = self.batcher.batches(plan)?;
        while let Some((x, y)) = batches.next() {
            let n = y.size()[0] as usize;
            let stop_now = self.step(&x, &y, n, stop)?;
            self.state.batch_in_epoch += 1;
            trained += n * world;
            let loss = if self.state.global_step % READ_EVERY == 0 {
                let pending = self.read_pending()?;
                Some((self.state.loss_sum + pending) / (self.state.loss_count + self.pending.1).max(1) as f64)
            } else {
                None
            };
            self.emit(Event::Step { images: (n * world) as u64, loss });
            let periodic = self.cfg.checkpoint_every.is_some_and(|n| n > 0 && self.state.global_step % n == 0);
            if stop_now || periodic {
                self.add_loss()?;
                self.save_checkpoint()?;
            }
            if stop_now {
                self.emit(Event::EpochTrained);
                self.emit(Event::Interrupted { epoch: epoch + 1, step: self.state.global_step });
                return Ok(false);
            }
        }
        self.add_loss()?;
        self.emit(Event::EpochTrained);
        self.epoch_time =
            EpochTiming { train_seconds: started.elapsed().as_secs_f64(), images: trained, ..Default::default() };
        Ok(true)
    }

    /// One optimisation step on a batch of `n` images `x` (their views applied) with labels `y`; returns whether
    /// any rank was asked to stop.
    fn step(&mut self, x: &Tensor, y: &Tensor, n: usize, stop: &AtomicBool) -> Result<bool> {
        let (cfg, step) = (self.cfg, self.state.global_step);
        let lr = schedule::lr_at(step, self.total_steps(), cfg.lr, cfg.warmup_steps);
        // Every random number of this step comes from (seed, step, rank) or (seed, epoch, row): a resumed run
        // draws the same ones.
        tch::manual_seed((cfg.seed ^ streams::TORCH ^ step as u64 ^ ((self.rank as u64) << 40)) as i64);
        self.opt.zero_grad();
        let fp16 = cfg.precision == Precision::Fp16;
        let scale = if fp16 { self.state.scaler.scale } else { 1.0 };
        let settings = StepSettings {
            precision: cfg.precision,
            channels_last: cfg.channels_last,
            input_size: cfg.model_config.input_size(),
            pos_weight: self.pos_weight.as_ref(),
            focal_gamma: cfg.focal_gamma,
            label_smoothing: cfg.label_smoothing,
        };
        let loss = forward_backward(&self.model, x, y, &settings, scale);
        // Averaged gradients, and whether any rank was asked to stop: every rank stops after the same step.
        let stop_now = match (&mut self.grad_sync, self.pg) {
            (Some(sync), Some(pg)) => {
                sync.all_reduce(pg, &self.opt, f32::from(u8::from(stop.load(Ordering::Relaxed))))? > 0.0
            }
            _ => stop.load(Ordering::Relaxed),
        };
        let found_inf = optimizer_step(&mut self.opt, fp16.then_some(&mut self.state.scaler), cfg.grad_clip, lr)?;
        if let Some(ema) = &self.ema {
            ema.update(step);
        }
        tch::no_grad(|| {
            if let Some(inf) = found_inf {
                if fp16 {
                    // The loss scaler has read it already: a skipped step is part of fp16's loss scaling.
                    self.skipped += usize::from(inf.double_value(&[]) != 0.0);
                } else {
                    if self.nonfinite.1 == usize::MAX {
                        self.nonfinite.1 = step;
                    }
                    let _ = self.nonfinite.0.g_add_(&inf);
                }
            }
            let _ = self.pending.0.g_add_(&(loss.to_kind(Kind::Double) * n as f64));
        });
        self.pending.1 += n;
        self.state.global_step += 1;
        Ok(stop_now)
    }

    /// The training loss sum since the last [`Trainer::add_loss`] (waits for the device); fails where a step's
    /// gradients were not finite in fp32 or bf16 (that step was skipped on the device, and the run ends here).
    fn read_pending(&mut self) -> Result<f64> {
        let nonfinite = self.nonfinite.0.double_value(&[]);
        if nonfinite > 0.0 {
            let (from, to) = (self.nonfinite.1, self.state.global_step.saturating_sub(1));
            bail!(
                "non-finite gradients in {nonfinite} of the steps {from} to {to} (those steps were skipped); try a \
                 lower learning rate, or clip the gradients' norm"
            );
        }
        self.nonfinite.1 = usize::MAX;
        Ok(self.pending.0.double_value(&[]))
    }

    /// Adds the training loss of every rank since the last call into the state (the same sum on every rank).
    fn add_loss(&mut self) -> Result<()> {
        let sum = self.read_pending()?;
        let count = std::mem::take(&mut self.pending.1);
        let _ = self.pending.0.zero_();
        self.state.optimizer_steps = self.opt.steps_taken();
        let (s, c) = match self.pg {
            Some(pg) => {
                let v = pg.sum_f64(&[sum, count as f64], self.device)?;
                (v[0], v[1] as usize)
            }
            None => (sum, count),
        };
        self.state.loss_sum += s;
        self.state.loss_count += c;
        Ok(())
    }

    /// Hands the checkpoint of the state as it is now to the writer (rank 0).
    fn save_checkpoint(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let tensors = checkpoint::snapshot(&self.opt, None, self.ema.as_ref());
        let (dir, state) = (self.run.checkpoint_dir(), self.state.clone());
        writer.submit(Box::new(move || checkpoint::save(&dir, &state, &tensors)))
    }

    /// Records the epoch's validation: the best weights and their predictions, metrics.csv, timing.csv, early
    /// stopping and the checkpoint. Returns the outcome when the run ends here. The files are copied to host memory
    /// here and written by the writer thread while the next epoch trains; the epoch's save time in timing.csv is
    /// how long the training loop waited for that (the copies, and the previous epoch's files if they were not
    /// written yet).
    pub(crate) fn finish_epoch(&mut self, row: MetricsRow, stop: &AtomicBool) -> Result<Option<Outcome>> {
        let epoch = self.state.epoch;
        let images_per_s = self.epoch_time.images as f64 / self.epoch_time.train_seconds.max(1e-9);
        self.emit(Event::Validated { row: &row, epochs: self.cfg.epochs, images_per_s });
        let saving = Instant::now();
        let score = row.best_val_auc();
        let improved = self.state.best_auc.is_none_or(|best| score > best);
        if improved {
            self.state.best_auc = Some(score);
            self.state.best_is_ema = row.ema_is_better();
            self.state.best_epoch = Some(epoch + 1);
            self.state.epochs_without_improvement = 0;
        } else {
            self.state.epochs_without_improvement += 1;
        }
        self.state.history.push(row);
        self.state.next_epoch();
        if self.state.epochs_without_improvement >= self.cfg.patience {
            self.state.stopped_early = true;
        }
        if self.writer.is_some() {
            let job = self.epoch_files(improved, epoch + 1);
            let (save_seconds, timing) = channel::<f64>();
            let mut epoch_time = self.epoch_time;
            let run = self.run.clone();
            let Some(writer) = self.writer.as_mut() else { return Ok(None) };
            writer.submit(Box::new(move || {
                job()?;
                // After the checkpoint, so that its time counts; a run killed in between lacks this epoch's row.
                epoch_time.save_seconds = timing.recv().unwrap_or(f64::NAN);
                run.append_timing(epoch + 1, &epoch_time)
            }))?;
            let _ = save_seconds.send(saving.elapsed().as_secs_f64());
        }
        if self.state.stopped_early {
            let best_epoch = self.state.best_epoch.unwrap_or(0);
            self.emit(Event::StoppedEarly { patience: self.cfg.patience, best_epoch });
            return Ok(Some(Outcome::StoppedEarly));
        }
        Ok(self.any_rank(stop.load(Ordering::Relaxed))?.then_some(Outcome::Interrupted))
    }

    /// The files of the epoch just finished, copied to host memory, and the writing of them: with `improved`,
    /// model.safetensors (the raw weights or their moving average, whichever validated better) and
    /// val_predictions.csv; then metrics.csv and the checkpoint.
    fn epoch_files(&self, improved: bool, epoch: usize) -> Job {
        let ema_best = self.state.best_is_ema;
        let best = improved.then(|| {
            let weights = match (&self.ema, ema_best) {
                (Some(ema), true) => ema.weights_on_host(),
                _ => weights_on_host(&self.vs),
            };
            (weights, self.val_prediction_rows())
        });
        let raw = best.as_ref().filter(|_| !ema_best).map(|(w, _)| w.as_slice());
        let tensors = checkpoint::snapshot(&self.opt, raw, self.ema.as_ref());
        let (run, state) = (self.run.clone(), self.state.clone());
        Box::new(move || {
            if let Some((weights, predictions)) = best {
                run.save_weights(&weights).with_context(|| format!("saving the weights of epoch {epoch}"))?;
                run.write_val_predictions(predictions.iter().map(|(id, label, source, logit)| ValPrediction {
                    id,
                    label: *label,
                    source: *source,
                    logit: *logit,
                }))?;
            }
            run.write_metrics(&state.history)?;
            checkpoint::save(&run.checkpoint_dir(), &state, &tensors)
        })
    }

    /// Whether `flag` is set on any rank (on this one, without a group).
    fn any_rank(&self, flag: bool) -> Result<bool> {
        match self.pg {
            Some(pg) => Ok(pg.sum_f64(&[f64::from(u8::from(flag))], self.device)?[0] > 0.0),
            None => Ok(flag),
        }
    }
}

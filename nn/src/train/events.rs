//! What training tells its caller: the library prints nothing; lens-train turns these into progress bars and log
//! lines. Only the process that writes the run (rank 0, or the only one) receives them.

use std::path::Path;

use crate::config::TrainConfig;
use crate::dist::Backend;
use crate::models::import::ImportReport;
use crate::run_dir::MetricsRow;

/// Something that happened during training.
#[derive(Debug)]
pub enum Event<'a> {
    /// A launcher started `world` processes that met over `backend`; each trains `batch` images a step.
    Processes { world: usize, launcher: &'static str, backend: Backend, batch: usize },
    /// --precision/--memory-format auto of a new run: `summary` says what was measured (or found in the cache) and
    /// chosen (None when only one candidate was left); `notes` are about the cache (one that could not be read or
    /// written).
    Autotune { notes: &'a [String], summary: Option<String> },
    /// Something the user should know about how the run was set up (e.g. a batch size clamped to the data).
    Note(&'a str),
    /// A new run's directory and config.json are written; `cfg.recipe` is the recipe and what it resolved to.
    Recipe { cfg: &'a TrainConfig },
    /// The run directory holds config.json but no checkpoint yet: the run starts again from its first step.
    StartingAgain,
    /// Weights imported from a timm checkpoint before the first step.
    Pretrained { path: &'a Path, report: &'a ImportReport },
    /// Continuing from a checkpoint at `epoch` (0-based), after `batch` of its batches, at global `step`.
    Resumed { epoch: usize, batch: usize, step: usize },
    /// The checkpoint was written by `from` processes and `to` continue it; `repeated` objects before it are trained
    /// on again because the position in the epoch does not divide into the new step size.
    WorldChanged { from: usize, to: usize, repeated: usize },
    /// The run had already ended (all epochs, or early stopping); nothing was done.
    AlreadyComplete,
    /// An epoch (1-based `epoch` of `epochs`) starts with `done` of its `images` already trained (after a resume).
    EpochStarted { epoch: usize, epochs: usize, images: u64, done: u64 },
    /// A step trained `images` more; `loss` is the epoch's mean training loss so far, read from the device every
    /// few steps (None between reads).
    Step { images: u64, loss: Option<f64> },
    /// The epoch's training steps are done (validation comes next).
    EpochTrained,
    /// Validation of an epoch; `images_per_s` is the training speed of the epoch over all processes.
    Validated { row: &'a MetricsRow, epochs: usize, images_per_s: f64 },
    /// No validation AUC improvement for `patience` epochs: the run ends.
    StoppedEarly { patience: usize, best_epoch: usize },
    /// A signal asked to stop: the checkpoint after (1-based) `epoch`'s step `step` is saved.
    Interrupted { epoch: usize, step: usize },
    /// The time limit: another epoch would have ended after it, so the run stops after (1-based) `epoch` of
    /// `epochs`, at the checkpoint of its end; `seconds` have passed.
    TimeLimit { epoch: usize, epochs: usize, seconds: f64 },
}

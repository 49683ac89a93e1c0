//! One lens-train process, from what its command line asks to the end of its part of the run: the run's settings
//! (a new run's from the command line with its recipe resolved, config.json's for --resume, what the run directory
//! decides for --auto-resume), the process group when a launcher started several, --precision/--memory-format
//! auto settled once for every rank, and [`train`]. lens-train parses its options into a [`Launch`] and reports the
//! [`Event`]s; everything else is here.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::auto_resume::{self, Start};
use super::{steps_per_epoch, train, training_rows, Event, Outcome};
use crate::autotune::{self, Request, Workload};
use crate::config::{Continued, TrainConfig};
use crate::device::{Choice, MemoryFormat, Precision};
use crate::dist::{Backend, Env, ProcessGroup};
use crate::exec::Exec;
use crate::recipe::{self, Overrides, Recipe};
use crate::run_dir::RunDir;
use crate::setting::{Setting, SettingError};
use crate::ModelConfig;

/// How the command line starts the run in `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new run (--out must not hold one).
    New,
    /// --resume: continue with config.json's settings.
    Resume,
    /// --auto-resume: start the run, or continue it when `out` holds it with the same settings.
    AutoResume,
}

/// The settings of a new run as the command line gives them (also what --auto-resume compares with config.json).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub pack: Option<PathBuf>,
    pub val_pack: Option<PathBuf>,
    pub model: String,
    pub input_size: Option<i64>,
    /// None: the default recipe (`finetune` with `pretrained`, else `scratch`).
    pub recipe: Option<Recipe>,
    /// The recipe's values that the command line gave explicitly.
    pub overrides: Overrides,
    pub batch_size: usize,
    pub grad_clip: Option<f64>,
    pub pos_weight: Option<f64>,
    /// --focal-gamma (None or 0: plain BCE).
    pub focal_gamma: Option<f64>,
    pub seed: u64,
    pub split_seed: u64,
    /// Whether the command line named --split-seed: one that does not continues a run made before the split had a
    /// seed of its own as it was (its split drawn from --seed).
    pub split_seed_given: bool,
    pub val_split: f64,
    pub patience: usize,
    pub pretrained: Option<PathBuf>,
    pub checkpoint_every: Option<usize>,
    /// None: auto.
    pub data_on_device: Option<bool>,
}

/// What a lens-train command line asks for.
#[derive(Debug, Clone)]
pub struct Launch {
    pub out: PathBuf,
    pub mode: Mode,
    pub run: NewRun,
    pub exec: Exec,
    /// With --resume: what the command line gives anew of the settings that may change (the others are
    /// config.json's).
    pub resume: Continued,
    pub time_limit: Option<Duration>,
    pub dist_backend: Choice<Backend>,
    pub dist_timeout: Duration,
}

/// Runs this process's part of the run: alone, or as one rank of the group that the launcher's environment (torchrun,
/// srun) describes. `stop` is polled after every step (set it from SIGTERM/SIGINT). Events reach `on_event` on the
/// process that writes the run (rank 0, or the only one).
pub fn launch(l: &Launch, stop: &AtomicBool, on_event: &mut dyn FnMut(Event)) -> Result<Outcome> {
    // The run's settings decide the device (and so the backend) and the batch; an error in them is reported to
    // the other ranks once the group exists, so that they can name this one.
    let settings = resolve_config(l);
    let Some(env) = Env::from_env()? else {
        let (cfg, start) = settings?;
        return run_process(l, cfg, start, None, stop, on_event);
    };
    let device = settings.as_ref().map_or(l.exec.device, |(c, _)| c.device);
    let backend = Backend::choose(l.dist_backend, device.resolve(env.local_rank)?)?;
    let pg = ProcessGroup::init(&env, backend, l.dist_timeout)?;
    if let (0, Ok((cfg, _))) = (env.rank, &settings) {
        on_event(Event::Processes { world: env.world, launcher: env.launcher, backend, batch: cfg.batch_size });
    }
    let agreed = |(cfg, start): (TrainConfig, Start)| -> Result<(TrainConfig, Start)> {
        if l.mode == Mode::AutoResume {
            auto_resume::agree(&pg, start, &RunDir::new(l.out.clone()), cfg.device.resolve(env.local_rank)?)?;
        }
        Ok((cfg, start))
    };
    match settings.and_then(agreed).and_then(|(cfg, start)| run_process(l, cfg, start, Some(&pg), stop, on_event)) {
        Ok(outcome) => {
            pg.finish()?;
            Ok(outcome)
        }
        Err(e) => {
            pg.report_failure(&format!("{e:#}"));
            Err(e.context(format!("rank {} of {}", env.rank, env.world)))
        }
    }
}

/// The settings of the run and how it starts: config.json's with --resume (continued with what the command line
/// gives anew), the command line's for a new run, and with --auto-resume what the run directory decides. Writes
/// nothing.
fn resolve_config(l: &Launch) -> Result<(TrainConfig, Start)> {
    let run = RunDir::new(l.out.clone());
    if l.mode == Mode::Resume {
        let mut cfg = run.read_config()?;
        cfg.continue_with(&l.resume);
        return Ok((cfg, Start::Resume { step: None }));
    }
    // With --auto-resume, the run already in `out`: None for a new one, and for a config.json that does not load
    // (auto_resume::decide reports that).
    let recorded = (l.mode == Mode::AutoResume && run.config_path().exists()).then(|| run.read_config().ok()).flatten();
    // The recipe at the run's own number of processes: continued at another world size, a run keeps the learning
    // rate it scaled for its global batch, as with --resume.
    let world = match recorded.as_ref().and_then(|old| recorded_world(old, l.run.batch_size)) {
        Some(world) => world,
        None => Env::from_env()?.map_or(1, |e| e.world),
    };
    let mut cfg = config_from_args(&l.run, &l.exec, world)?;
    cfg.device.resolve(0)?;
    if l.mode == Mode::New {
        return Ok((cfg, Start::New));
    }
    // A run made before --split-seed drew its split from --seed: a command line that does not name a split seed
    // continues it so.
    if !l.run.split_seed_given && recorded.is_some_and(|old| old.split_seed.is_none()) {
        cfg.split_seed = None;
    }
    let channels_last = l.exec.memory_format.fixed().map(MemoryFormat::is_channels_last);
    auto_resume::decide(&run, cfg, l.exec.precision.fixed(), channels_last)
}

/// The number of processes the run of `old` was started with, from its recipe's global batch (None for a run made
/// before recipes, or another batch size, which --auto-resume then names as a difference).
fn recorded_world(old: &TrainConfig, batch_size: usize) -> Option<usize> {
    let recipe = old.recipe.as_ref()?;
    (batch_size > 0 && recipe.global_batch % batch_size == 0).then_some(recipe.global_batch / batch_size)
}

/// A pack given on the command line, as an absolute path (so that --resume and lens-infer work from any
/// directory).
fn absolute_pack(p: &Path) -> Result<PathBuf> {
    if !lensfind_data::pack::PackDir(p).is_pack() {
        bail!("{} is not a pack (no pack.json); make one with lens-pack", p.display());
    }
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}

/// A new run's settings from the command line, its recipe resolved for `world` processes.
fn config_from_args(a: &NewRun, exec: &Exec, world: usize) -> Result<TrainConfig> {
    let model_config = ModelConfig::from_name(&a.model, a.input_size)?;
    if let (Some(size), false) = (a.input_size, matches!(model_config, ModelConfig::Vit(_))) {
        let problem = format!("applies to ViT models; {} runs at the native 41x41", a.model);
        return Err(SettingError::new(Setting::InputSize, size, problem).into());
    }
    let Some(pack) = &a.pack else { return Err(SettingError::missing(Setting::Pack, "a new run needs one").into()) };
    if let Some(h) = a.overrides.ema_half_life.filter(|h| !(h.is_finite() && *h >= 0.0)) {
        let problem = "a number of epochs, 0 for no moving average of the weights";
        return Err(SettingError::new(Setting::EmaHalfLife, h, problem).into());
    }
    if let Some(g) = a.focal_gamma.filter(|g| !(g.is_finite() && *g >= 0.0)) {
        let problem = "an exponent >= 0 (0: plain BCE; 2 is the usual focal loss)";
        return Err(SettingError::new(Setting::FocalGamma, g, problem).into());
    }
    if let Some(p) = a.overrides.degrade.filter(|p| !(0.0..=1.0).contains(p)) {
        let problem = "a chance between 0 and 1 (the share of training images shown under worse conditions)";
        return Err(SettingError::new(Setting::Degrade, p, problem).into());
    }
    if let Some(e) = a.overrides.label_smoothing.filter(|e| !(0.0..1.0).contains(e)) {
        let problem = "an epsilon from 0 to below 1 (a lens is learnt as 1 - e/2, a non-lens as e/2; 0: none)";
        return Err(SettingError::new(Setting::LabelSmoothing, e, problem).into());
    }
    let pretrained = a
        .pretrained
        .as_ref()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("{}", p.display())))
        .transpose()?;
    let mut cfg = TrainConfig {
        pack: absolute_pack(pack)?,
        val_pack: a.val_pack.as_deref().map(absolute_pack).transpose()?,
        model: a.model.clone(),
        model_config,
        // The recipe's values replace these below, once the run's steps per epoch are known.
        epochs: 1,
        batch_size: a.batch_size,
        lr: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
        grad_clip: a.grad_clip,
        no_decay_norm_bias: false,
        pos_weight: a.pos_weight,
        focal_gamma: a.focal_gamma.filter(|&g| g > 0.0),
        // Placeholders until auto settings are resolved (resolve_auto), which needs this process's device.
        precision: exec.precision.fixed().unwrap_or(Precision::Fp32),
        channels_last: exec.memory_format.fixed().is_some_and(MemoryFormat::is_channels_last),
        autotune: None,
        seed: a.seed,
        split_seed: Some(a.split_seed),
        val_split: a.val_split,
        patience: a.patience,
        pretrained,
        checkpoint_every: a.checkpoint_every,
        data_on_device: a.data_on_device,
        device: exec.device,
        tool: format!("lens-train {}", env!("CARGO_PKG_VERSION")),
        recipe: None,
        ema_half_life: None,
        standardize: None,
        degrade: None,
        label_smoothing: None,
    };
    let name = a.recipe.unwrap_or_else(|| Recipe::default_for(a.pretrained.is_some()));
    // A pack that cannot be read fails the run where training opens it, after the processes have met, so that
    // every rank reports it alike; until then the recipe does without the run's length (no warm-up cap).
    let rows = training_rows(&cfg).ok();
    // A batch larger than a process's share of the training set takes the whole share (run_process says so).
    if let Some(share) = rows.map(|r| r.div_ceil(world.max(1)).max(1)) {
        cfg.batch_size = cfg.batch_size.min(share);
    }
    let steps = rows.and_then(|_| steps_per_epoch(&cfg, world).ok());
    let (values, record) = recipe::resolve(name, cfg.batch_size * world, steps, &a.overrides);
    (cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.no_decay_norm_bias, cfg.epochs) =
        (values.lr, values.warmup_steps, values.weight_decay, values.no_decay_norm_bias, values.epochs);
    cfg.model_config.set_drop_path(values.drop_path);
    cfg.ema_half_life = values.ema_half_life;
    cfg.degrade = values.degrade;
    cfg.label_smoothing = values.label_smoothing;
    if cfg.degrade.is_some() && cfg.data_on_device == Some(true) {
        let problem = "cannot go with worse conditions (degrade, given or the recipe's): they are drawn while \
                       batches are gathered on the host; leave it at auto";
        return Err(SettingError::new(Setting::DataOnDevice, "always", problem).into());
    }
    cfg.standardize = lensfind_data::pack::read_manifest(&cfg.pack).ok().map(|m| m.standardization.mode);
    cfg.recipe = Some(record);
    Ok(cfg)
}

/// One process's part: the whole run, or rank `pg.rank`'s share of it. Rank 0 (or the only process) writes
/// config.json of a new run.
fn run_process(
    l: &Launch,
    mut cfg: TrainConfig,
    start: Start,
    pg: Option<&ProcessGroup>,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    let run = RunDir::new(l.out.clone());
    let main = pg.is_none_or(|p| p.rank == 0);
    let device = cfg.device.resolve(pg.map_or(0, |p| p.local_rank))?;
    crate::device::check_batch_fits(&cfg.model_config, cfg.batch_size, device)?;
    match start {
        Start::New => {
            if main && cfg.batch_size < l.run.batch_size {
                let note = format!(
                    "a batch size of {} is larger than the training set: training with batches of {} (the {})",
                    l.run.batch_size,
                    cfg.batch_size,
                    if pg.is_some() { "whole share of a process" } else { "whole set" },
                );
                on_event(Event::Note(&note));
            }
            resolve_auto(l, &mut cfg, pg, on_event)?;
            if main {
                run.create(&cfg)?;
                on_event(Event::Recipe { cfg: &cfg });
            }
        }
        Start::Again if main => on_event(Event::StartingAgain),
        Start::Again | Start::Resume { .. } => {}
    }
    let resume = matches!(start, Start::Resume { .. });
    train(&cfg, &run, resume, stop, pg, l.time_limit, on_event)
}

/// Settles `--precision auto` and `--memory-format auto` of a new run: rank 0 (or the only process) measures or
/// reads the cache and says what it chose; every rank then runs with rank 0's choice.
fn resolve_auto(
    l: &Launch,
    cfg: &mut TrainConfig,
    pg: Option<&ProcessGroup>,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let device = cfg.device.resolve(pg.map_or(0, |p| p.local_rank))?;
    crate::device::prepare_cuda(device);
    let req = Request {
        workload: Workload::Train,
        model_name: &cfg.model,
        model: &cfg.model_config,
        batch: cfg.batch_size,
        device,
        precision: l.exec.precision,
        memory_format: l.exec.memory_format,
    };
    let options = autotune::candidates(device, req.precision, req.memory_format);
    let mut chosen = None;
    if pg.is_none_or(|p| p.rank == 0) {
        let cache = l.exec.cache();
        let (setting, record, notes) = autotune::resolve(&req, &cache)?;
        on_event(Event::Autotune { notes: &notes, summary: record.as_ref().map(|r| r.summary(&cache)) });
        cfg.autotune = record;
        chosen = Some(setting);
    }
    let setting = match pg {
        // Rank 0's choice, as its index among the candidates (the same list on every rank).
        Some(pg) => {
            let index = chosen.and_then(|c| options.iter().position(|o| *o == c)).unwrap_or(0);
            options[pg.sum_f64(&[index as f64], device)?[0] as usize]
        }
        None => chosen.expect("the only process chose"),
    };
    cfg.precision = setting.precision;
    cfg.channels_last = setting.memory_format.is_channels_last();
    Ok(())
}

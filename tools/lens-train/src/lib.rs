//! lens-train's command line.

mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use lensfind_nn::autotune::{self, Request, Workload};
use lensfind_nn::cli::{ExecArgs, AUTO_SETTINGS_HELP};
use lensfind_nn::device::{parse_device, rank_device, MemoryFormat, Precision};
use lensfind_nn::dist::{Backend, Env, ProcessGroup};
use lensfind_nn::recipe::{self, Overrides, Recipe};
use lensfind_nn::run_dir::{RunDir, TrainConfig};
use lensfind_nn::train::auto_resume::{self, Start};
use lensfind_nn::train::{train, Outcome};
use lensfind_nn::{registry, ModelConfig};

/// Train a lens classifier on a pack: ConvNeXt or ViT with 5-channel input and one logit, timm-compatible.
///
/// The loop is the reference's: BCE-with-logits, AdamW, a linear warm-up then cosine annealing stepped per batch
/// over all steps, random horizontal and vertical flips and rotations by 90 degrees per image, batch 256, early
/// stopping on validation AUC with patience 8. The learning rate, warm-up, weight-decay groups, drop path and
/// epochs come from a --recipe (default scratch, or finetune with --pretrained; reference is the reference's own:
/// lr 1e-4, no warm-up, 50 epochs); options given explicitly win over it. Without --val-pack, a validation split
/// stratified by label and source (SLSim/HSC) is drawn from --split-seed (fixed by default, apart from --seed, so
/// that the models of an ensemble share their validation objects).
///
/// The run directory gets config.json (every setting, written first), metrics.csv (one row per epoch: training
/// loss; validation loss, AUC, accuracy, precision and recall at logit 0, TPR at FPR 1e-2 and 1e-3, AUC per
/// source), timing.csv, model.safetensors (the best epoch's weights by validation AUC, under timm's names),
/// val_predictions.csv (id,label,source,logit of the best epoch) and checkpoint/ (weights, AdamW moments, counters
/// and early-stopping state: what an exact resume needs).
///
/// A checkpoint is written after every epoch and every --checkpoint-every steps. SIGTERM or SIGINT (Slurm
/// preemption, Ctrl-C) saves one and exits (status 143 or 130); `lens-train --resume --out RUN` continues where it
/// stopped and ends with the same weights as a run that was never interrupted (on CPU). The same seed gives the
/// same metrics.csv. With --auto-resume, the same command line starts the run and continues it when run again
/// (batch scripts, requeued jobs, torchrun --max-restarts); a process killed outright (SIGKILL, a lost node)
/// saves nothing, so its run continues from the last checkpoint: the last epoch or --checkpoint-every steps.
///
/// Precision and memory format: measured at start-up by default (see AUTO SETTINGS below) and recorded in
/// config.json; fp16 uses dynamic loss scaling (steps with inf/NaN gradients are skipped and the scale lowered).
///
/// Several processes (data-parallel, PyTorch DDP's scheme on libtorch's c10d): start one lens-train per GPU (or
/// per CPU socket) with torchrun (`torchrun --nproc-per-node 4 $(which lens-train) ...`) or srun (one task per
/// GPU; the batch script exports MASTER_ADDR and MASTER_PORT; see scripts/slurm/). Ranks come from RANK,
/// WORLD_SIZE, LOCAL_RANK or SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; each uses GPU LOCAL_RANK. --batch-size is
/// per process; each epoch is split across the processes as DistributedSampler does, gradients are averaged, and
/// rank 0 alone writes the run directory. If a process dies or stalls, the others stop with an error naming it
/// within --dist-timeout.
///
/// Exit status: 0 when training ends (all epochs or early stopping), 130/143 when a signal stopped it after saving
/// a checkpoint, 2 on error.
#[derive(Debug, Parser)]
#[command(name = "lens-train", after_long_help = AUTO_SETTINGS_HELP, version = lensfind_nn::version::version(env!("CARGO_PKG_VERSION")), max_term_width = 110)]
pub struct Args {
    /// List the models (name, family, input size, parameters) and exit.
    #[arg(long)]
    pub list_models: bool,

    /// The training pack (lens-pack's output).
    #[arg(long, value_name = "PACK", required_unless_present_any = ["list_models", "resume"])]
    pub pack: Option<PathBuf>,

    /// A separate validation pack; without it --val-split of the training pack is held out.
    #[arg(long, value_name = "PACK")]
    pub val_pack: Option<PathBuf>,

    /// The run directory to create (or, with --resume or --auto-resume, to continue).
    #[arg(long, short = 'o', value_name = "DIR", required_unless_present = "list_models")]
    pub out: Option<PathBuf>,

    /// Continue the run in --out from its checkpoint, with the settings of its config.json.
    #[arg(long)]
    pub resume: bool,

    /// Start the run, or continue it if --out already holds it: from its checkpoint, or from the first step when
    /// it has none yet (exact: all randomness comes from the seed); a complete run is left as it is (exit 0). The
    /// settings must be config.json's, else an error names those that differ: --device and --checkpoint-every may
    /// change, and --precision auto and --memory-format auto match what the run chose. For a command line that
    /// is run again as it is: batch scripts, requeued jobs, torchrun --max-restarts. Every process must see the
    /// same --out.
    #[arg(long, conflicts_with = "resume")]
    pub auto_resume: bool,

    /// Model name (see --list-models).
    #[arg(long, default_value = "convnext_tiny")]
    pub model: String,

    /// ViT input side in pixels (the 41x41 images are resized on the device, bilinear); default 224.
    #[arg(long, value_name = "PIXELS")]
    pub input_size: Option<i64>,

    #[arg(long, long_help = recipe::help(), value_name = "RECIPE")]
    pub recipe: Option<Recipe>,

    /// Epochs (default: the recipe's).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,

    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,

    /// Peak learning rate (AdamW), used as given (default: the recipe's, scaled with the global batch).
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,

    /// AdamW weight decay (default: the recipe's).
    #[arg(long, value_name = "WD")]
    pub weight_decay: Option<f64>,

    /// Linear warm-up steps before the cosine schedule (default: the recipe's).
    #[arg(long, value_name = "STEPS")]
    pub warmup_steps: Option<usize>,

    /// Clip the global gradient norm to this value.
    #[arg(long, value_name = "NORM")]
    pub grad_clip: Option<f64>,

    /// Stochastic depth rate of the last block, timm's drop_path_rate (default: the recipe's).
    #[arg(long, value_name = "RATE")]
    pub drop_path: Option<f64>,

    /// No weight decay on norms, biases, layer scales, position embeddings and the class token (default: the
    /// recipe's).
    #[arg(long)]
    pub no_decay_norm_bias: bool,

    /// Weight decay on every parameter, norms and biases included, whatever the recipe says.
    #[arg(long, conflicts_with = "no_decay_norm_bias")]
    pub decay_norm_bias: bool,

    /// Weight of the positive class in the loss (BCE pos_weight).
    #[arg(long, value_name = "W")]
    pub pos_weight: Option<f64>,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Seed of the validation split, apart from --seed so that the models of one ensemble, trained with different
    /// seeds, hold out the same objects (lens-ensemble then ensembles their validation predictions). Recorded in
    /// config.json; runs made before this option drew their split from --seed and keep doing so.
    #[arg(long, default_value_t = DEFAULT_SPLIT_SEED, value_name = "SEED")]
    pub split_seed: u64,

    /// Fraction of each (label, source) group held out for validation when there is no --val-pack.
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,

    /// Stop after this many epochs without a better validation AUC.
    #[arg(long, default_value_t = 8)]
    pub patience: usize,

    /// Start from a timm ImageNet checkpoint (safetensors): first conv adapted to 5 channels, fresh head.
    #[arg(long, value_name = "FILE")]
    pub pretrained: Option<PathBuf>,

    /// Also write a checkpoint every N steps (one is always written after each epoch).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,

    /// Stop at the end of the epoch after which another one would pass this many seconds of training (counted
    /// from the start of this process), with its checkpoint written (exit 0; --resume continues the run). For
    /// comparisons at equal wall-clock budget (scripts/bench-recipes.sh) and batch jobs' time limits.
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,

    /// Put the whole pack on the GPU (when it fits) instead of gathering batches from the mapped file.
    #[arg(long)]
    pub data_on_device: bool,

    #[command(flatten)]
    pub exec: ExecArgs,

    /// Collectives between processes: auto (NCCL on GPUs, Gloo on CPUs), gloo or nccl.
    #[arg(long, default_value = "auto", value_name = "BACKEND", value_parser = ["auto", "gloo", "nccl"])]
    pub dist_backend: String,

    /// Seconds a process waits for the others (rendezvous, each collective) before it stops with an error.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub dist_timeout: u64,

    /// No progress bar or log lines; epoch summaries only.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The default --split-seed: 42, the default --seed, so that a run with the default seed holds out the objects it
/// held out before the split had a seed of its own.
pub const DEFAULT_SPLIT_SEED: u64 = 42;

/// The options `--resume` may change: where and how the run continues, not what it computes. Every other option
/// is taken from config.json and refused on the command line.
const RESUME_MAY_CHANGE: [&str; 10] = [
    "out",
    "time_limit",
    "resume",
    "device",
    "checkpoint_every",
    "dist_backend",
    "dist_timeout",
    "threads",
    "quiet",
    "no_autotune_cache",
];

pub fn parse() -> (Args, ArgMatches) {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (args, matches)
}

fn list_models() {
    println!("{:<24} {:<9} {:>7} {:>8}", "model", "family", "input", "params");
    for spec in registry() {
        println!("{spec}");
    }
}

/// The options given explicitly, which win over the recipe's values.
fn overrides(args: &Args) -> Overrides {
    let no_decay_norm_bias = match (args.no_decay_norm_bias, args.decay_norm_bias) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    Overrides {
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        no_decay_norm_bias,
        drop_path: args.drop_path,
        epochs: args.epochs,
    }
}

/// A new run's settings from the command line, its recipe resolved for `world` processes.
fn config_from_args(args: &Args, world: usize) -> Result<TrainConfig> {
    let model_config = ModelConfig::from_name(&args.model, args.input_size)?;
    if args.input_size.is_some() && !matches!(model_config, ModelConfig::Vit(_)) {
        bail!("--input-size applies to ViT models; {} runs at the native 41x41", args.model);
    }
    // Absolute paths, so that --resume and lens-infer work from any directory.
    let absolute = |p: &PathBuf| -> Result<PathBuf> {
        if !p.join("pack.json").exists() {
            bail!("{} is not a pack (no pack.json); make one with lens-pack", p.display());
        }
        std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
    };
    let pack = absolute(args.pack.as_ref().expect("clap requires --pack"))?;
    let val_pack = args.val_pack.as_ref().map(absolute).transpose()?;
    let pretrained = args
        .pretrained
        .as_ref()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("{}", p.display())))
        .transpose()?;
    let mut cfg = TrainConfig {
        pack,
        val_pack,
        model: args.model.clone(),
        model_config,
        // The recipe's values replace these below, once the run's steps per epoch are known.
        epochs: 1,
        batch_size: args.batch_size,
        lr: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
        grad_clip: args.grad_clip,
        no_decay_norm_bias: false,
        pos_weight: args.pos_weight,
        // Placeholders until auto settings are resolved (resolve_auto), which needs this process's device.
        precision: args.exec.precision.fixed().unwrap_or(Precision::Fp32),
        channels_last: args.exec.memory_format().fixed().is_some_and(MemoryFormat::is_channels_last),
        autotune: None,
        seed: args.seed,
        split_seed: Some(args.split_seed),
        val_split: args.val_split,
        patience: args.patience,
        pretrained,
        checkpoint_every: args.checkpoint_every,
        data_on_device: args.data_on_device,
        device: args.exec.device.clone(),
        tool: format!("lens-train {}", env!("CARGO_PKG_VERSION")),
        recipe: None,
    };
    let name = args.recipe.unwrap_or_else(|| Recipe::default_for(args.pretrained.is_some()));
    // A pack that cannot be read fails the run where training opens it, after the processes have met, so that
    // every rank reports it alike; until then the recipe does without the run's length (no warm-up cap).
    let steps_per_epoch = lensfind_nn::train::steps_per_epoch(&cfg, world).ok();
    let (values, record) = recipe::resolve(name, args.batch_size * world, steps_per_epoch, &overrides(args));
    (cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.no_decay_norm_bias, cfg.epochs) =
        (values.lr, values.warmup_steps, values.weight_decay, values.no_decay_norm_bias, values.epochs);
    cfg.model_config.set_drop_path(values.drop_path);
    cfg.recipe = Some(record);
    Ok(cfg)
}

pub fn run(args: Args, matches: &ArgMatches) -> Result<ExitCode> {
    if args.list_models {
        list_models();
        return Ok(ExitCode::SUCCESS);
    }
    lensfind_nn::init_threads(args.exec.threads)?;
    // The run's settings decide the device (and so the backend) and the batch; an error in them is reported to
    // the other ranks once the group exists, so that they can name this one.
    let cfg = resolve_config(&args, matches);
    let Some(env) = Env::from_env()? else {
        let (cfg, start) = cfg?;
        return run_process(&args, cfg, start, None);
    };
    let device = cfg.as_ref().map_or(args.exec.device.as_str(), |(c, _)| c.device.as_str());
    let backend = Backend::choose(&args.dist_backend, rank_device(device, env.local_rank)?)?;
    let pg = ProcessGroup::init(&env, backend, std::time::Duration::from_secs(args.dist_timeout))?;
    if let (0, false, Ok((cfg, _))) = (env.rank, args.quiet, &cfg) {
        eprintln!(
            "lens-train: {} processes ({}, {backend}); batch {} per process, {} per step",
            env.world,
            env.launcher,
            cfg.batch_size,
            cfg.batch_size * env.world
        );
    }
    let agreed = |(cfg, start): (TrainConfig, Start)| -> Result<(TrainConfig, Start)> {
        if args.auto_resume {
            let run = RunDir::new(args.out.clone().expect("clap requires --out"));
            auto_resume::agree(&pg, start, &run, rank_device(&cfg.device, env.local_rank)?)?;
        }
        Ok((cfg, start))
    };
    match cfg.and_then(agreed).and_then(|(cfg, start)| run_process(&args, cfg, start, Some(&pg))) {
        Ok(code) => {
            pg.finish()?;
            Ok(code)
        }
        Err(e) => {
            pg.report_failure(&format!("{e:#}"));
            Err(e.context(format!("rank {} of {}", env.rank, env.world)))
        }
    }
}

/// The settings of the run and how it starts: config.json's with --resume (plus --device and --checkpoint-every
/// when given), the command line's for a new run, and with --auto-resume what the run directory decides. Writes
/// nothing.
fn resolve_config(args: &Args, matches: &ArgMatches) -> Result<(TrainConfig, Start)> {
    let run = RunDir::new(args.out.clone().expect("clap requires --out"));
    if !args.resume {
        let mut world = Env::from_env()?.map_or(1, |e| e.world);
        if args.auto_resume {
            // The recipe at the run's own number of processes: continued at another world size, a run keeps the
            // learning rate it scaled for its global batch, as with --resume.
            world = recorded_world(&run, args.batch_size).unwrap_or(world);
        }
        let cfg = config_from_args(args, world)?;
        parse_device(&cfg.device)?;
        if !args.auto_resume {
            return Ok((cfg, Start::New));
        }
        let channels_last = args.exec.memory_format().fixed().map(MemoryFormat::is_channels_last);
        let mut cfg = cfg;
        // A run made before --split-seed drew its split from --seed: a command line that does not name a split
        // seed continues it so.
        if matches.value_source("split_seed") != Some(ValueSource::CommandLine)
            && run.config_path().exists()
            && run.read_config().is_ok_and(|old| old.split_seed.is_none())
        {
            cfg.split_seed = None;
        }
        return auto_resume::decide(&run, cfg, args.exec.precision.fixed(), channels_last);
    }
    let given: Vec<String> = Args::command()
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| !RESUME_MAY_CHANGE.contains(id))
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|id| id.replace('_', "-"))
        .collect();
    if !given.is_empty() {
        bail!("--resume takes every setting from {}; drop --{}", run.config_path().display(), given.join(", --"));
    }
    let mut cfg = run.read_config()?;
    if matches.value_source("device") == Some(ValueSource::CommandLine) {
        cfg.device = args.exec.device.clone();
    }
    if matches.value_source("checkpoint_every") == Some(ValueSource::CommandLine) {
        cfg.checkpoint_every = args.checkpoint_every;
    }
    Ok((cfg, Start::Resume { step: None }))
}

/// The number of processes the run in `run` was started with, from its recipe's global batch (None for a new run,
/// a run made before recipes, or another batch size, which --auto-resume then names as a difference).
fn recorded_world(run: &RunDir, batch_size: usize) -> Option<usize> {
    let recipe = run.read_config().ok()?.recipe?;
    (batch_size > 0 && recipe.global_batch % batch_size == 0).then_some(recipe.global_batch / batch_size)
}

/// One process's part: the whole run, or rank `pg.rank`'s share of it. Rank 0 (or the only process) writes
/// config.json of a new run.
fn run_process(args: &Args, mut cfg: TrainConfig, start: Start, pg: Option<&ProcessGroup>) -> Result<ExitCode> {
    let run = RunDir::new(args.out.clone().expect("clap requires --out"));
    let main = pg.is_none_or(|p| p.rank == 0);
    match start {
        Start::New => {
            resolve_auto(args, &mut cfg, pg)?;
            if main {
                run.create(&cfg)?;
                report::recipe(&cfg, args.quiet);
            }
        }
        Start::Again if main && !args.quiet => {
            eprintln!("lens-train: {} has no checkpoint yet: starting it from the first step", run.path().display());
        }
        Start::Again | Start::Resume { .. } => {}
    }
    let term = Arc::new(AtomicBool::new(false));
    let int = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [(signal_hook::consts::SIGTERM, &term), (signal_hook::consts::SIGINT, &int)] {
        signal_hook::flag::register(sig, Arc::clone(flag))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut reporter = report::Reporter::new(&run, args.quiet);
    let resume = matches!(start, Start::Resume { .. });
    let time_limit = args.time_limit.map(std::time::Duration::from_secs_f64);
    match train(&cfg, &run, resume, &stop, pg, time_limit, &mut |e| reporter.event(e))? {
        Outcome::Finished | Outcome::StoppedEarly | Outcome::TimeLimit => Ok(ExitCode::SUCCESS),
        // A process stopped because another rank was signalled counts as terminated.
        Outcome::Interrupted => Ok(ExitCode::from(if int.load(Ordering::Relaxed) { 130 } else { 143 })),
    }
}

/// Settles `--precision auto` and `--memory-format auto` of a new run: rank 0 (or the only process) measures or
/// reads the cache and says what it chose; every rank then runs with rank 0's choice.
fn resolve_auto(args: &Args, cfg: &mut TrainConfig, pg: Option<&ProcessGroup>) -> Result<()> {
    let device = rank_device(&cfg.device, pg.map_or(0, |p| p.local_rank))?;
    let req = Request {
        workload: Workload::Train,
        model_name: &cfg.model,
        model: &cfg.model_config,
        batch: cfg.batch_size,
        device,
        precision: args.exec.precision,
        memory_format: args.exec.memory_format(),
    };
    let options = autotune::candidates(device, req.precision, req.memory_format);
    let mut chosen = None;
    if pg.is_none_or(|p| p.rank == 0) {
        let (setting, record, notes) = autotune::resolve(&req, &args.exec.cache())?;
        report::autotune(record.as_ref(), &notes, &args.exec.cache(), args.quiet);
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

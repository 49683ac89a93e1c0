//! lens-train's command line.

mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::builder::TypedValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use lensfind_nn::cli::{ExecArgs, AUTO_SETTINGS_HELP};
use lensfind_nn::config::{on_continue, Continued, OnContinue};
use lensfind_nn::device::{Choice, MemoryFormat};
use lensfind_nn::dist::Backend;
use lensfind_nn::recipe::{Overrides, Recipe};
use lensfind_nn::registry;
use lensfind_nn::run_dir::RunDir;
use lensfind_nn::train::launch::{launch, Launch, Mode, NewRun};
use lensfind_nn::train::Outcome;

/// Train a lens classifier on a pack: ConvNeXt or ViT with 5-channel input and one logit, timm-compatible.
///
/// The loop is the reference's: BCE-with-logits, AdamW, a linear warm-up then cosine annealing stepped per batch
/// over all steps, random horizontal and vertical flips and rotations by 90 degrees per image, batch 256, early
/// stopping on validation AUC with patience 8. The learning rate, warm-up, weight-decay groups, drop path and
/// epochs come from a --recipe (default scratch, or finetune with --pretrained; reference is the reference's own:
/// lr 1e-4, no warm-up, 50 epochs; robust, recommended for a final model, is scratch with worse observing
/// conditions on half the images and labels smoothed by 0.2); options given explicitly win over it. Without
/// --val-pack, a validation split stratified by label and source (SLSim/HSC) is drawn from --split-seed (fixed by
/// default, apart from --seed, so that the models of an ensemble share their validation objects).
///
/// The run directory gets config.json (every setting, written first), metrics.csv (one row per epoch: training
/// loss; validation loss, AUC, accuracy, precision and recall at logit 0, TPR at FPR 1e-2 and 1e-3, AUC per
/// source), timing.csv, model.safetensors (the best epoch's weights by validation AUC, under timm's names),
/// val_predictions.csv (id,label,source,logit of the best epoch) and checkpoint/ (weights, AdamW moments, counters
/// and early-stopping state: what an exact resume needs).
///
/// A checkpoint is written after every epoch and every --checkpoint-every steps, from a copy in host memory by a
/// thread of its own while training goes on (timing.csv's save_seconds is the time training waited for it). SIGTERM or SIGINT (Slurm
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

    /// Continue the run in --out from its checkpoint, with the settings of its config.json. Only where and how it
    /// runs may be given anew: --device, --memory-format, --data-on-device, --checkpoint-every, --time-limit,
    /// --threads and the distributed options.
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

    #[arg(long, long_help = recipe_help(), value_name = "RECIPE")]
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

    /// Keep a moving average of the weights with this half-life in epochs (0: none; default: the recipe's). It is
    /// validated after every epoch beside the weights themselves, and model.safetensors holds whichever of the two
    /// validated better (metrics.csv has both; the ema_ columns are the average's).
    #[arg(long, value_name = "EPOCHS")]
    pub ema_half_life: Option<f64>,

    /// The chance (0 to 1) that a training image is shown under worse observing conditions: blurred by a Gaussian
    /// of up to 1.5 pixels (broader seeing) and its noise raised up to 2x (a shallower field), each band's noise
    /// measured on the image itself. For a model that must hold up on fields observed under other conditions than
    /// its training set's. 0: never; default: the recipe's. Batches are then gathered on the host (never
    /// --data-on-device always).
    #[arg(long, value_name = "CHANCE")]
    pub degrade: Option<f64>,

    /// Smooth the training labels by EPSILON (0 to below 1): a lens is learnt as 1 - EPSILON/2 and a non-lens as
    /// EPSILON/2, so that images already ranked right stop pushing their scores further out and the rest of the
    /// training counts more. 0: the labels as they are; default: the recipe's (robust: 0.2). The training loss
    /// printed and in metrics.csv is then against the smoothed labels; the validation loss is not.
    #[arg(long, value_name = "EPSILON")]
    pub label_smoothing: Option<f64>,

    /// Weight of the positive class in the loss (BCE pos_weight).
    #[arg(long, value_name = "W")]
    pub pos_weight: Option<f64>,

    /// Focal loss (Lin et al. 2017): each object's BCE is weighted by (1 - p_t)^GAMMA, p_t the probability the
    /// model gives its true class, so that objects already ranked right count less and the hard ones (lookalikes,
    /// faint arcs) more. 0 or absent: plain BCE. The training loss printed and in metrics.csv is then the focal
    /// loss; the validation loss stays BCE.
    #[arg(long, value_name = "GAMMA")]
    pub focal_gamma: Option<f64>,

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

    /// Where batches come from: auto (the default) puts the whole pack (and --val-pack) on a GPU when it takes at
    /// most a quarter of the GPU's free memory, and gathers batches from the mapped file on a CPU; always (also
    /// the bare flag) puts it on the device; never gathers from the file. Changes the speed only, never the result.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = WhenOnDevice::Auto, num_args = 0..=1,
          default_missing_value = "always")]
    pub data_on_device: WhenOnDevice,

    #[command(flatten)]
    pub exec: ExecArgs,

    /// Collectives between processes: auto (NCCL on GPUs, Gloo on CPUs), gloo or nccl.
    #[arg(long, default_value = "auto", value_name = "BACKEND", value_parser = backend_parser())]
    pub dist_backend: Choice<Backend>,

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

/// Options of the process rather than of the run: never recorded in config.json, free on --resume.
const PROCESS_OPTIONS: [&str; 10] = [
    "out",
    "time_limit",
    "resume",
    "auto_resume",
    "dist_backend",
    "dist_timeout",
    "threads",
    "quiet",
    "no_autotune_cache",
    "list_models",
];

/// The config.json field that option `id` sets (its own name but for these).
fn recorded_as(id: &str) -> &str {
    match id {
        "memory_format" | "no_channels_last" => "channels_last",
        "decay_norm_bias" => "no_decay_norm_bias",
        "drop_path" | "input_size" => "model_config",
        other => other,
    }
}

/// Whether --resume may be given option `id`: a process option, or one that sets a setting that may change
/// (lensfind_nn::config::ON_CONTINUE, the one place that rule is written). Every other option is config.json's.
fn may_change_on_resume(id: &str) -> bool {
    PROCESS_OPTIONS.contains(&id) || on_continue(recorded_as(id)) == Some(OnContinue::MayChange)
}

/// --data-on-device's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenOnDevice {
    Auto,
    Always,
    Never,
}

impl WhenOnDevice {
    /// What the run records: whether the pack goes on the device, None for auto.
    fn given(self) -> Option<bool> {
        match self {
            WhenOnDevice::Auto => None,
            WhenOnDevice::Always => Some(true),
            WhenOnDevice::Never => Some(false),
        }
    }
}

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
        ema_half_life: args.ema_half_life,
        degrade: args.degrade,
        label_smoothing: args.label_smoothing,
    }
}

/// What the command line asks for; with --resume, an error naming the options that config.json decides.
fn to_launch(args: Args, matches: &ArgMatches) -> Result<Launch> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if args.resume {
        let refused: Vec<String> = Args::command()
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| !may_change_on_resume(id) && given(id))
            .map(|id| id.replace('_', "-"))
            .collect();
        if !refused.is_empty() {
            let config = RunDir::new(args.out.clone().unwrap_or_default()).config_path();
            bail!("--resume takes every setting from {}; drop --{}", config.display(), refused.join(", --"));
        }
    }
    let mode = match (args.resume, args.auto_resume) {
        (true, _) => Mode::Resume,
        (_, true) => Mode::AutoResume,
        _ => Mode::New,
    };
    let run = NewRun {
        overrides: overrides(&args),
        split_seed_given: given("split_seed"),
        pack: args.pack,
        val_pack: args.val_pack,
        model: args.model,
        input_size: args.input_size,
        recipe: args.recipe,
        batch_size: args.batch_size,
        grad_clip: args.grad_clip,
        pos_weight: args.pos_weight,
        focal_gamma: args.focal_gamma,
        seed: args.seed,
        split_seed: args.split_seed,
        val_split: args.val_split,
        patience: args.patience,
        pretrained: args.pretrained,
        checkpoint_every: args.checkpoint_every,
        data_on_device: args.data_on_device.given(),
    };
    Ok(Launch {
        out: args.out.expect("clap requires --out"),
        mode,
        resume: Continued {
            device: given("device").then_some(args.exec.device),
            checkpoint_every: given("checkpoint_every").then_some(args.checkpoint_every),
            data_on_device: given("data_on_device").then_some(run.data_on_device),
            channels_last: args.exec.exec().memory_format.fixed().map(MemoryFormat::is_channels_last),
        },
        run,
        exec: args.exec.exec(),
        time_limit: args.time_limit.map(Duration::from_secs_f64),
        dist_backend: args.dist_backend,
        dist_timeout: Duration::from_secs(args.dist_timeout),
    })
}

/// --dist-backend: its three values (listed in --help, the man page and the completions), typed.
fn backend_parser() -> impl TypedValueParser<Value = Choice<Backend>> {
    clap::builder::PossibleValuesParser::new(["auto", "gloo", "nccl"])
        .map(|s| s.parse::<Choice<Backend>>().expect("one of the possible values"))
}

pub fn run(args: Args, matches: &ArgMatches) -> Result<ExitCode> {
    if args.list_models {
        list_models();
        return Ok(ExitCode::SUCCESS);
    }
    lensfind_nn::init_threads(args.exec.threads)?;
    let quiet = args.quiet;
    let launch_args = to_launch(args, matches)?;
    let term = Arc::new(AtomicBool::new(false));
    let int = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [(signal_hook::consts::SIGTERM, &term), (signal_hook::consts::SIGINT, &int)] {
        signal_hook::flag::register(sig, Arc::clone(flag))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut reporter = report::Reporter::new(&launch_args.out, quiet);
    match launch(&launch_args, &stop, &mut |e| reporter.event(e))? {
        Outcome::Finished | Outcome::StoppedEarly | Outcome::TimeLimit => Ok(ExitCode::SUCCESS),
        // A process stopped because another rank was signalled counts as terminated.
        Outcome::Interrupted => Ok(ExitCode::from(if int.load(Ordering::Relaxed) { 130 } else { 143 })),
    }
}

/// --recipe's help: each preset's values, from the presets themselves so that the two cannot disagree.
fn recipe_help() -> String {
    let mut text = String::from(
        "Training recipe: a preset of learning rate, warm-up, weight-decay groups, drop path and epochs; any of \
         --lr, --warmup-steps, --weight-decay, --no-decay-norm-bias/--decay-norm-bias, --drop-path, --epochs, \
         --ema-half-life, --degrade and --label-smoothing given explicitly wins over the preset. Default: scratch, \
         or finetune with --pretrained; robust for a final model (the most lenses found at low false-positive rates \
         on the hard benchmark).",
    );
    text.push_str(
        "\n\nThe global batch is --batch-size x the number of processes. A preset's warm-up is at most a tenth \
         of the run's steps. config.json records the preset, what it resolved to and what was overridden.\n",
    );
    for r in Recipe::ALL {
        text.push_str(&format!("\n{}: {}.", r.name(), r.describe()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_of_the_process_or_sets_a_recorded_setting() {
        // So that what --resume may be given follows ON_CONTINUE for every option, including ones added later.
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            let field = recorded_as(id);
            assert!(
                PROCESS_OPTIONS.contains(&id) || on_continue(field).is_some(),
                "--{id}: neither a process option nor a config.json field ({field})"
            );
        }
        // What this gives, spelled out: where and how the run executes may change; what it computes may not.
        for id in ["device", "memory_format", "no_channels_last", "data_on_device", "checkpoint_every", "threads"] {
            assert!(may_change_on_resume(id), "{id}");
        }
        for id in ["lr", "epochs", "batch_size", "precision", "recipe", "seed", "drop_path", "model", "pack"] {
            assert!(!may_change_on_resume(id), "{id}");
        }
    }

    #[test]
    fn recipe_help_shows_each_presets_values() {
        let help = recipe_help();
        for r in Recipe::ALL {
            assert!(help.contains(&format!("\n{}: {}.", r.name(), r.describe())), "{help}");
        }
        assert!(help.contains("scratch: lr 2e-3 x global batch / 256, warm-up 200 steps"), "{help}");
    }
}

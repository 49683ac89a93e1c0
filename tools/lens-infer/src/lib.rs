//! lens-infer's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use lensfind_core::output::write_output;
use lensfind_core::progress::Progress;
use lensfind_data::pack::Pack;
use lensfind_nn::autotune::{self, Request, Setting, Workload};
use lensfind_nn::batch::Batcher;
use lensfind_nn::cli::{ExecArgs, AUTO_SETTINGS_HELP};
use lensfind_nn::device::{parse_device, Device, ExecSettings};
use lensfind_nn::infer::Predictor;
use lensfind_nn::run_dir::RunDir;
use lensfind_nn::run_dir::TrainConfig;
use lensfind_nn::tta::Tta;

/// Score the objects of a pack with a trained run: one logit per object, averaged over test-time views.
///
/// Loads RUN/config.json and RUN/model.safetensors and runs the model at its own input size (ConvNeXt at 41x41,
/// ViT at the size it was trained at; the 41x41 images are resized on the device), so models of both families can
/// be mixed in one ensemble. Prints CSV to stdout (or --output): id,logit, plus one logit_<view> column per view
/// with --per-view. Rows are in pack order.
///
/// Test-time augmentation (--tta): none; flips (the original, a horizontal and a vertical flip: the reference's
/// default); d4 (all 8 rotations by 90 degrees and reflections). The logits of the views are averaged.
///
/// --shard K/N scores only the pack rows with row % N == K, so a Slurm job array of N tasks covers a survey-sized
/// catalogue; lens-ensemble, or a plain concatenation without the repeated headers, joins the shards.
///
/// Precision and memory format are measured at start-up by default (see AUTO SETTINGS below); the classifier head
/// always runs in float32.
#[derive(Debug, Parser)]
#[command(name = "lens-infer", after_long_help = AUTO_SETTINGS_HELP, version = lensfind_nn::version::version(env!("CARGO_PKG_VERSION")), max_term_width = 110)]
pub struct Args {
    /// The run directory (lens-train's --out).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,

    /// The pack to score.
    #[arg(long, value_name = "PACK")]
    pub pack: PathBuf,

    /// Write the logits to FILE (whole or not at all) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Test-time augmentation: none, flips or d4.
    #[arg(long, default_value = "flips", value_parser = |s: &str| s.parse::<Tta>())]
    pub tta: Tta,

    /// Add one logit column per view.
    #[arg(long)]
    pub per_view: bool,

    /// Objects per batch; each view of a batch is one call of the model.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,

    /// Score only rows with row % N == K (K from 0).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,

    #[command(flatten)]
    pub exec: ExecArgs,

    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected K/N"))?;
    match (k.parse::<usize>(), n.parse::<usize>()) {
        (Ok(k), Ok(n)) if n > 0 && k < n => Ok((k, n)),
        _ => Err(format!("{s:?}: expected K/N with 0 <= K < N")),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    lensfind_nn::init_threads(args.exec.threads)?;
    let device = parse_device(&args.exec.device)?;
    lensfind_nn::device::prepare_cuda(device);
    let run = RunDir::new(&args.run);
    let setting = auto_setting(&args, &run.read_config()?, device)?;
    let channels_last = setting.memory_format.is_channels_last();
    let predictor = Predictor::load(&run, device, channels_last)?;
    let pack = Arc::new(Pack::open(&args.pack).with_context(|| format!("opening {}", args.pack.display()))?);
    // The training pack may be gone by now; when it is there, its standardisation must match.
    if let Ok(trained) = lensfind_data::pack::read_manifest(&predictor.config.pack) {
        if trained.standardization.mode != pack.manifest.standardization.mode {
            bail!(
                "{} is standardised {:?} but the run trained on {:?} images: the model would see other numbers \
                 than it learnt (repack with --standardize)",
                args.pack.display(),
                pack.manifest.standardization.mode,
                trained.standardization.mode
            );
        }
    }
    let rows: Vec<usize> = match args.shard {
        Some((k, n)) => (0..pack.len()).filter(|r| r % n == k).collect(),
        None => (0..pack.len()).collect(),
    };
    // The rows about to be scored are read anyway: check them against the pack's block checksums first, so an
    // edited or damaged images.npy is an error naming the rows, never a wrong score.
    pack.check_rows(rows.iter().copied()).with_context(|| format!("checking {}", args.pack.display()))?;
    let views = args.tta.views();
    let settings = ExecSettings {
        size: predictor.config.model_config.input_size(),
        precision: setting.precision,
        channels_last,
        device,
        batch: args.batch_size,
    };
    let batcher = Batcher::new(Arc::clone(&pack), device, Some(false))?;
    let progress = Progress::new("lens-infer", "objects", rows.len() as u64, args.quiet);
    let logits = predictor.predict_views(&batcher, &rows, &views, settings, &mut |n| progress.inc(n as u64))?;
    progress.finish();
    write_output(args.output.as_deref(), |w| {
        let mut header = String::from("id,logit");
        if args.per_view {
            for name in args.tta.view_names() {
                header.push_str(&format!(",logit_{name}"));
            }
        }
        writeln!(w, "{header}")?;
        for (&r, per_view) in rows.iter().zip(&logits) {
            let mean = per_view.iter().sum::<f64>() / per_view.len() as f64;
            write!(w, "{},{mean:.6}", csv_field(&pack.meta[r].id))?;
            if args.per_view {
                for v in per_view {
                    write!(w, ",{v:.6}")?;
                }
            }
            writeln!(w)?;
        }
        Ok(())
    })?;
    if !args.quiet {
        eprintln!(
            "lens-infer: scored {} objects of {} with {} ({} view(s) each)",
            rows.len(),
            args.pack.display(),
            predictor.config.model,
            views.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The precision and memory format to score with: given, or measured (and cached) for this model and batch.
fn auto_setting(args: &Args, cfg: &TrainConfig, device: Device) -> Result<Setting> {
    let req = Request {
        workload: Workload::Infer,
        model_name: &cfg.model,
        model: &cfg.model_config,
        batch: args.batch_size,
        device,
        precision: args.exec.precision,
        memory_format: args.exec.memory_format(),
    };
    let cache = args.exec.cache();
    let (setting, record, notes) = autotune::resolve(&req, &cache)?;
    for note in notes {
        eprintln!("lens-infer: {note}");
    }
    if let (Some(r), false) = (record, args.quiet) {
        eprintln!("lens-infer: {}", r.summary(&cache));
    }
    Ok(setting)
}

/// Quotes an id for CSV when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

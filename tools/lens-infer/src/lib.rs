//! lens-infer's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lensfind_core::output::write_whole;
use lensfind_core::progress::Progress;
use lensfind_core::text::csv_field;
use lensfind_nn::cli::{ExecArgs, AUTO_SETTINGS_HELP};
use lensfind_nn::infer::{self, score, Scoring};
use lensfind_nn::run_dir::RunDir;
use lensfind_nn::tta::Tta;

/// Score the objects of a pack with a trained run: one logit per object, averaged over test-time views.
///
/// Loads RUN/config.json and RUN/model.safetensors and runs the model at its own input size (ConvNeXt at 41x41,
/// ViT at the size it was trained at; the 41x41 images are resized on the device), so models of both families can
/// be mixed in one ensemble. Prints CSV to stdout (or --output): id,logit, plus one logit_<view> column per view
/// with --per-view. Rows are in pack order.
///
/// Test-time augmentation (--tta): d4 (the default: all 8 rotations by 90 degrees and reflections), flips (the
/// original, a horizontal and a vertical flip: the reference's default, 3/8 of the model calls), or none. The logits
/// of the views are averaged. On the hard synthetic benchmark d4 raised AUC and TPR at FPR 1e-2 over flips for each
/// of three trained models, and TPR at FPR 1e-3 on average (BENCHMARKS.md).
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

    /// Test-time augmentation: d4 (8 views), flips (3) or none.
    #[arg(long, default_value = "d4", value_parser = |s: &str| s.parse::<Tta>())]
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
    let exec = args.exec.exec();
    lensfind_nn::init_threads(exec.threads)?;
    let device = exec.device.resolve(0)?;
    lensfind_nn::device::prepare_cuda(device);
    let run = RunDir::new(&args.run);
    let views = args.tta.views();
    let cache = exec.cache();
    let req = Scoring {
        run: &run,
        pack: &args.pack,
        views: &views,
        batch: args.batch_size,
        shard: args.shard,
        device,
        precision: exec.precision,
        memory_format: exec.memory_format,
        cache: &cache,
    };
    let mut progress: Option<Progress> = None;
    let scored = score(&req, &mut |event| match event {
        infer::Progress::Rows(rows) => progress = Some(Progress::new("lens-infer", "objects", rows as u64, args.quiet)),
        infer::Progress::Scored(n) => progress.iter().for_each(|p| p.inc(n as u64)),
    })?;
    if let Some(p) = progress {
        p.finish();
    }
    for note in &scored.notes {
        eprintln!("lens-infer: {note}");
    }
    if let (Some(r), false) = (&scored.autotune, args.quiet) {
        eprintln!("lens-infer: {}", r.summary(&cache));
    }
    write_whole(args.output.as_deref(), |w| {
        let mut header = String::from("id,logit");
        if args.per_view {
            for name in args.tta.view_names() {
                header.push_str(&format!(",logit_{name}"));
            }
        }
        writeln!(w, "{header}")?;
        for (&r, per_view) in scored.rows.iter().zip(&scored.logits) {
            let mean = per_view.iter().sum::<f64>() / per_view.len() as f64;
            write!(w, "{},{mean:.6}", csv_field(&scored.pack.meta[r].id))?;
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
            scored.rows.len(),
            args.pack.display(),
            scored.model,
            views.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

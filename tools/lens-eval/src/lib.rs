//! lens-eval's command line: the evaluation is lensfind::metrics's, the plot lensfind::render's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lensfind::metrics::{evaluate, roc, Evaluation, Report};
use lensfind::output::write_output;
use lensfind::render::roc_plot;
use lensfind::scores::{read_scores, read_truth, Joined};
use serde::Serialize;

/// Measure how well a submission ranks lenses: AUC, accuracy, precision, recall and F1 at a threshold, TPR at FPR
/// 1e-2, 1e-3 and 1e-4, TPR0 (before the first false positive) and TPR10 (with fewer than 10 false positives), as
/// in the Bologna lens-finding challenge; overall and per source (1 = SLSim/DP0, 2 = HSC).
///
/// --pred is lens-ensemble's id,pred (probabilities; threshold 0.5) or lens-infer's id,logit (threshold 0).
/// --truth is a labels CSV (id,label[,source], as lens-synth --blind writes), an index, or a pack directory.
/// Every scored id must have a label and every labelled id a score, unless --allow-missing (then the ids in
/// both are used and the others counted).
///
/// JSON goes to stdout, a table to stderr. AUC counts ties as half, as sklearn's roc_auc_score.
#[derive(Debug, Parser)]
#[command(name = "lens-eval", version, max_term_width = 110)]
pub struct Args {
    /// The predictions: id,pred or id,logit.
    #[arg(long, value_name = "FILE")]
    pub pred: PathBuf,

    /// The labels: a CSV with id,label[,source], or a pack.
    #[arg(long, value_name = "FILE|PACK")]
    pub truth: PathBuf,

    /// Threshold for accuracy, precision, recall and F1 (default: 0.5 for pred, 0 for logit).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,

    /// Write the ROC curve (fpr,tpr,threshold) to FILE.
    #[arg(long, value_name = "FILE")]
    pub roc: Option<PathBuf>,

    /// Draw the ROC curves (all objects and each source) with a log FPR axis into FILE (PNG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Evaluate the ids present in both files instead of failing when they differ.
    #[arg(long)]
    pub allow_missing: bool,
}

/// lens-eval's JSON on stdout.
#[derive(Debug, Serialize)]
struct Output {
    pred: String,
    truth: String,
    score_column: String,
    threshold: f64,
    missing_labels: usize,
    missing_scores: usize,
    all: Report,
    by_source: BTreeMap<u8, Report>,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// The table on stderr: one line for all objects and one per source.
fn print_table(eval: &Evaluation) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{:<8} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "group", "n", "lenses", "AUC", "acc", "prec", "recall", "F1", "TPR@1e-2", "@1e-3", "@1e-4", "TPR0", "TPR10"
    )?;
    let groups = std::iter::once(("all".to_string(), &eval.all))
        .chain(eval.by_source.iter().map(|(k, v)| (format!("source {k}"), v)));
    for (name, r) in groups {
        writeln!(
            err,
            "{name:<8} {:>7} {:>6} {:>7} {:>6.4} {:>6.4} {:>6.4} {:>6.4} {:>8} {:>7} {:>7} {:>6} {:>6}",
            r.n,
            r.lenses,
            fmt(r.auc),
            r.accuracy,
            r.precision,
            r.recall,
            r.f1,
            fmt(r.tpr_at_fpr_1e2),
            fmt(r.tpr_at_fpr_1e3),
            fmt(r.tpr_at_fpr_1e4),
            fmt(r.tpr0),
            fmt(r.tpr10)
        )?;
    }
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let pred = read_scores(&args.pred, &["pred", "logit"])?;
    let truth = read_truth(&args.truth)?;
    let threshold = args.threshold.unwrap_or(if pred.column == "pred" { 0.5 } else { 0.0 });
    let joined = Joined::new(&pred, &truth);
    joined.check(&args.pred, &args.truth, args.allow_missing)?;
    let (scores, labels, sources) = (&joined.scores, &joined.labels, &joined.sources);
    let eval = evaluate(scores, labels, sources, threshold);
    if let Some(path) = &args.roc {
        write_output(Some(path), |w| {
            writeln!(w, "fpr,tpr,threshold")?;
            for (fpr, tpr, t) in roc(scores, labels) {
                writeln!(w, "{fpr},{tpr},{t}")?;
            }
            Ok(())
        })?;
    }
    if let Some(path) = &args.plot {
        roc_plot(path, scores, labels, sources, &eval)?;
    }
    print_table(&eval)?;
    let out = Output {
        pred: args.pred.display().to_string(),
        truth: args.truth.display().to_string(),
        score_column: pred.column.clone(),
        threshold,
        missing_labels: joined.missing_labels.len(),
        missing_scores: joined.missing_scores.len(),
        all: eval.all,
        by_source: eval.by_source,
    };
    write_output(None, |w| {
        serde_json::to_writer_pretty(&mut *w, &out)?;
        writeln!(w)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

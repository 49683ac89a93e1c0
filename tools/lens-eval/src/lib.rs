//! lens-eval's command line.

mod plot;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use lensfind::metrics::{auc, roc, tpr_at_fp_count, tpr_at_fpr, Confusion};
use lensfind::output::write_output;
use lensfind::scores::{read_scores, read_truth};
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

/// The metrics of one group of objects.
#[derive(Debug, Serialize)]
pub struct Report {
    pub n: usize,
    pub lenses: usize,
    pub auc: Option<f64>,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tpr_at_fpr_1e2: Option<f64>,
    pub tpr_at_fpr_1e3: Option<f64>,
    pub tpr_at_fpr_1e4: Option<f64>,
    pub tpr0: Option<f64>,
    pub tpr10: Option<f64>,
}

pub fn report(scores: &[f64], labels: &[u8], threshold: f64) -> Report {
    let c = Confusion::at(scores, labels, threshold);
    Report {
        n: scores.len(),
        lenses: labels.iter().filter(|&&l| l == 1).count(),
        auc: auc(scores, labels),
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        tpr_at_fpr_1e2: tpr_at_fpr(scores, labels, 1e-2),
        tpr_at_fpr_1e3: tpr_at_fpr(scores, labels, 1e-3),
        tpr_at_fpr_1e4: tpr_at_fpr(scores, labels, 1e-4),
        tpr0: tpr_at_fp_count(scores, labels, 0),
        tpr10: tpr_at_fp_count(scores, labels, 9),
    }
}

#[derive(Debug, Serialize)]
struct Output {
    pred: String,
    truth: String,
    score_column: String,
    threshold: f64,
    missing_labels: usize,
    missing_scores: usize,
    all: Report,
    by_source: std::collections::BTreeMap<String, Report>,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let pred = read_scores(&args.pred, &["pred", "logit"])?;
    let truth = read_truth(&args.truth)?;
    let threshold = args.threshold.unwrap_or(if pred.column == "pred" { 0.5 } else { 0.0 });
    let labels: HashMap<&str, (u8, Option<u8>)> = truth.iter().map(|t| (t.id.as_str(), (t.label, t.source))).collect();
    let scored: HashMap<&str, f64> = pred.ids.iter().map(String::as_str).zip(pred.values.iter().copied()).collect();
    let missing_labels: Vec<&str> = pred.ids.iter().map(String::as_str).filter(|id| !labels.contains_key(id)).collect();
    let missing_scores: Vec<&str> = truth.iter().map(|t| t.id.as_str()).filter(|id| !scored.contains_key(id)).collect();
    if !args.allow_missing {
        for (what, ids, file) in
            [("no label in", &missing_labels, &args.truth), ("no score in", &missing_scores, &args.pred)]
        {
            if !ids.is_empty() {
                let shown: Vec<&str> = ids.iter().copied().take(5).collect();
                bail!(
                    "{} id(s) have {what} {}: {}{} (--allow-missing evaluates the ids in both)",
                    ids.len(),
                    file.display(),
                    shown.join(", "),
                    if ids.len() > 5 { ", ..." } else { "" }
                );
            }
        }
    }
    let mut rows: Vec<(f64, u8, Option<u8>)> = pred
        .ids
        .iter()
        .zip(&pred.values)
        .filter_map(|(id, &s)| labels.get(id.as_str()).map(|&(l, src)| (s, l, src)))
        .collect();
    if rows.is_empty() {
        bail!("no id of {} has a label in {}", args.pred.display(), args.truth.display());
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (scores, labs): (Vec<f64>, Vec<u8>) = rows.iter().map(|r| (r.0, r.1)).unzip();
    // (source, scores, labels) of each source present.
    let sources: Vec<(u8, Vec<f64>, Vec<u8>)> = [1u8, 2]
        .into_iter()
        .map(|src| {
            let (s, l): (Vec<f64>, Vec<u8>) = rows.iter().filter(|r| r.2 == Some(src)).map(|r| (r.0, r.1)).unzip();
            (src, s, l)
        })
        .filter(|(_, s, _)| !s.is_empty())
        .collect();
    let by_source = sources.iter().map(|(src, s, l)| (src.to_string(), report(s, l, threshold))).collect();
    let out = Output {
        pred: args.pred.display().to_string(),
        truth: args.truth.display().to_string(),
        score_column: pred.column.clone(),
        threshold,
        missing_labels: missing_labels.len(),
        missing_scores: missing_scores.len(),
        all: report(&scores, &labs, threshold),
        by_source,
    };
    if let Some(path) = &args.roc {
        write_output(Some(path), |w| {
            writeln!(w, "fpr,tpr,threshold")?;
            for (fpr, tpr, t) in roc(&scores, &labs) {
                writeln!(w, "{fpr},{tpr},{t}")?;
            }
            Ok(())
        })?;
    }
    if let Some(path) = &args.plot {
        let negatives = labs.iter().filter(|&&l| l != 1).count().max(1);
        // Down to the smallest FPR the data can show (one false positive), and at least to 1e-4.
        let min_fpr = (1.0 / negatives as f64).min(1e-4) / 2.0;
        let curve = |s: &[f64], l: &[u8]| roc(s, l).into_iter().map(|(f, t, _)| (f, t)).collect::<Vec<_>>();
        let mut curves = vec![plot::Curve { name: "all".into(), auc: out.all.auc, points: curve(&scores, &labs) }];
        for ((src, s, l), r) in sources.iter().zip(out.by_source.values()) {
            curves.push(plot::Curve { name: format!("source {src}"), auc: r.auc, points: curve(s, l) });
        }
        plot::roc_png(path, &curves, min_fpr)?;
    }
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{:<8} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "group", "n", "lenses", "AUC", "acc", "prec", "recall", "F1", "TPR@1e-2", "@1e-3", "@1e-4", "TPR0", "TPR10"
    )?;
    let groups = std::iter::once(("all".to_string(), &out.all))
        .chain(out.by_source.iter().map(|(k, v)| (format!("source {k}"), v)));
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
    drop(err);
    write_output(None, |w| {
        serde_json::to_writer_pretty(&mut *w, &out)?;
        writeln!(w)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

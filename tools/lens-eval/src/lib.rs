//! lens-eval's command line: the evaluation is lensfind::metrics's, the plot lensfind::render's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use lensfind::calibration::{self, Bin, Method};
use lensfind::ensemble::sigmoid;
use lensfind::metrics::{evaluate, roc, Confusion, Evaluation, Report};
use lensfind::operating::{pick, Rule};
use lensfind::output::write_output;
use lensfind::render::roc_plot;
use lensfind::scores::{has_column, read_scores, read_truth, Joined};
use serde::Serialize;

/// Measure how well a submission ranks lenses: AUC, accuracy, precision, recall and F1 at a threshold, TPR at FPR
/// 1e-2, 1e-3 and 1e-4, TPR0 (before the first false positive) and TPR10 (with fewer than 10 false positives), as
/// in the Bologna lens-finding challenge; overall and per source (1 = SLSim/DP0, 2 = HSC).
///
/// --pred is lens-ensemble's id,pred (probabilities; threshold 0.5) or lens-infer's id,logit (threshold 0); a file
/// with both (an ensemble of validation predictions) is evaluated on its logit, its pred giving the probabilities;
/// a challenge submission (lens-ensemble --format challenge) on its 1/0 preds, which gives the true- and
/// false-positive rates of the submitted decisions (at_threshold).
/// --truth is a labels CSV (id,label[,source], as lens-synth --blind writes), an index, or a pack directory;
/// without it, the labels of --pred itself (validation predictions: id,label,source,logit). Every scored id must
/// have a label and every labelled id a score, unless --allow-missing (then the ids in both are used and the
/// others counted).
///
/// Calibration: the log-loss, Brier score and expected calibration error (10 equal-width bins) of the
/// probabilities (pred, or sigmoid(logit)); --plot draws the reliability diagram beside the ROC curves.
/// --fit-calibration fits a temperature (with --platt also a bias) on the logits and writes it for
/// lens-ensemble --calibration.
///
/// --pick-threshold RULE chooses an operating point on the scores and prints it as JSON instead of the metrics
/// (lens-ensemble --threshold reads that file): fpr=X (the most lenses at a false-positive rate of at most X),
/// tpr=X (the fewest objects called at a true-positive rate of at least X), f1 (the best F1), fraction=X (at most a
/// fraction X of the objects called; needs no labels). A score >= the threshold is called a lens; tied scores are
/// called together, so a rate is met exactly when a cut between distinct scores falls there, else as closely as
/// possible on the safe side (lower FPR, higher TPR, smaller fraction). The threshold lies midway between the
/// lowest score called and the next lower one, given as a logit and a probability.
///
/// JSON goes to stdout, a table to stderr. AUC counts ties as half, as sklearn's roc_auc_score.
#[derive(Debug, Parser)]
#[command(name = "lens-eval", version, max_term_width = 110)]
pub struct Args {
    /// The predictions: id,pred, id,logit, both, or a challenge submission (id,preds,...).
    #[arg(long, value_name = "FILE")]
    pub pred: PathBuf,

    /// The labels: a CSV with id,label[,source], or a pack (default: the label column of --pred).
    #[arg(long, value_name = "FILE|PACK")]
    pub truth: Option<PathBuf>,

    /// Threshold for accuracy, precision, recall and F1 (default: 0.5 for pred, 0 for logit).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,

    /// Write the ROC curve (fpr,tpr,threshold) to FILE.
    #[arg(long, value_name = "FILE")]
    pub roc: Option<PathBuf>,

    /// Draw the ROC curves (all objects and each source) with a log FPR axis, and the reliability diagram, into
    /// FILE (PNG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Choose a threshold by RULE (fpr=X, tpr=X, f1 or fraction=X) and print it as JSON instead of the metrics.
    #[arg(long, value_name = "RULE")]
    pub pick_threshold: Option<String>,

    /// Fit a calibration (a temperature) on the logits and write it to FILE as JSON, for lens-ensemble
    /// --calibration.
    #[arg(long, value_name = "FILE")]
    pub fit_calibration: Option<PathBuf>,

    /// With --fit-calibration: fit a bias as well as the temperature (Platt scaling).
    #[arg(long, requires = "fit_calibration")]
    pub platt: bool,

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
    at_threshold: AtThreshold,
    calibration: CalibrationReport,
}

/// The counts and rates at the threshold, over all objects.
#[derive(Debug, Serialize)]
struct AtThreshold {
    tp: u64,
    fp: u64,
    tn: u64,
    #[serde(rename = "fn")]
    fn_: u64,
    tpr: f64,
    fpr: f64,
}

/// How well the probabilities are calibrated, over all objects.
#[derive(Debug, Serialize)]
struct CalibrationReport {
    /// Where the probabilities came from: `pred`, or `sigmoid(logit)`.
    probabilities: String,
    log_loss: f64,
    brier: f64,
    ece: f64,
    reliability: Vec<Bin>,
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

/// The labels: --truth's, or those of the scores file itself.
fn truth_path(args: &Args) -> Result<PathBuf> {
    match &args.truth {
        Some(t) => Ok(t.clone()),
        None if has_column(&args.pred, "label")? => Ok(args.pred.clone()),
        None => bail!("{} has no label column: give the labels with --truth", args.pred.display()),
    }
}

/// --pick-threshold: the operating point as JSON on stdout, a line on stderr.
fn pick_threshold(args: &Args, rule: &str) -> Result<ExitCode> {
    let rule: Rule = rule.parse()?;
    let pred = read_scores(&args.pred, &["logit", "pred"])?;
    let labelled = args.truth.is_some() || has_column(&args.pred, "label")?;
    let point = if !labelled && matches!(rule, Rule::Fraction(_)) {
        pick(&pred.values, None, rule, &pred.column)?
    } else {
        let truth_path = truth_path(args)?;
        let joined = Joined::new(&pred, &read_truth(&truth_path)?);
        joined.check(&args.pred, &truth_path, args.allow_missing)?;
        pick(&joined.scores, Some(&joined.labels), rule, &pred.column)?
    };
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"));
    eprintln!(
        "lens-eval: {}: threshold {} (logit {}, probability {}): {} of {} called lenses; TPR {}, FPR {}",
        point.rule,
        pred.column,
        show(point.logit),
        show(point.probability),
        point.called,
        point.n,
        show(point.tpr),
        show(point.fpr)
    );
    write_output(None, |w| {
        serde_json::to_writer_pretty(&mut *w, &point)?;
        writeln!(w)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// --fit-calibration: fits on the logits and writes the calibration file.
fn fit_calibration(path: &Path, args: &Args, column: &str, scores: &[f64], labels: &[u8]) -> Result<()> {
    if column != "logit" {
        bail!("--fit-calibration fits on logits; {} has only probabilities (pred)", args.pred.display());
    }
    let method = if args.platt { Method::Platt } else { Method::Temperature };
    let fitted = calibration::fit(scores, labels, method)?;
    write_output(Some(path), |w| {
        serde_json::to_writer_pretty(&mut *w, &fitted)?;
        writeln!(w)?;
        Ok(())
    })?;
    eprintln!(
        "lens-eval: calibration: temperature {:.4}, bias {:.4}; log-loss on these {} objects {:.4} -> {:.4}",
        fitted.temperature, fitted.bias, fitted.n, fitted.log_loss_before, fitted.log_loss_after
    );
    Ok(())
}

/// --roc: the ROC curve as CSV.
fn write_roc(path: &Path, scores: &[f64], labels: &[u8]) -> Result<()> {
    write_output(Some(path), |w| {
        writeln!(w, "fpr,tpr,threshold")?;
        for (fpr, tpr, t) in roc(scores, labels) {
            writeln!(w, "{fpr},{tpr},{t}")?;
        }
        Ok(())
    })?;
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(rule) = &args.pick_threshold {
        return pick_threshold(&args, rule);
    }
    let pred = read_scores(&args.pred, &["logit", "pred", "preds"])?;
    let truth_path = truth_path(&args)?;
    let truth = read_truth(&truth_path)?;
    let threshold = args.threshold.unwrap_or(if pred.column == "logit" { 0.0 } else { 0.5 });
    let joined = Joined::new(&pred, &truth);
    joined.check(&args.pred, &truth_path, args.allow_missing)?;
    let (scores, labels, sources) = (&joined.scores, &joined.labels, &joined.sources);
    let eval = evaluate(scores, labels, sources, threshold);
    // Probabilities: the file's pred column when it has one (with a logit column too, the logit ranks), else the
    // sigmoid of the logits.
    let (probabilities, from) = if pred.column == "logit" && has_column(&args.pred, "pred")? {
        let p = Joined::new(&read_scores(&args.pred, &["pred"])?, &truth);
        (p.scores, "pred")
    } else if pred.column == "logit" {
        (scores.iter().map(|&z| sigmoid(z)).collect(), "sigmoid(logit)")
    } else {
        (scores.clone(), "pred")
    };
    let c = Confusion::at(scores, labels, threshold);
    let at_threshold = AtThreshold {
        tp: c.tp,
        fp: c.fp,
        tn: c.tn,
        fn_: c.fn_,
        tpr: c.recall(),
        fpr: if c.fp + c.tn == 0 { 0.0 } else { c.fp as f64 / (c.fp + c.tn) as f64 },
    };
    let calibration_report = CalibrationReport {
        probabilities: from.to_string(),
        log_loss: calibration::log_loss_of_probabilities(&probabilities, labels),
        brier: calibration::brier(&probabilities, labels),
        ece: calibration::ece(&probabilities, labels),
        reliability: calibration::reliability(&probabilities, labels),
    };
    if let Some(path) = &args.fit_calibration {
        fit_calibration(path, &args, &pred.column, scores, labels)?;
    }
    if let Some(path) = &args.roc {
        write_roc(path, scores, labels)?;
    }
    if let Some(path) = &args.plot {
        roc_plot(path, scores, labels, sources, &eval, &probabilities)?;
    }
    print_table(&eval)?;
    eprintln!(
        "at threshold {threshold} on {}: {} of {} lenses called (TPR {:.4}), {} of {} non-lenses (FPR {:.4})",
        pred.column,
        c.tp,
        c.tp + c.fn_,
        at_threshold.tpr,
        c.fp,
        c.fp + c.tn,
        at_threshold.fpr
    );
    eprintln!(
        "calibration ({}): log-loss {:.4}, Brier {:.4}, ECE {:.4}",
        calibration_report.probabilities, calibration_report.log_loss, calibration_report.brier, calibration_report.ece
    );
    let out = Output {
        pred: args.pred.display().to_string(),
        truth: truth_path.display().to_string(),
        score_column: pred.column.clone(),
        threshold,
        missing_labels: joined.missing_labels.len(),
        missing_scores: joined.missing_scores.len(),
        all: eval.all,
        by_source: eval.by_source,
        at_threshold,
        calibration: calibration_report,
    };
    write_output(None, |w| {
        serde_json::to_writer_pretty(&mut *w, &out)?;
        writeln!(w)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

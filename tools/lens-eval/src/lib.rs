//! lens-eval's command line: the evaluation is lensfind_eval::evaluation's, the plot lensfind_view::render's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use lensfind_core::output::write_whole;
use lensfind_eval::calibration::{self, Method};
use lensfind_eval::evaluation::{evaluate_files, pick_on_file, write_roc, EvalError, Evaluated, Inputs};
use lensfind_eval::metrics::Evaluation;
use lensfind_eval::scores::{ScoreColumn, ScoresError};
use lensfind_eval::OperatingError;
use lensfind_view::render::roc_plot;
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

/// The files named on the command line.
fn inputs(args: &Args) -> Inputs<'_> {
    Inputs { pred: &args.pred, truth: args.truth.as_deref(), allow_missing: args.allow_missing }
}

/// --pick-threshold: the operating point as JSON on stdout, a line on stderr.
fn pick_threshold(args: &Args, rule: &str) -> Result<ExitCode> {
    let (point, column) = pick_on_file(inputs(args), rule.parse()?)?;
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"));
    eprintln!(
        "lens-eval: {}: threshold {column} (logit {}, probability {}): {} of {} called lenses; TPR {}, FPR {}",
        point.rule,
        show(point.logit),
        show(point.probability),
        point.called,
        point.n,
        show(point.tpr),
        show(point.fpr)
    );
    write_json(None, &point)?;
    Ok(ExitCode::SUCCESS)
}

/// JSON, pretty, to `path` or stdout.
fn write_json(path: Option<&Path>, value: &impl Serialize) -> Result<()> {
    Ok(write_whole(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        writeln!(w)?;
        Ok(())
    })?)
}

/// --fit-calibration: fits on the logits and writes the calibration file.
fn fit_calibration(path: &Path, args: &Args, e: &Evaluated) -> Result<()> {
    if e.summary.score_column != ScoreColumn::Logit {
        bail!("--fit-calibration fits on logits; {} has only probabilities (pred)", args.pred.display());
    }
    let method = if args.platt { Method::Platt } else { Method::Temperature };
    let fitted = calibration::fit(&e.scores, &e.labels, method)?;
    write_json(Some(path), &fitted)?;
    eprintln!(
        "lens-eval: calibration: temperature {:.4}, bias {:.4}; log-loss on these {} objects {:.4} -> {:.4}",
        fitted.temperature, fitted.bias, fitted.n, fitted.log_loss_before, fitted.log_loss_after
    );
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(rule) = &args.pick_threshold {
        return pick_threshold(&args, rule);
    }
    let e = evaluate_files(inputs(&args), args.threshold)?;
    if let Some(path) = &args.fit_calibration {
        fit_calibration(path, &args, &e)?;
    }
    if let Some(path) = &args.roc {
        write_roc(path, &e.scores, &e.labels)?;
    }
    let eval = &e.summary.eval;
    if let Some(path) = &args.plot {
        roc_plot(path, &e.scores, &e.labels, &e.sources, eval, &e.probabilities)?;
    }
    print_table(eval)?;
    let (s, at) = (&e.summary, &e.summary.at_threshold);
    eprintln!(
        "at threshold {} on {}: {} of {} lenses called (TPR {:.4}), {} of {} non-lenses (FPR {:.4})",
        s.threshold,
        s.score_column,
        at.tp,
        at.tp + at.fn_,
        at.tpr,
        at.fp,
        at.fp + at.tn,
        at.fpr
    );
    let c = &s.calibration;
    eprintln!("calibration ({}): log-loss {:.4}, Brier {:.4}, ECE {:.4}", c.probabilities, c.log_loss, c.brier, c.ece);
    write_json(None, s)?;
    Ok(ExitCode::SUCCESS)
}

/// lensfind-eval's errors that a given option answers, worded with the options' names (for
/// lensfind_core::cli::main_worded).
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let scores = |s: &ScoresError| {
        matches!(s, ScoresError::Missing { .. }).then(|| format!("{s} (--allow-missing evaluates the ids in both)"))
    };
    let operating = |o: &OperatingError| match o {
        OperatingError::NeedsLabels { rule } => {
            Some(format!("the rule {rule} needs labels (a --truth, or a label column in the scores)"))
        }
        _ => None,
    };
    if let Some(e) = e.downcast_ref::<EvalError>() {
        return match e {
            EvalError::Scores(s) => scores(s),
            EvalError::Operating(o) => operating(o),
            EvalError::NoLabels(path) => {
                Some(format!("{} has no label column: give the labels with --truth", path.display()))
            }
        };
    }
    if let Some(s) = e.downcast_ref::<ScoresError>() {
        return scores(s);
    }
    e.downcast_ref::<OperatingError>().and_then(operating)
}

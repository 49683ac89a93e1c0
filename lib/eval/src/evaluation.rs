//! A scores file evaluated against its labels, what lens-eval reports: the metrics overall and per source, the
//! counts at a threshold, how well the probabilities are calibrated, and an operating point picked on the scores.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::calibration::{self, Bin};
use crate::metrics::{evaluate, roc, Confusion, Evaluation};
use crate::operating::{pick, OperatingError, OperatingPoint, Rule};
use crate::probability::sigmoid;
use crate::scores::{has_column, read_scores, read_truth, Joined, ScoreColumn, Scores, ScoresError, Truth};
use lensfind_core::output::{write_whole, OutputError};

/// Why a scores file could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Scores(#[from] ScoresError),
    #[error(transparent)]
    Operating(#[from] OperatingError),
    #[error("{} has no label column: the labels must come from a truth file", .0.display())]
    NoLabels(PathBuf),
}

/// The files to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// id,pred, id,logit, both, or a challenge submission (id,preds,...).
    pub pred: &'a Path,
    /// A labels CSV (id,label[,source]), an index or a pack; None: the label column of `pred`.
    pub truth: Option<&'a Path>,
    /// Evaluate the ids in both files instead of failing when they differ.
    pub allow_missing: bool,
}

impl Inputs<'_> {
    /// The labels: `truth`, or those of the scores file itself.
    fn truth_path(&self) -> Result<PathBuf, EvalError> {
        match self.truth {
            Some(t) => Ok(t.to_path_buf()),
            None if has_column(self.pred, "label")? => Ok(self.pred.to_path_buf()),
            None => Err(EvalError::NoLabels(self.pred.to_path_buf())),
        }
    }

    /// `pred`'s scores paired with the labels (an error when ids differ, unless `allow_missing`), with the labels
    /// read and where they came from.
    fn join(&self, pred: &Scores) -> Result<(Joined, Vec<Truth>, PathBuf), EvalError> {
        let truth_path = self.truth_path()?;
        let truth = read_truth(&truth_path)?;
        let joined = Joined::new(pred, &truth);
        joined.check(self.pred, &truth_path, self.allow_missing)?;
        Ok((joined, truth, truth_path))
    }
}

/// lens-eval's JSON.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub pred: String,
    pub truth: String,
    pub score_column: ScoreColumn,
    pub threshold: f64,
    pub missing_labels: usize,
    pub missing_scores: usize,
    /// The metrics overall (`all`) and per source (`by_source`), at the top level of the JSON.
    #[serde(flatten)]
    pub eval: Evaluation,
    pub at_threshold: AtThreshold,
    pub calibration: CalibrationReport,
}

/// The counts and rates at the threshold, over all objects.
#[derive(Debug, Serialize)]
pub struct AtThreshold {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tpr: f64,
    pub fpr: f64,
}

/// How well the probabilities are calibrated, over all objects.
#[derive(Debug, Serialize)]
pub struct CalibrationReport {
    /// Where the probabilities came from: `pred`, or `sigmoid(logit)`.
    pub probabilities: String,
    pub log_loss: f64,
    pub brier: f64,
    pub ece: f64,
    pub reliability: Vec<Bin>,
}

/// An evaluation with the joined data it was computed from (for a ROC file, a plot, a calibration fit).
#[derive(Debug)]
pub struct Evaluated {
    pub summary: Summary,
    /// The scores that rank (the logits when the file has them), with the labels and sources of the same objects.
    pub scores: Vec<f64>,
    pub labels: Vec<u8>,
    pub sources: Vec<Option<u8>>,
    /// The probabilities of the same objects: the file's pred column when it has one, else sigmoid(logit).
    pub probabilities: Vec<f64>,
}

/// Evaluates `inputs.pred` (its logit column when it has one, else pred or a submission's preds) against the
/// labels, at `threshold` (default 0 for logits, 0.5 for probabilities).
pub fn evaluate_files(inputs: Inputs, threshold: Option<f64>) -> Result<Evaluated, EvalError> {
    let pred = read_scores(inputs.pred, &[ScoreColumn::Logit, ScoreColumn::Pred, ScoreColumn::Preds])?;
    let threshold = threshold.unwrap_or(if pred.column == ScoreColumn::Logit { 0.0 } else { 0.5 });
    let (joined, truth, truth_path) = inputs.join(&pred)?;
    let eval = evaluate(&joined.scores, &joined.labels, &joined.sources, threshold);
    // Probabilities: the file's pred column when it has one (with a logit column too, the logit ranks), else the
    // sigmoid of the logits.
    let logits = pred.column == ScoreColumn::Logit;
    let (probabilities, from) = if logits && has_column(inputs.pred, ScoreColumn::Pred.name())? {
        (Joined::new(&read_scores(inputs.pred, &[ScoreColumn::Pred])?, &truth).scores, "pred")
    } else if logits {
        (joined.scores.iter().map(|&z| sigmoid(z)).collect(), "sigmoid(logit)")
    } else {
        (joined.scores.clone(), "pred")
    };
    let c = Confusion::at(&joined.scores, &joined.labels, threshold);
    let labels = &joined.labels;
    let summary = Summary {
        pred: inputs.pred.display().to_string(),
        truth: truth_path.display().to_string(),
        score_column: pred.column,
        threshold,
        missing_labels: joined.missing_labels.len(),
        missing_scores: joined.missing_scores.len(),
        eval,
        at_threshold: AtThreshold { tp: c.tp, fp: c.fp, tn: c.tn, fn_: c.fn_, tpr: c.recall(), fpr: c.fpr() },
        calibration: CalibrationReport {
            probabilities: from.to_string(),
            log_loss: crate::probability::log_loss_of_probabilities(&probabilities, labels),
            brier: calibration::brier(&probabilities, labels),
            ece: calibration::ece(&probabilities, labels),
            reliability: calibration::reliability(&probabilities, labels),
        },
    };
    Ok(Evaluated { summary, scores: joined.scores, labels: joined.labels, sources: joined.sources, probabilities })
}

/// The operating point that `rule` picks on `inputs.pred` (its logits, else its probabilities). Needs labels
/// unless the rule is a fraction of the objects and neither `truth` nor a label column is there.
pub fn pick_on_file(inputs: Inputs, rule: Rule) -> Result<(OperatingPoint, ScoreColumn), EvalError> {
    let pred = read_scores(inputs.pred, &[ScoreColumn::Logit, ScoreColumn::Pred])?;
    let labelled = inputs.truth.is_some() || has_column(inputs.pred, "label")?;
    let point = if !labelled && matches!(rule, Rule::Fraction(_)) {
        pick(&pred.values, None, rule, pred.column)?
    } else {
        let (joined, ..) = inputs.join(&pred)?;
        pick(&joined.scores, Some(&joined.labels), rule, pred.column)?
    };
    Ok((point, pred.column))
}

/// The ROC curve as CSV (fpr,tpr,threshold), written whole or not at all.
pub fn write_roc(path: &Path, scores: &[f64], labels: &[u8]) -> Result<(), OutputError> {
    write_whole(Some(path), |w| {
        writeln!(w, "fpr,tpr,threshold")?;
        for (fpr, tpr, t) in roc(scores, labels) {
            writeln!(w, "{fpr},{tpr},{t}")?;
        }
        Ok(())
    })
}

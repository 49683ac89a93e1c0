//! lens-ensemble's command line: the ensemble is lensfind_eval::ensemble's, the output lensfind_eval::submission's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use lensfind_core::output::write_whole;
use lensfind_eval::calibration::Calibration;
use lensfind_eval::ensemble::{choose_weights, ensemble, EnsembleError, Objective, WEAK_MEMBER_AUC_GAP};
use lensfind_eval::scores::ScoresError;
use lensfind_eval::submission::{write_submission, Format, SubmissionError, Threshold};

/// Average the logits of several models into a submission: id,pred with pred = sigmoid(mean logit), six decimals.
///
/// Each MODEL is one model's logits as lens-infer writes them (id,logit[,...]): a file, or a quoted glob pattern
/// whose files are that model's shards (`'tiny.shard*.csv'`, ids must not repeat across shards). The files are
/// joined on id and the logits averaged (weighted with --weights), which is how the reference ensembles.
///
/// Validation predictions (lens-train's RUN/val_predictions.csv: id,label,source,logit) ensemble the same way and
/// keep their labels: the output is then id,label,source,logit,pred, the ensemble's own validation scores, on
/// which lens-eval chooses a threshold (--pick-threshold) and fits a calibration (--fit-calibration). The members
/// must share a validation split (lens-train --split-seed).
///
/// Every model must score the same ids: a different id set is an error naming ids, unless --allow-missing, which
/// averages over the models that do score an id. A malformed row, a duplicated id or a non-finite logit is an
/// error naming the file and line. Output rows are sorted by id.
///
/// --format challenge writes the challenge's submission file: its 41-column header, one row per object with its
/// id, preds = 1 (lens) or 0 at --threshold, and -999 in every column we do not estimate; it needs --threshold.
#[derive(Debug, Parser)]
#[command(name = "lens-ensemble", version, max_term_width = 110)]
pub struct Args {
    /// Logits files (or quoted glob patterns of shards), one per model.
    #[arg(value_name = "MODEL", required = true)]
    pub models: Vec<String>,

    /// One weight per model, comma-separated (default: equal).
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',', conflicts_with = "weights_from")]
    pub weights: Option<Vec<f64>>,

    /// Choose the weights on validation: one validation predictions file per model (RUN/val_predictions.csv, in
    /// the order of the models), on a shared split. The weights (non-negative, summing to 1) maximise validation
    /// AUC or minimise log-loss (--weights-metric); equal weights win unless something does strictly better, so
    /// the choice is never worse than equal weights on validation. Prints the weights, both scores and a warning
    /// for each member whose validation AUC is more than 0.01 below the best member's.
    #[arg(long, value_name = "VAL1,VAL2,...", value_delimiter = ',')]
    pub weights_from: Option<Vec<String>>,

    /// What --weights-from optimises: auc or log-loss.
    #[arg(long, value_name = "METRIC", default_value = "auc", value_parser = ["auc", "log-loss"])]
    pub weights_metric: String,

    /// Call objects lenses: T, a probability (pred >= T, after --calibration), or FILE, a threshold chosen by
    /// lens-eval --pick-threshold (a threshold on logits applies to the ensemble's mean logit before calibration,
    /// so a calibration never changes the decisions; pick it on uncalibrated validation scores). Adds a column
    /// label (called with validation predictions), or sets preds with --format challenge.
    #[arg(long, value_name = "T|FILE")]
    pub threshold: Option<String>,

    /// Calibrate the probabilities with FILE (lens-eval --fit-calibration): pred = sigmoid(mean logit / T + b).
    /// The ranking is unchanged.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,

    /// Output format: scores (id,pred) or challenge (the challenge's 41 columns; needs --threshold).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Scores)]
    pub format: Format,

    /// Average over the models that score an id instead of failing when id sets differ.
    #[arg(long)]
    pub allow_missing: bool,

    /// Write to FILE (whole or not at all) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// No summary of --weights-from on stderr (warnings are still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The weights to ensemble with: given, chosen on validation (said on stderr), or None for equal weights.
fn weights(args: &Args) -> Result<Option<Vec<f64>>> {
    let Some(validation) = &args.weights_from else {
        return Ok(args.weights.clone());
    };
    if validation.len() != args.models.len() {
        bail!(
            "--weights-from has {} validation files for {} models (one per model, in the same order)",
            validation.len(),
            args.models.len()
        );
    }
    let objective = if args.weights_metric == "auc" { Objective::Auc } else { Objective::LogLoss };
    let chosen = choose_weights(validation, objective)?;
    for m in chosen.weak_members() {
        let best = chosen.member_auc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        eprintln!(
            "lens-ensemble: warning: {} is much worse than the best member on validation (AUC {:.4} vs {best:.4}, \
             more than {WEAK_MEMBER_AUC_GAP} below); it gets weight {:.3}",
            validation[m], chosen.member_auc[m], chosen.weights[m]
        );
    }
    if !args.quiet {
        let name = objective.name();
        for (m, v) in validation.iter().enumerate() {
            eprintln!(
                "lens-ensemble: {v}: weight {:.3} (validation AUC {:.4}, log-loss {:.4})",
                chosen.weights[m], chosen.member_auc[m], chosen.member_log_loss[m]
            );
        }
        eprintln!(
            "lens-ensemble: validation {name} of the ensemble {:.4} with these weights, {:.4} with equal weights ({} objects)",
            chosen.value, chosen.equal_value, chosen.n
        );
    }
    Ok(Some(chosen.weights))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let format = args.format;
    if format == Format::Challenge && args.threshold.is_none() {
        bail!("--format challenge needs --threshold: its preds column is a 1/0 decision (lens-eval --pick-threshold chooses one)");
    }
    let threshold = args.threshold.as_deref().map(Threshold::parse).transpose()?;
    let calibration = args.calibration.as_deref().map(Calibration::read).transpose()?;
    let weights = weights(&args)?;
    let predictions = ensemble(&args.models, weights.as_deref(), args.allow_missing)?;
    write_whole(args.output.as_deref(), |w| {
        write_submission(w, &predictions, format, threshold, calibration.as_ref())?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// lensfind-eval's errors that a given option answers, worded with the options' names (for
/// lensfind_core::cli::main_worded).
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let scores = |s: &ScoresError| {
        matches!(s, ScoresError::Missing { .. }).then(|| format!("{s} (--allow-missing averages what there is)"))
    };
    if let Some(e) = e.downcast_ref::<EnsembleError>() {
        return match e {
            EnsembleError::Scores(s) => scores(s),
            EnsembleError::Missing { .. } => Some(format!("{e} (--allow-missing averages what there is)")),
            EnsembleError::NotSharedSplit { .. } => Some(format!("{e}: lens-train --split-seed (or --val-pack)")),
            _ => None,
        };
    }
    if let Some(SubmissionError::NoThreshold) = e.downcast_ref::<SubmissionError>() {
        return Some("--format challenge needs --threshold: its preds column is a 1/0 decision".into());
    }
    e.downcast_ref::<ScoresError>().and_then(scores)
}

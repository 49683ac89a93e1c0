//! Ensembling models the way the reference does: each model's logits (a file, or the shards a glob pattern
//! matches) joined on id, a weighted mean of the logits, and the sigmoid of that mean as the prediction.
//! Validation predictions (lens-train's val_predictions.csv: id,label,source,logit) ensemble the same way and
//! keep their labels and sources, so that an ensemble has validation scores of its own; `weights` chooses the
//! weights on them.

mod weights;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use weights::{choose_weights, ChosenWeights, Objective, WEAK_MEMBER_AUC_GAP};

use crate::probability::sigmoid;
use crate::scores::{has_column, read_scores, read_truth, ScoreColumn, ScoresError};
use lensfind_core::text::first_ids;

/// Why models could not be ensembled.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("bad glob pattern {0:?}")]
    Pattern(String, #[source] glob::PatternError),
    #[error("expanding {0:?}")]
    Glob(String, #[source] glob::GlobError),
    #[error("{0}: no such file, and no file matches it as a pattern")]
    NoFile(String),
    #[error(transparent)]
    Scores(#[from] ScoresError),
    #[error("id {id} is in more than one shard of {spec} (again in {})", file.display())]
    RepeatedId { id: String, spec: String, file: PathBuf },
    #[error("{weights} weights for {models} models")]
    WeightCount { weights: usize, models: usize },
    #[error("weights must be non-negative numbers, not all zero")]
    Weights,
    #[error(
        "{spec} lacks {} id(s) that other models score: {}",
        ids.len(), first_ids(ids)
    )]
    Missing { spec: String, ids: Vec<String> },
    #[error("id {id} has label {a} in {first} and {b} in {spec}")]
    LabelConflict { id: String, a: String, b: String, first: String, spec: String },
    #[error(
        "{spec} and {first} do not hold the same validation objects ({} of one are not in the other: {}); \
         weights are chosen on a shared split: train the members with the same split seed (or validation pack)",
        ids.len(), first_ids(ids)
    )]
    NotSharedSplit { spec: String, first: String, ids: Vec<String> },
    #[error("{spec}: choosing weights needs the label of every validation object; {id} has none")]
    Unlabelled { spec: String, id: String },
    #[error("choosing weights needs lenses and non-lenses among the validation objects")]
    OneClass,
    #[error("{validation} validation files for {models} models (one per model, in the same order)")]
    ValidationCount { validation: usize, models: usize },
}

/// One model's scores: the logit of each id, and the label and source of each id that its files label.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) logits: BTreeMap<String, f64>,
    pub(crate) truth: BTreeMap<String, (u8, Option<u8>)>,
}

/// The files of one model: the path itself, or what the glob pattern matches, sorted.
fn model_files(spec: &str) -> Result<Vec<PathBuf>, EnsembleError> {
    let path = PathBuf::from(spec);
    if path.exists() {
        return Ok(vec![path]);
    }
    let mut files: Vec<PathBuf> = glob::glob(spec)
        .map_err(|e| EnsembleError::Pattern(spec.to_string(), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| EnsembleError::Glob(spec.to_string(), e))?;
    if files.is_empty() {
        return Err(EnsembleError::NoFile(spec.to_string()));
    }
    files.sort();
    Ok(files)
}

/// One model's logits by id, its shards joined (an id in two shards is an error), with the labels and sources of
/// files that have a label column (validation predictions).
pub(crate) fn read_model(spec: &str) -> Result<Model, EnsembleError> {
    let mut out = Model::default();
    for f in model_files(spec)? {
        let s = read_scores(&f, &[ScoreColumn::Logit])?;
        for (id, v) in s.ids.into_iter().zip(s.values) {
            if out.logits.insert(id.clone(), v).is_some() {
                return Err(EnsembleError::RepeatedId { id, spec: spec.to_string(), file: f });
            }
        }
        if has_column(&f, "label")? {
            out.truth.extend(read_truth(&f)?.into_iter().map(|t| (t.id, (t.label, t.source))));
        }
    }
    Ok(out)
}

/// The weight of each of `models` models: the given ones, checked (one per model, non-negative, not all zero), or
/// equal weights.
fn model_weights(weights: Option<&[f64]>, models: usize) -> Result<Vec<f64>, EnsembleError> {
    match weights {
        Some(w) if w.len() != models => Err(EnsembleError::WeightCount { weights: w.len(), models }),
        Some(w) if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 => {
            Err(EnsembleError::Weights)
        }
        Some(w) => Ok(w.to_vec()),
        None => Ok(vec![1.0; models]),
    }
}

/// The ensemble's prediction for one id.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub id: String,
    /// The weighted mean logit.
    pub logit: f64,
    /// sigmoid(logit), in (0, 1).
    pub pred: f64,
    /// The label and source, when a model's file labels the id (validation predictions).
    pub label: Option<u8>,
    pub source: Option<u8>,
}

/// The labels of all models joined: an id labelled differently by two files is an error.
fn join_truth(specs: &[String], models: &[Model]) -> Result<BTreeMap<String, (u8, Option<u8>)>, EnsembleError> {
    let mut truth: BTreeMap<String, (u8, Option<u8>, usize)> = BTreeMap::new();
    for (k, m) in models.iter().enumerate() {
        for (id, &(label, source)) in &m.truth {
            match truth.get(id) {
                Some(&(l, s, first)) if (l, s) != (label, source) => {
                    let show = |l: u8, s: Option<u8>| format!("{l} (source {})", lensfind_core::text::opt_u8(s));
                    return Err(EnsembleError::LabelConflict {
                        id: id.clone(),
                        a: show(l, s),
                        b: show(label, source),
                        first: specs[first].clone(),
                        spec: specs[k].clone(),
                    });
                }
                Some(_) => {}
                None => {
                    truth.insert(id.clone(), (label, source, k));
                }
            }
        }
    }
    Ok(truth.into_iter().map(|(id, (l, s, _))| (id, (l, s))).collect())
}

/// Ensembles the models (`specs`: one file or glob pattern of shards each) with `weights` (default: equal). Every
/// model must score the same ids unless `allow_missing`, which averages over the models that score an id. An id
/// that only zero-weight models score is left out. Labels and sources of validation predictions are kept (two
/// files that label an id differently are an error). Sorted by id.
pub fn ensemble(
    specs: &[String],
    weights: Option<&[f64]>,
    allow_missing: bool,
) -> Result<Vec<Prediction>, EnsembleError> {
    let weights = model_weights(weights, specs.len())?;
    let models: Vec<Model> = specs.iter().map(|m| read_model(m)).collect::<Result<_, _>>()?;
    let truth = join_truth(specs, &models)?;
    let mut all: BTreeMap<&str, (f64, f64)> = BTreeMap::new(); // id -> (weighted sum, weight)
    for (m, w) in models.iter().zip(&weights) {
        for (id, v) in &m.logits {
            let e = all.entry(id.as_str()).or_insert((0.0, 0.0));
            e.0 += w * v;
            e.1 += w;
        }
    }
    if !allow_missing {
        for (spec, m) in specs.iter().zip(&models) {
            let missing: Vec<String> =
                all.keys().filter(|id| !m.logits.contains_key(**id)).map(|id| id.to_string()).collect();
            if !missing.is_empty() {
                return Err(EnsembleError::Missing { spec: spec.clone(), ids: missing });
            }
        }
    }
    Ok(all
        .into_iter()
        .filter(|(_, (_, weight))| *weight != 0.0)
        .map(|(id, (sum, weight))| {
            let (label, source) = truth.get(id).map_or((None, None), |&(l, s)| (Some(l), s));
            let logit = sum / weight;
            Prediction { id: id.to_string(), logit, pred: sigmoid(logit), label, source }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("writing a fixture");
        p.display().to_string()
    }

    #[test]
    fn weighted_mean_of_logits_over_shards() {
        let t = tempfile::tempdir().expect("a temporary directory");
        let a = write(t.path(), "a.csv", "id,logit\nx,1\ny,-1\n");
        write(t.path(), "b.shard0.csv", "id,logit\ny,3\n");
        write(t.path(), "b.shard1.csv", "id,logit\nx,-2\n");
        let b = format!("{}/b.shard*.csv", t.path().display());
        let got = ensemble(&[a.clone(), b.clone()], Some(&[1.0, 3.0]), false).expect("ensembles");
        let want = [("x", (1.0 - 6.0) / 4.0), ("y", (-1.0 + 9.0) / 4.0)];
        let prediction =
            |(id, l): (&str, f64)| Prediction { id: id.into(), logit: l, pred: sigmoid(l), label: None, source: None };
        assert_eq!(got, want.map(prediction));
        // Only zero-weight models score z: it is left out.
        let c = write(t.path(), "c.csv", "id,logit\nx,0\ny,0\nz,5\n");
        let got = ensemble(&[a, c], Some(&[1.0, 0.0]), true).expect("ensembles");
        assert_eq!(got.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[test]
    fn validation_predictions_keep_labels_and_sources() {
        let t = tempfile::tempdir().expect("a temporary directory");
        let a = write(t.path(), "a.csv", "id,label,source,logit\nx,1,2,1.0\ny,0,1,-3\n");
        let b = write(t.path(), "b.csv", "id,label,source,logit\ny,0,1,-1\nx,1,2,3.0\n");
        let got = ensemble(&[a.clone(), b], None, false).expect("ensembles");
        assert_eq!(
            got.iter().map(|p| (p.id.as_str(), p.logit, p.label, p.source)).collect::<Vec<_>>(),
            [("x", 2.0, Some(1), Some(2)), ("y", -2.0, Some(0), Some(1))]
        );
        let c = write(t.path(), "c.csv", "id,label,source,logit\nx,0,2,1.0\ny,0,1,-3\n");
        let err = ensemble(&[a, c], None, false).expect_err("labels differ").to_string();
        assert!(err.contains("id x has label 1 (source 2) in") && err.contains("and 0 (source 2) in"), "{err}");
    }

    #[test]
    fn weights_are_checked() {
        assert_eq!(model_weights(None, 2).expect("equal weights"), [1.0, 1.0]);
        assert!(matches!(model_weights(Some(&[1.0]), 2), Err(EnsembleError::WeightCount { weights: 1, models: 2 })));
        for bad in [[0.0, 0.0], [-1.0, 2.0], [f64::NAN, 1.0]] {
            assert!(matches!(model_weights(Some(&bad), 2), Err(EnsembleError::Weights)), "{bad:?}");
        }
    }
}

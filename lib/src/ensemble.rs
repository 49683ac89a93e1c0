//! Ensembling models the way the reference does: each model's logits (a file, or the shards a glob pattern
//! matches) joined on id, a weighted mean of the logits, and the sigmoid of that mean as the prediction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::scores::{read_scores, ScoresError};
use crate::text::first_ids;

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
        "{spec} lacks {} id(s) that other models score: {} (--allow-missing averages what there is)",
        ids.len(), first_ids(ids)
    )]
    Missing { spec: String, ids: Vec<String> },
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

/// One model's logits by id, its shards joined; an id in two shards is an error.
fn read_model(spec: &str) -> Result<BTreeMap<String, f64>, EnsembleError> {
    let mut out = BTreeMap::new();
    for f in model_files(spec)? {
        let s = read_scores(&f, &["logit"])?;
        for (id, v) in s.ids.into_iter().zip(s.values) {
            if out.insert(id.clone(), v).is_some() {
                return Err(EnsembleError::RepeatedId { id, spec: spec.to_string(), file: f });
            }
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

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The ensemble's prediction for one id.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub id: String,
    /// sigmoid(weighted mean logit), in (0, 1).
    pub pred: f64,
}

/// Ensembles the models (`specs`: one file or glob pattern of shards each) with `weights` (default: equal). Every
/// model must score the same ids unless `allow_missing`, which averages over the models that score an id. An id
/// that only zero-weight models score is left out. Sorted by id.
pub fn ensemble(specs: &[String], weights: Option<&[f64]>, allow_missing: bool) -> Result<Vec<Prediction>, EnsembleError> {
    let weights = model_weights(weights, specs.len())?;
    let models: Vec<BTreeMap<String, f64>> = specs.iter().map(|m| read_model(m)).collect::<Result<_, _>>()?;
    let mut all: BTreeMap<&str, (f64, f64)> = BTreeMap::new(); // id -> (weighted sum, weight)
    for (m, w) in models.iter().zip(&weights) {
        for (id, v) in m {
            let e = all.entry(id.as_str()).or_insert((0.0, 0.0));
            e.0 += w * v;
            e.1 += w;
        }
    }
    if !allow_missing {
        for (spec, m) in specs.iter().zip(&models) {
            let missing: Vec<String> = all.keys().filter(|id| !m.contains_key(**id)).map(|id| id.to_string()).collect();
            if !missing.is_empty() {
                return Err(EnsembleError::Missing { spec: spec.clone(), ids: missing });
            }
        }
    }
    Ok(all
        .into_iter()
        .filter(|(_, (_, weight))| *weight != 0.0)
        .map(|(id, (sum, weight))| Prediction { id: id.to_string(), pred: sigmoid(sum / weight) })
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
        assert_eq!(got, want.map(|(id, l)| Prediction { id: id.into(), pred: sigmoid(l) }));
        // Only zero-weight models score z: it is left out.
        let c = write(t.path(), "c.csv", "id,logit\nx,0\ny,0\nz,5\n");
        let got = ensemble(&[a, c], Some(&[1.0, 0.0]), true).expect("ensembles");
        assert_eq!(got.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
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

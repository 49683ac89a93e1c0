//! One report of every metric, for all objects and for each source: what lens-eval prints as JSON and what
//! training's validation records, computed by one code path.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{auc, tpr_at_fp_count, tpr_at_fpr, Confusion};

/// The challenge's sources, each reported on its own: 1 = SLSim/DP0, 2 = HSC. Objects of another source (or none)
/// count in the overall report only.
pub const SOURCES: [u8; 2] = [1, 2];

/// The metrics of one group of objects. The field names are lens-eval's JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub n: usize,
    pub lenses: usize,
    /// `None` when a class is missing.
    pub auc: Option<f64>,
    /// At the threshold: a score >= threshold is called a lens.
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tpr_at_fpr_1e2: Option<f64>,
    pub tpr_at_fpr_1e3: Option<f64>,
    pub tpr_at_fpr_1e4: Option<f64>,
    /// TPR before the first false positive.
    pub tpr0: Option<f64>,
    /// TPR with fewer than 10 false positives (the Bologna lens-finding challenge's TPR10).
    pub tpr10: Option<f64>,
}

impl Report {
    /// The report of `scores` against `labels` (1 = lens), rates taken at `threshold`.
    pub(crate) fn of(scores: &[f64], labels: &[u8], threshold: f64) -> Report {
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
}

/// The report of all objects and of each source present (keys of [`SOURCES`] with at least one object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub all: Report,
    pub by_source: BTreeMap<u8, Report>,
}

/// The scores and labels of the objects of each source present, in input order.
pub fn split_by_source(scores: &[f64], labels: &[u8], sources: &[Option<u8>]) -> BTreeMap<u8, (Vec<f64>, Vec<u8>)> {
    assert!(scores.len() == labels.len() && labels.len() == sources.len(), "one label and source per score");
    SOURCES
        .into_iter()
        .filter_map(|src| {
            let (s, l): (Vec<f64>, Vec<u8>) =
                (0..scores.len()).filter(|&k| sources[k] == Some(src)).map(|k| (scores[k], labels[k])).unzip();
            (!s.is_empty()).then_some((src, (s, l)))
        })
        .collect()
}

/// Evaluates `scores` against `labels` (1 = lens), overall and per source (`sources[k]` is object k's), with
/// accuracy, precision, recall and F1 at `threshold`. The order of the objects does not matter.
pub fn evaluate(scores: &[f64], labels: &[u8], sources: &[Option<u8>], threshold: f64) -> Evaluation {
    let by_source = split_by_source(scores, labels, sources)
        .into_iter()
        .map(|(src, (s, l))| (src, Report::of(&s, &l, threshold)))
        .collect();
    Evaluation { all: Report::of(scores, labels, threshold), by_source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_and_per_source() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [1, 0, 1, 0, 1, 0];
        let sources = [Some(1), Some(1), Some(2), Some(2), None, Some(3)];
        let e = evaluate(&scores, &labels, &sources, 0.65);
        assert_eq!(e.all, Report::of(&scores, &labels, 0.65));
        assert_eq!(e.by_source.keys().copied().collect::<Vec<_>>(), [1, 2], "only the challenge's sources");
        assert_eq!(e.by_source[&2], Report::of(&[0.7, 0.6], &[1, 0], 0.65));
        assert_eq!((e.by_source[&1].n, e.by_source[&1].lenses, e.by_source[&1].auc), (2, 1, Some(1.0)));
        // Shuffling the objects changes nothing.
        fn pick<T: Copy>(v: &[T]) -> Vec<T> {
            [3, 0, 5, 2, 4, 1].iter().map(|&k| v[k]).collect()
        }
        let shuffled = evaluate(&pick(&scores), &pick(&labels), &pick(&sources), 0.65);
        assert_eq!(shuffled, e);
    }

    #[test]
    fn json_is_lens_evals() {
        let e = evaluate(&[0.9, 0.1], &[1, 0], &[Some(2), Some(2)], 0.5);
        let report = r#"{"n":2,"lenses":1,"auc":1.0,"accuracy":1.0,"precision":1.0,"recall":1.0,"f1":1.0,"tpr_at_fpr_1e2":1.0,"tpr_at_fpr_1e3":1.0,"tpr_at_fpr_1e4":1.0,"tpr0":1.0,"tpr10":1.0}"#;
        let json = serde_json::to_string(&e).expect("serialisable");
        assert_eq!(json, format!(r#"{{"all":{report},"by_source":{{"2":{report}}}}}"#));
    }
}

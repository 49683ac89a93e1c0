//! Operating points: the threshold that turns scores into lens / not-lens decisions, chosen by a rule on
//! validation scores (a false-positive rate, a true-positive rate, the best F1, or the fraction of objects called
//! lenses), written as JSON by lens-eval `--pick-threshold` and read by lens-ensemble `--threshold`.
//!
//! Ties: a score >= the threshold is called a lens, and objects with the same score are always called together.
//! The thresholds tried are the cuts between distinct scores: each lies midway between the lowest score called a
//! lens and the next lower score (so that no object sits on it; the lowest score itself when every object is
//! called, just above the highest when none is). A rule is met as closely as such a cut allows: the realised rate
//! is the requested one exactly when a cut falls there (e.g. FPR 1e-2 with a multiple of 100 negatives, no
//! ties at the cut), otherwise the nearest on the safe side (a lower FPR, a higher TPR, a smaller fraction).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::metrics::Confusion;
use crate::probability::sigmoid;
use crate::scores::ScoreColumn;

/// The `format` of a threshold file and the version this reader knows.
pub(crate) const FORMAT: &str = "lensfind-threshold";
pub(crate) const VERSION: u32 = 1;

/// Why a threshold could not be chosen or read.
#[derive(Debug, thiserror::Error)]
pub enum OperatingError {
    #[error("{0:?} is not a rule: fpr=X, tpr=X, fraction=X (X in [0, 1]) or f1")]
    Rule(String),
    #[error("the rule {rule} needs labels (a truth file, or a label column in the scores)")]
    NeedsLabels { rule: Rule },
    #[error("the rule {rule} needs {what} among the scored objects, and there are none")]
    NeedsClass { rule: Rule, what: &'static str },
    #[error("no scores to choose a threshold on")]
    Empty,
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is neither a number nor a threshold file (lens-eval writes one where it picks a threshold)", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{}: format {format:?} version {version}; this lensfind reads {FORMAT:?} version {VERSION}", path.display())]
    Version { path: PathBuf, format: String, version: u32 },
    #[error("{}: the threshold on {column} is missing or not finite", path.display())]
    NoThreshold { path: PathBuf, column: ScoreColumn },
}

/// How to choose the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// The most lenses with a false-positive rate of at most X.
    Fpr(f64),
    /// The fewest objects called with a true-positive rate of at least X.
    Tpr(f64),
    /// The best F1 (of equal F1s, the one calling fewest objects).
    F1,
    /// The most objects called with at most a fraction X of all objects called (the expected lens fraction; needs
    /// no labels).
    Fraction(f64),
}

impl FromStr for Rule {
    type Err = OperatingError;
    fn from_str(s: &str) -> Result<Rule, OperatingError> {
        let bad = || OperatingError::Rule(s.to_string());
        if s == "f1" {
            return Ok(Rule::F1);
        }
        let (name, value) = s.split_once('=').ok_or_else(bad)?;
        let x: f64 = value.trim().parse().map_err(|_| bad())?;
        if !(0.0..=1.0).contains(&x) {
            return Err(bad());
        }
        match name.trim() {
            "fpr" => Ok(Rule::Fpr(x)),
            "tpr" => Ok(Rule::Tpr(x)),
            "fraction" => Ok(Rule::Fraction(x)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Fpr(x) => write!(f, "fpr={x}"),
            Rule::Tpr(x) => write!(f, "tpr={x}"),
            Rule::F1 => write!(f, "f1"),
            Rule::Fraction(x) => write!(f, "fraction={x}"),
        }
    }
}

/// A chosen threshold and what it gives on the scores it was chosen on: lens-eval's JSON, lens-ensemble's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub format: String,
    pub version: u32,
    /// The rule, as given (`fpr=0.01`).
    pub rule: String,
    /// The column the scores came from: `logit` or `pred` (a probability).
    pub score_column: ScoreColumn,
    /// The threshold as a logit and as a probability (sigmoid of the logit); a score >= it is called a lens.
    /// None where a probability of exactly 0 or 1 has no finite logit.
    pub logit: Option<f64>,
    pub probability: Option<f64>,
    /// Objects, and how many were called lenses, and that as a fraction.
    pub n: usize,
    pub called: usize,
    pub fraction: f64,
    /// With labels: the counts and rates at the threshold.
    pub lenses: Option<usize>,
    pub tp: Option<u64>,
    pub fp: Option<u64>,
    pub tn: Option<u64>,
    #[serde(rename = "fn")]
    pub fn_: Option<u64>,
    pub tpr: Option<f64>,
    pub fpr: Option<f64>,
    pub precision: Option<f64>,
    pub f1: Option<f64>,
}

impl OperatingPoint {
    /// Reads and checks a threshold file.
    pub fn read(path: &Path) -> Result<OperatingPoint, OperatingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| OperatingError::Read { path: path.into(), source })?;
        let p: OperatingPoint =
            serde_json::from_str(&text).map_err(|source| OperatingError::Parse { path: path.into(), source })?;
        if p.format != FORMAT || p.version != VERSION {
            return Err(OperatingError::Version { path: path.into(), format: p.format, version: p.version });
        }
        let t = if p.score_column == ScoreColumn::Logit { p.logit } else { p.probability };
        if !t.is_some_and(f64::is_finite) {
            return Err(OperatingError::NoThreshold { path: path.into(), column: p.score_column });
        }
        Ok(p)
    }
}

/// The threshold between the included score `inc` and the next lower, excluded one `exc`: their midpoint, or
/// `inc` itself when they are adjacent floats.
fn between(inc: f64, exc: f64) -> f64 {
    let mid = inc / 2.0 + exc / 2.0;
    if mid > exc && mid <= inc {
        mid
    } else {
        inc
    }
}

/// The smallest float above `x` (finite `x`).
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

/// The cuts between groups of tied scores, from the highest: (objects called, tp, fp) after each group, from none
/// called to all, and each group's score.
fn cuts(scores: &[f64], lab: impl Fn(usize) -> bool) -> (Vec<(usize, usize, usize)>, Vec<f64>) {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut cuts = vec![(0usize, 0usize, 0usize)];
    let mut group_scores = Vec::new();
    let mut i = 0;
    while i < n {
        let s = scores[order[i]];
        let (_, mut tp, mut fp) = cuts[cuts.len() - 1]; // never empty: it starts with the cut calling none
        while i < n && scores[order[i]] == s {
            if lab(order[i]) {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        cuts.push((i, tp, fp));
        group_scores.push(s);
    }
    (cuts, group_scores)
}

/// Chooses a threshold on `scores` (of column `column`: logits, or else probabilities) by `rule`, with `labels`
/// (1 = lens) when known; see the module's note on ties.
pub(crate) fn pick(
    scores: &[f64],
    labels: Option<&[u8]>,
    rule: Rule,
    column: ScoreColumn,
) -> Result<OperatingPoint, OperatingError> {
    if scores.is_empty() {
        return Err(OperatingError::Empty);
    }
    let needs_labels = !matches!(rule, Rule::Fraction(_));
    if needs_labels && labels.is_none() {
        return Err(OperatingError::NeedsLabels { rule });
    }
    let n = scores.len();
    let lab = |k: usize| labels.is_some_and(|l| l[k] == 1);
    let pos = (0..n).filter(|&k| lab(k)).count();
    let neg = n - pos;
    match rule {
        Rule::Fpr(_) if neg == 0 => return Err(OperatingError::NeedsClass { rule, what: "non-lenses" }),
        Rule::Tpr(_) | Rule::F1 if pos == 0 => return Err(OperatingError::NeedsClass { rule, what: "lenses" }),
        _ => {}
    }
    let (cuts, group_scores) = cuts(scores, lab);
    let rate = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let f1 = |tp: usize, called: usize| {
        if tp == 0 {
            0.0
        } else {
            2.0 * tp as f64 / (called + pos) as f64
        }
    };
    let chosen = match rule {
        Rule::Fpr(x) => (0..cuts.len()).rev().find(|&c| rate(cuts[c].2, neg) <= x).unwrap_or(0),
        Rule::Tpr(x) => (0..cuts.len()).find(|&c| rate(cuts[c].1, pos) >= x).unwrap_or(cuts.len() - 1),
        Rule::Fraction(x) => (0..cuts.len()).rev().find(|&c| rate(cuts[c].0, n) <= x).unwrap_or(0),
        Rule::F1 => {
            let mut best = 0;
            for c in 1..cuts.len() {
                if f1(cuts[c].1, cuts[c].0) > f1(cuts[best].1, cuts[best].0) {
                    best = c;
                }
            }
            best
        }
    };
    let threshold = match chosen {
        0 => next_up(group_scores[0]),
        c if c == group_scores.len() => group_scores[c - 1],
        c => between(group_scores[c - 1], group_scores[c]),
    };
    let (logit, probability) = if column == ScoreColumn::Logit {
        (Some(threshold), Some(sigmoid(threshold)))
    } else {
        let l = (threshold / (1.0 - threshold)).ln();
        (l.is_finite().then_some(l), Some(threshold))
    };
    let called = scores.iter().filter(|&&s| s >= threshold).count();
    debug_assert_eq!(called, cuts[chosen].0, "the threshold calls exactly the chosen cut");
    let counts = labels.map(|l| Confusion::at(scores, l, threshold));
    Ok(OperatingPoint {
        format: FORMAT.into(),
        version: VERSION,
        rule: rule.to_string(),
        score_column: column,
        logit,
        probability,
        n,
        called,
        fraction: rate(called, n),
        lenses: labels.map(|_| pos),
        tp: counts.map(|c| c.tp),
        fp: counts.map(|c| c.fp),
        tn: counts.map(|c| c.tn),
        fn_: counts.map(|c| c.fn_),
        tpr: counts.map(|c| c.recall()),
        fpr: counts.map(|c| rate(c.fp as usize, neg)),
        precision: counts.map(|c| c.precision()),
        f1: counts.map(|c| c.f1()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        assert_eq!("fpr=1e-3".parse::<Rule>().unwrap(), Rule::Fpr(1e-3));
        assert_eq!("tpr=0.9".parse::<Rule>().unwrap(), Rule::Tpr(0.9));
        assert_eq!("fraction=0.01".parse::<Rule>().unwrap(), Rule::Fraction(0.01));
        assert_eq!("f1".parse::<Rule>().unwrap(), Rule::F1);
        for bad in ["fpr", "fpr=2", "fpr=x", "auc=0.1", "f1=3", ""] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
        assert_eq!(Rule::Fpr(0.01).to_string(), "fpr=0.01");
    }

    #[test]
    fn fpr_is_met_exactly_when_a_cut_falls_there() {
        // 1000 non-lenses at 0..1000 and 50 lenses at 990.5..1040.5: FPR 1e-2 allows 10 false positives.
        let mut scores: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut labels = vec![0u8; 1000];
        scores.extend((0..50).map(|k| 990.5 + f64::from(k)));
        labels.extend([1u8; 50]);
        let p = pick(&scores, Some(&labels), Rule::Fpr(1e-2), ScoreColumn::Logit).unwrap();
        assert_eq!((p.fp, p.tp, p.fpr), (Some(10), Some(50), Some(0.01)));
        assert_eq!(p.logit, Some(989.5), "midway between the lowest called (990) and the next (989)");
        assert_eq!(Confusion::at(&scores, &labels, p.logit.unwrap()).fp, 10);
        // Ties: two non-lenses share the 10th and 11th places (990 moved to 989); the cut stays above both: 9 false
        // positives, FPR 0.009, midway between the last lens (990.5) and them.
        scores[990] = 989.0;
        let p = pick(&scores, Some(&labels), Rule::Fpr(1e-2), ScoreColumn::Logit).unwrap();
        assert_eq!((p.fp, p.tp, p.fpr, p.logit), (Some(9), Some(50), Some(0.009), Some(989.75)));
    }

    #[test]
    fn tpr_f1_fraction_and_the_extremes() {
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [1u8, 1, 0, 1, 0, 0];
        let p = pick(&scores, Some(&labels), Rule::Tpr(0.6), ScoreColumn::Pred).unwrap();
        // 2 of 3 lenses is the first cut with TPR >= 0.6: called 0.9 and 0.8; threshold midway to 0.7.
        assert_eq!((p.called, p.tp, p.fp), (2, Some(2), Some(0)));
        assert!((p.probability.unwrap() - 0.75).abs() < 1e-15);
        assert!((p.logit.unwrap() - 3f64.ln()).abs() < 1e-12);
        // F1: 2 called (2/2.5=0.8) vs 4 called (3 tp: 6/7=0.857): the latter.
        let p = pick(&scores, Some(&labels), Rule::F1, ScoreColumn::Pred).unwrap();
        assert_eq!((p.called, p.tp), (4, Some(3)));
        // A fraction needs no labels: at most half of 6.
        let p = pick(&scores, None, Rule::Fraction(0.5), ScoreColumn::Pred).unwrap();
        assert_eq!((p.called, p.tp, p.fraction), (3, None, 0.5));
        // FPR 0 when the top score is a non-lens: nothing is called, the threshold is just above it.
        let p = pick(&[2.0, 1.0], Some(&[0, 1]), Rule::Fpr(0.0), ScoreColumn::Logit).unwrap();
        assert_eq!((p.called, p.tp), (0, Some(0)));
        assert!(p.logit.unwrap() > 2.0);
        // TPR 1 with the lowest score a lens: everything is called, the threshold is that score.
        let p = pick(&[2.0, 1.0], Some(&[0, 1]), Rule::Tpr(1.0), ScoreColumn::Logit).unwrap();
        assert_eq!((p.called, p.logit), (2, Some(1.0)));
        assert!(matches!(pick(&[1.0], None, Rule::F1, ScoreColumn::Logit), Err(OperatingError::NeedsLabels { .. })));
        assert!(matches!(
            pick(&[1.0], Some(&[1]), Rule::Fpr(0.1), ScoreColumn::Logit),
            Err(OperatingError::NeedsClass { .. })
        ));
    }

    #[test]
    fn file_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let p = pick(&[0.3, -1.0, 2.0], Some(&[1, 0, 1]), Rule::Fpr(0.0), ScoreColumn::Logit).unwrap();
        let path = t.path().join("t.json");
        std::fs::write(&path, serde_json::to_string_pretty(&p).unwrap()).unwrap();
        assert_eq!(OperatingPoint::read(&path).unwrap(), p);
        std::fs::write(&path, "0.5").unwrap();
        assert!(matches!(OperatingPoint::read(&path), Err(OperatingError::Parse { .. })));
    }
}

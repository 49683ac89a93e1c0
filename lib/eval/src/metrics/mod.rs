//! Classification metrics for a ranking where positives are rare: AUC (ties counted half, as sklearn's
//! roc_auc_score), accuracy, precision and recall at a threshold, TPR at a fixed FPR, and the ROC curve; and
//! ([`Report`], [`evaluate`]) the report of all of them, overall and per source, that lens-eval prints and validation records;
//! ([`files`]) a scores file evaluated against its labels.

mod report;

pub use report::split_by_source;
pub use report::{evaluate, Evaluation, Report, SOURCES};

/// ROC AUC by the rank-sum (Mann-Whitney) formula, with tied scores given their average rank. `None` when a class
/// is missing.
pub fn auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len());
    let pos = labels.iter().filter(|&&l| l == 1).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0; // ranks are 1-based
        rank_sum_pos += avg_rank * order[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// The ROC curve as (FPR, TPR, threshold) points, from the highest threshold down, one point per distinct score
/// (tied scores move together), starting at (0, 0).
pub fn roc(scores: &[f64], labels: &[u8]) -> Vec<(f64, f64, f64)> {
    let pos = labels.iter().filter(|&&l| l == 1).count().max(1) as f64;
    let neg = labels.iter().filter(|&&l| l != 1).count().max(1) as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out = vec![(0.0, 0.0, f64::INFINITY)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] == 1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push((fp / neg, tp / pos, s));
    }
    out
}

/// The highest TPR reachable with FPR <= `max_fpr`, thresholding between distinct scores. `None` without both
/// classes.
pub fn tpr_at_fpr(scores: &[f64], labels: &[u8], max_fpr: f64) -> Option<f64> {
    let has_both = labels.contains(&1) && labels.iter().any(|&l| l != 1);
    has_both.then(|| roc(scores, labels).iter().filter(|(fpr, _, _)| *fpr <= max_fpr).map(|p| p.1).fold(0.0, f64::max))
}

/// The highest TPR reachable with at most `max_fp` false positives (TPR0: `max_fp` = 0, the TPR before the first
/// false positive; TPR10 of the Bologna lens-finding challenge: fewer than 10, `max_fp` = 9). Positives tied with
/// a negative count only once that negative is counted too. `None` without positives.
pub(crate) fn tpr_at_fp_count(scores: &[f64], labels: &[u8], max_fp: u64) -> Option<f64> {
    let neg = labels.iter().filter(|&&l| l != 1).count() as f64;
    labels.contains(&1).then(|| {
        roc(scores, labels)
            .iter()
            .filter(|(fpr, _, _)| (fpr * neg.max(1.0)).round() as u64 <= max_fp)
            .map(|p| p.1)
            .fold(0.0, f64::max)
    })
}

/// Counts at a threshold: a score >= threshold is called a lens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[u8], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &l) in scores.iter().zip(labels) {
            match (s >= threshold, l == 1) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }
    fn ratio(a: u64, b: u64) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }
    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
    /// 0 when nothing is called positive (sklearn's zero_division=0).
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
    /// The false-positive rate; 0 when there are no negatives.
    pub(crate) fn fpr(&self) -> f64 {
        Self::ratio(self.fp, self.fp + self.tn)
    }
    pub(crate) fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand_with_ties() {
        // Pairs (pos, neg): 0.9>0.1, 0.9>0.5, 0.5=0.5 (half), 0.5>0.1: (1+1+0.5+1)/4.
        assert_eq!(auc(&[0.9, 0.5, 0.5, 0.1], &[1, 1, 0, 0]), Some(0.875));
        assert_eq!(auc(&[0.1, 0.2], &[1, 0]), Some(0.0));
        assert_eq!(auc(&[0.3, 0.3, 0.3], &[1, 0, 1]), Some(0.5));
        assert_eq!(auc(&[0.3, 0.4], &[1, 1]), None);
    }

    #[test]
    fn tpr_at_fpr_counts_directly() {
        // 100 negatives at 0..100, 10 positives: 5 above all negatives, 5 just above the top 3 negatives' range.
        let mut scores: Vec<f64> = (0..100).map(f64::from).collect();
        let mut labels = vec![0u8; 100];
        scores.extend([200.0, 201.0, 202.0, 203.0, 204.0, 97.5, 97.6, 97.7, 97.8, 97.9]);
        labels.extend([1u8; 10]);
        // Ranked: 5 positives, negatives 99 and 98, 5 positives, then the other negatives.
        assert_eq!(tpr_at_fpr(&scores, &labels, 0.0), Some(0.5)); // before the first false positive
        assert_eq!(tpr_at_fpr(&scores, &labels, 0.015), Some(0.5)); // one false positive allowed
        assert_eq!(tpr_at_fpr(&scores, &labels, 0.02), Some(1.0)); // two: the threshold goes down to 97.5
        assert_eq!(tpr_at_fpr(&scores[..100], &labels[..100], 0.5), None);
        let c = Confusion::at(&scores, &labels, 97.55);
        assert_eq!((c.tp, c.fp), (9, 2));
    }

    #[test]
    fn tpr_before_false_positives_by_count() {
        // Ranked: P P N P(tied with N) N P ...
        let scores = [9.0, 8.0, 7.0, 6.0, 6.0, 5.0, 4.0];
        let labels = [1, 1, 0, 1, 0, 0, 1];
        assert_eq!(tpr_at_fp_count(&scores, &labels, 0), Some(0.5));
        assert_eq!(tpr_at_fp_count(&scores, &labels, 1), Some(0.5), "the tied positive needs the second FP");
        assert_eq!(tpr_at_fp_count(&scores, &labels, 2), Some(0.75));
        assert_eq!(tpr_at_fp_count(&scores, &labels, 3), Some(1.0));
        assert_eq!(tpr_at_fp_count(&[1.0], &[0], 3), None);
    }

    #[test]
    fn confusion_rates() {
        let c = Confusion::at(&[0.9, 0.8, 0.2, 0.1], &[1, 0, 1, 0], 0.5);
        assert_eq!(c, Confusion { tp: 1, fp: 1, tn: 1, fn_: 1 });
        assert_eq!((c.accuracy(), c.precision(), c.recall(), c.f1()), (0.5, 0.5, 0.5, 0.5));
        assert_eq!(Confusion::at(&[0.1], &[1], 0.5).precision(), 0.0);
    }
}

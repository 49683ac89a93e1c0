//! The validation metrics of an epoch, a row of metrics.csv.

use lensfind::metrics::{auc, tpr_at_fpr, Confusion};

use super::step::bce_mean;
use crate::run_dir::MetricsRow;

/// The validation part of a metrics row from the logits, labels and sources of the validation objects (epoch,
/// step, learning rate, training loss and skipped steps are left at 0 for the caller).
pub(super) fn metrics_row(logits: &[f64], labels: &[u8], sources: &[Option<u8>], pos_weight: f64) -> MetricsRow {
    let auc_of = |src: u8| {
        let (s, l): (Vec<f64>, Vec<u8>) = logits
            .iter()
            .zip(labels)
            .zip(sources)
            .filter(|(_, s)| **s == Some(src))
            .map(|((x, y), _)| (*x, *y))
            .unzip();
        auc(&s, &l).unwrap_or(f64::NAN)
    };
    let confusion = Confusion::at(logits, labels, 0.0);
    MetricsRow {
        epoch: 0,
        step: 0,
        lr: 0.0,
        train_loss: 0.0,
        val_loss: bce_mean(logits, labels, pos_weight),
        val_auc: auc(logits, labels).unwrap_or(f64::NAN),
        val_accuracy: confusion.accuracy(),
        val_precision: confusion.precision(),
        val_recall: confusion.recall(),
        val_tpr_at_fpr_1e2: tpr_at_fpr(logits, labels, 1e-2).unwrap_or(f64::NAN),
        val_tpr_at_fpr_1e3: tpr_at_fpr(logits, labels, 1e-3).unwrap_or(f64::NAN),
        val_auc_source1: auc_of(1),
        val_auc_source2: auc_of(2),
        skipped_steps: 0,
    }
}

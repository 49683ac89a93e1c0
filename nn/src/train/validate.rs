//! Validation after an epoch: the validation objects scored (each rank a stride of them), their metrics as a row
//! of metrics.csv, and the best epoch's weights and predictions.

use std::time::Instant;

use anyhow::Result;
use lensfind_eval::metrics::{auc, tpr_at_fpr, Confusion};

use super::step::bce_mean;
use super::{ddp, schedule, Trainer};
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
        ema_val_loss: None,
        ema_val_auc: None,
        ema_val_tpr_at_fpr_1e2: None,
        ema_val_tpr_at_fpr_1e3: None,
    }
}

impl Trainer<'_> {
    /// Validates the model after an epoch: the metrics row of the epoch (the same on every rank).
    pub(crate) fn validate(&mut self) -> Result<MetricsRow> {
        let started = Instant::now();
        let logits = self.validation_logits(&self.model)?;
        let ema_logits = match &self.ema {
            Some(ema) => Some(self.validation_logits(&ema.model)?),
            None => None,
        };
        self.epoch_time.validation_seconds = started.elapsed().as_secs_f64();
        let s = &self.state;
        let lr =
            schedule::lr_at(s.global_step.saturating_sub(1), self.total_steps(), self.cfg.lr, self.cfg.warmup_steps);
        let train_loss = s.loss_sum / s.loss_count.max(1) as f64;
        let val = self.data.val_source();
        let labels: Vec<u8> = self.data.val_rows.iter().map(|&r| val.meta[r].label.unwrap_or(0)).collect();
        let sources: Vec<Option<u8>> = self.data.val_rows.iter().map(|&r| val.meta[r].source).collect();
        let pos_weight = self.cfg.pos_weight.unwrap_or(1.0);
        let mut row = metrics_row(&logits, &labels, &sources, pos_weight);
        (row.epoch, row.step, row.lr, row.train_loss, row.skipped_steps) =
            (s.epoch + 1, s.global_step, lr, train_loss, self.skipped);
        self.val_logits = logits;
        if let Some(ema_logits) = ema_logits {
            let ema = metrics_row(&ema_logits, &labels, &sources, pos_weight);
            row.ema_val_loss = Some(ema.val_loss);
            row.ema_val_auc = Some(ema.val_auc);
            row.ema_val_tpr_at_fpr_1e2 = Some(ema.val_tpr_at_fpr_1e2);
            row.ema_val_tpr_at_fpr_1e3 = Some(ema.val_tpr_at_fpr_1e3);
            if row.ema_is_better() {
                self.val_logits = ema_logits;
            }
        }
        Ok(row)
    }

    /// The logits of `model` (the trained one or its moving average) on the validation rows, in their order (each
    /// rank scores a stride of them; all get all).
    fn validation_logits(&self, model: &crate::models::Model) -> Result<Vec<f64>> {
        let exec = crate::device::ExecSettings {
            size: self.cfg.model_config.input_size(),
            precision: self.cfg.precision,
            channels_last: self.cfg.channels_last,
            device: self.device,
            batch: self.cfg.batch_size * 2,
        };
        let vb = self.val_batcher.as_ref().unwrap_or(&self.batcher);
        let rows = &self.data.val_rows;
        Ok(match self.pg {
            Some(pg) => {
                let part = crate::infer::predict(model, vb, &ddp::strided(rows, self.rank, self.world), exec)?;
                ddp::unshard(&pg.gather_f64(&part, self.device)?, rows.len())
            }
            None => crate::infer::predict(model, vb, rows, exec)?,
        })
    }

    /// The rows of val_predictions.csv for the last validation (of the better of the weights and their average): (id, label, source, logit) in the validation order.
    pub(super) fn val_prediction_rows(&self) -> Vec<(String, Option<u8>, Option<u8>, f64)> {
        let val = self.data.val_source();
        self.data
            .val_rows
            .iter()
            .zip(&self.val_logits)
            .map(|(&r, &logit)| {
                let m = &val.meta[r];
                (m.id.clone(), m.label, m.source, logit)
            })
            .collect()
    }
}

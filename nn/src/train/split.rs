//! Which objects train and which validate (a stratified split of the pack, or a separate validation pack), and
//! the order of each epoch.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use lensfind_core::rng::Rng;
use lensfind_data::pack::{MetaRow, Pack};

use crate::batch::streams;
use crate::config::TrainConfig;
use crate::setting::ScalingMismatch;

/// The data of a run: the training pack and rows, and where validation comes from.
pub(super) struct Data {
    pub(super) pack: Arc<Pack>,
    /// A separate validation pack, or None to validate on held-out rows of `pack`.
    pub(super) val_pack: Option<Arc<Pack>>,
    pub(super) train_rows: Vec<usize>,
    pub(super) val_rows: Vec<usize>,
}

impl Data {
    pub(super) fn open(cfg: &TrainConfig) -> Result<Data> {
        let open = |p: &std::path::Path, what: &str| {
            Pack::open(p).with_context(|| format!("opening the {what} pack {}", p.display())).map(Arc::new)
        };
        let pack = open(&cfg.pack, "training")?;
        let val_pack = cfg.val_pack.as_deref().map(|p| open(p, "validation")).transpose()?;
        let mode = pack.manifest.standardization.mode;
        if let Some(recorded) = cfg.standardize.filter(|&m| m != mode) {
            let problem = format!(
                "{} is standardised {mode} now, but the run started on {recorded} images (config.json)",
                cfg.pack.display()
            );
            return Err(ScalingMismatch { problem, to: Some(recorded) }.into());
        }
        if let (Some(v), Some(path)) = (&val_pack, &cfg.val_pack) {
            let val_mode = v.manifest.standardization.mode;
            if val_mode != mode {
                let problem = format!(
                    "the validation pack {} is standardised {val_mode} and the training pack {mode}: the model \
                     would be judged on other numbers than it learns from",
                    path.display()
                );
                return Err(ScalingMismatch { problem, to: None }.into());
            }
        }
        let (train_rows, val_rows) = match &val_pack {
            Some(v) => {
                if let Some(m) = pack.meta.iter().find(|m| m.label.is_none()) {
                    bail!("object {} of {} has no label; training needs labels", m.id, cfg.pack.display());
                }
                ((0..pack.len()).collect(), (0..v.len()).collect())
            }
            None => stratified_split(&pack.meta, cfg.val_split, cfg.split_seed())?,
        };
        let data = Data { pack, val_pack, train_rows, val_rows };
        check_classes(&data.pack.meta, &data.train_rows, "training")?;
        check_classes(&data.val_source().meta, &data.val_rows, "validation")?;
        Ok(data)
    }

    pub(super) fn val_source(&self) -> &Pack {
        self.val_pack.as_deref().unwrap_or(&self.pack)
    }
}

/// A validation split stratified by label and source: `fraction` of each (label, source) group, drawn with `seed`
/// (the run's split seed, apart from its training seed). Returns (train rows, validation rows), each in pack order. Rows without a label cannot be used.
pub(crate) fn stratified_split(meta: &[MetaRow], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&fraction) || fraction == 0.0 {
        let problem = "must be in (0, 1) when there is no separate validation pack";
        return Err(crate::setting::SettingError::new(crate::setting::Setting::ValSplit, fraction, problem).into());
    }
    let mut groups: std::collections::BTreeMap<(u8, u8), Vec<usize>> = Default::default();
    for m in meta {
        let label = m.label.ok_or_else(|| anyhow::anyhow!("object {} has no label; training needs labels", m.id))?;
        groups.entry((label, m.source.unwrap_or(0))).or_default().push(m.row);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for ((label, source), mut rows) in groups {
        let mut rng = Rng::new(seed, streams::SPLIT ^ (u64::from(label) << 8) ^ u64::from(source));
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let n_val = (rows.len() as f64 * fraction).round() as usize;
        val.extend_from_slice(&rows[..n_val]);
        train.extend_from_slice(&rows[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

/// Both classes must be present, or training and AUC mean nothing.
pub(crate) fn check_classes(meta: &[MetaRow], rows: &[usize], what: &str) -> Result<()> {
    let pos = rows.iter().filter(|&&r| meta[r].label == Some(1)).count();
    if pos == 0 || pos == rows.len() {
        bail!(
            "the {what} set has {pos} lenses among {} objects: both classes are needed (use a larger pack, or \
             hold out another share for validation)",
            rows.len()
        );
    }
    Ok(())
}

/// The order of the training rows in `epoch`: a Fisher-Yates shuffle seeded by (seed, epoch), so a resumed run
/// replays it exactly.
pub(crate) fn epoch_order(rows: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = rows.to_vec();
    let mut rng = Rng::new(seed, streams::EPOCH ^ epoch as u64);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(u8, u8)]) -> Vec<MetaRow> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &(l, s))| MetaRow { row: i, id: format!("o{i}"), label: Some(l), source: Some(s) })
            .collect()
    }

    #[test]
    fn split_is_stratified_and_reproducible() {
        let mut labels = vec![(1, 1); 40];
        labels.extend(vec![(0, 1); 60]);
        labels.extend(vec![(1, 2); 10]);
        labels.extend(vec![(0, 2); 90]);
        let m = meta(&labels);
        let (train, val) = stratified_split(&m, 0.1, 3).unwrap();
        assert_eq!(val.len(), 4 + 6 + 1 + 9);
        assert_eq!(train.len() + val.len(), 200);
        let count =
            |rows: &[usize], l, s| rows.iter().filter(|&&r| m[r].label == Some(l) && m[r].source == Some(s)).count();
        assert_eq!((count(&val, 1, 1), count(&val, 0, 1), count(&val, 1, 2), count(&val, 0, 2)), (4, 6, 1, 9));
        assert_eq!(stratified_split(&m, 0.1, 3).unwrap().1, val);
        assert_ne!(stratified_split(&m, 0.1, 4).unwrap().1, val);
        assert!(check_classes(&m, &val, "validation").is_ok());
        let tiny = meta(&[(1, 1), (0, 1), (0, 1)]);
        let (_, v) = stratified_split(&tiny, 0.2, 0).unwrap();
        assert!(check_classes(&tiny, &v, "validation").is_err(), "a split leaving a class empty is an error");
    }
}

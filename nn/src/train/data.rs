//! Training data: the validation split, the shuffled order of each epoch, batches gathered from the memory-mapped
//! pack, and the random flips and rotations applied on the device.

use anyhow::{bail, Result};
use lensfind::pack::{MetaRow, Pack};
use lensfind::rng::Rng;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Random streams, one per purpose, so that each is a function of (seed, purpose, counter) only.
pub mod streams {
    pub const SPLIT: u64 = 1 << 60;
    pub const EPOCH: u64 = 2 << 60;
    pub const AUGMENT: u64 = 3 << 60;
    pub const TORCH: u64 = 4 << 60;
}

/// A validation split stratified by label and source: `fraction` of each (label, source) group, drawn with the
/// seed. Returns (train rows, validation rows), each in pack order. Rows without a label cannot be used.
pub fn stratified_split(meta: &[MetaRow], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&fraction) || fraction == 0.0 {
        bail!("--val-split {fraction} must be in (0, 1) when there is no --val-pack");
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
pub fn check_classes(meta: &[MetaRow], rows: &[usize], what: &str) -> Result<()> {
    let pos = rows.iter().filter(|&&r| meta[r].label == Some(1)).count();
    if pos == 0 || pos == rows.len() {
        bail!(
            "the {what} set has {pos} lenses among {} objects: both classes are needed (use a larger pack or \
             another --val-split)",
            rows.len()
        );
    }
    Ok(())
}

/// The order of the training rows in `epoch`: a Fisher-Yates shuffle seeded by (seed, epoch), so a resumed run
/// replays it exactly.
pub fn epoch_order(rows: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = rows.to_vec();
    let mut rng = Rng::new(seed, streams::EPOCH ^ epoch as u64);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// Gathers pack rows into a reused host buffer, in parallel, and hands them to the device.
pub struct Batcher<'a> {
    pack: &'a Pack,
    buf: Vec<f32>,
    /// The whole pack on the device (--data-on-device), gathered with index_select instead.
    on_device: Option<Tensor>,
    device: Device,
}

impl<'a> Batcher<'a> {
    pub fn new(pack: &'a Pack, device: Device, data_on_device: bool) -> Result<Batcher<'a>> {
        let on_device = if data_on_device {
            let (h, w) = (pack.manifest.height as i64, pack.manifest.width as i64);
            let mut all = vec![0f32; pack.len() * pack.row_len()];
            all.par_chunks_mut(pack.row_len()).enumerate().for_each(|(i, dst)| pack.row_f32(i, dst));
            Some(Tensor::from_slice(&all).view([pack.len() as i64, 5, h, w]).to_device(device))
        } else {
            None
        };
        Ok(Batcher { pack, buf: Vec::new(), on_device, device })
    }

    /// Images [B, 5, H, W] (float32, on the device) and labels [B] (float32) of `rows`.
    pub fn batch(&mut self, rows: &[usize]) -> (Tensor, Tensor) {
        let labels: Vec<f32> = rows.iter().map(|&r| f32::from(self.pack.meta[r].label.unwrap_or(0))).collect();
        let y = Tensor::from_slice(&labels).to_device(self.device);
        if let Some(all) = &self.on_device {
            let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            return (all.index_select(0, &Tensor::from_slice(&idx).to_device(self.device)), y);
        }
        let n = self.pack.row_len();
        self.buf.resize(rows.len() * n, 0.0);
        let pack = self.pack;
        self.buf.par_chunks_mut(n).zip(rows).for_each(|(dst, &r)| pack.row_f32(r, dst));
        let (h, w) = (pack.manifest.height as i64, pack.manifest.width as i64);
        let host = Tensor::from_slice(&self.buf).view([rows.len() as i64, 5, h, w]);
        let x = if self.device.is_cuda() {
            host.pin_memory(self.device).to_device_(self.device, Kind::Float, true, false)
        } else {
            host
        };
        (x, y)
    }
}

/// One image's random view: horizontal flip, vertical flip, rotation by k x 90 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aug {
    pub hflip: bool,
    pub vflip: bool,
    pub k: u64,
}

/// The views of pack rows `rows` in `epoch`: each drawn from a stream of (seed, epoch, row), so an image gets the
/// same view whatever batch or rank it lands in (one process with batch 2B and two with B train alike) and a
/// resumed run draws the same ones. Non-square images get k in {0, 2} only.
pub fn draw_augmentations(rows: &[usize], seed: u64, epoch: usize, square: bool) -> Vec<Aug> {
    rows.iter()
        .map(|&row| {
            let mut rng = Rng::new(seed ^ streams::AUGMENT ^ epoch as u64, row as u64);
            Aug {
                hflip: rng.chance(0.5),
                vflip: rng.chance(0.5),
                k: if square { rng.below(4) } else { 2 * rng.below(2) },
            }
        })
        .collect()
}

/// Applies one view per image (horizontal and vertical flips, then rotation by k x 90 degrees) on the device.
pub fn augment(x: &Tensor, augs: &[Aug]) -> Tensor {
    let b = x.size()[0];
    assert_eq!(augs.len() as i64, b, "one view per image");
    let device = x.device();
    let mask = |v: Vec<bool>| Tensor::from_slice(&v).to_device(device).view([b, 1, 1, 1]);
    let mut out = x.flip([3]).where_self(&mask(augs.iter().map(|a| a.hflip).collect()), x);
    out = out.flip([2]).where_self(&mask(augs.iter().map(|a| a.vflip).collect()), &out);
    for k in 1..4u64 {
        let sel: Vec<bool> = augs.iter().map(|a| a.k == k).collect();
        if sel.iter().any(|&s| s) {
            out = out.rot90(k as i64, [2, 3]).where_self(&mask(sel), &out);
        }
    }
    out
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

    #[test]
    fn augmentations_are_d4_elements() {
        // Each augmented image must be one of the 8 symmetries of the original.
        let x = Tensor::arange(2 * 5 * 4 * 4, (Kind::Float, Device::Cpu)).view([2, 5, 4, 4]);
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..20 {
            let augs = draw_augmentations(&[7, 8], 1, epoch, true);
            seen.extend(augs.iter().map(|a| (a.hflip, a.vflip, a.k)));
            assert_eq!(augs[..1], draw_augmentations(&[7], 1, epoch, true)[..], "a row's view ignores its batch");
            let y = augment(&x, &augs);
            for i in 0..2 {
                let (xi, yi) = (x.get(i), y.get(i));
                let found = (0..4).any(|k| {
                    let r = xi.rot90(k, [1, 2]);
                    r.equal(&yi) || r.flip([2]).equal(&yi)
                });
                assert!(found, "not a d4 view");
            }
        }
        assert!(seen.len() >= 8, "views vary over epochs: {seen:?}");
    }
}

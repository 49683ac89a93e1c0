//! Batches: pack rows gathered from the memory-mapped pack into a reused buffer and handed to the device, and the
//! random flips and rotations of training applied on the device.

use std::sync::Arc;

use anyhow::Result;
use lensfind::pack::Pack;
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

/// Gathers pack rows into a reused host buffer, in parallel, and hands them to the device.
pub struct Batcher {
    pack: Arc<Pack>,
    buf: Vec<f32>,
    /// The whole pack on the device (--data-on-device), gathered with index_select instead.
    on_device: Option<Tensor>,
    device: Device,
}

impl Batcher {
    pub fn new(pack: Arc<Pack>, device: Device, data_on_device: bool) -> Result<Batcher> {
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
        let pack = &self.pack;
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

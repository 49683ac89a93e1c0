//! Data parallelism as PyTorch DDP does it: the same weights on every rank (rank 0's, broadcast once), each rank a
//! different shard of every epoch (DistributedSampler's split), and gradients averaged over ranks after each
//! backward in flat buckets of about 25 MB (DDP's bucket_cap_mb), so that every rank takes the same step.
//!
//! Unlike DDP the all-reduce runs after the backward pass, not overlapped with it: tch exposes no autograd hooks.

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::dist::ProcessGroup;
use crate::optim::AdamW;

/// DDP's default bucket size.
pub const BUCKET_BYTES: usize = 25 << 20;

/// The part of an epoch's order that `rank` trains on: DistributedSampler without drop_last. The order is padded
/// by repeating its start to a multiple of `world`, and rank r takes positions r, r + world, ... So step s of every
/// rank together covers positions [s * B * world, (s + 1) * B * world) of the padded order: the same objects as
/// step s of one process with batch B * world.
pub(crate) fn shard(order: &[usize], rank: usize, world: usize) -> Vec<usize> {
    if world <= 1 || order.is_empty() {
        return order.to_vec();
    }
    let total = order.len().div_ceil(world) * world;
    (rank..total).step_by(world).map(|i| order[i % order.len()]).collect()
}

/// Reassembles values computed on `shard(rows, r, world)` without padding (rank r holds positions r, r + world,
/// ...) into the order of the rows: each row exactly once.
pub(crate) fn unshard(parts: &[Vec<f64>], len: usize) -> Vec<f64> {
    let world = parts.len();
    (0..len).map(|k| parts[k % world][k / world]).collect()
}

/// Rows `r, r + world, ...` of `rows`: the rank's share of the validation set, without padding.
pub(crate) fn strided(rows: &[usize], rank: usize, world: usize) -> Vec<usize> {
    rows.iter().skip(rank).step_by(world.max(1)).copied().collect()
}

/// Averages gradients over ranks through flat, reused buffers, one all-reduce per bucket.
pub struct GradSync {
    /// Slot indices of each bucket.
    buckets: Vec<Vec<usize>>,
    /// One flat float32 buffer per bucket; the last has one more element that carries a flag (the stop request).
    flats: Vec<Tensor>,
}

impl GradSync {
    pub fn new(opt: &AdamW, bucket_bytes: usize) -> GradSync {
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new()];
        let mut bytes = 0usize;
        for (i, s) in opt.slots.iter().enumerate() {
            let b = s.param.numel() * 4;
            if bytes > 0 && bytes + b > bucket_bytes {
                buckets.push(Vec::new());
                bytes = 0;
            }
            buckets.last_mut().expect("one bucket").push(i);
            bytes += b;
        }
        let (n, device) = (buckets.len(), device_of(opt));
        let flats = buckets
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let numel: usize = b.iter().map(|&i| opt.slots[i].param.numel()).sum();
                let extra = usize::from(k + 1 == n);
                Tensor::zeros([(numel + extra) as i64], (Kind::Float, device))
            })
            .collect();
        GradSync { buckets, flats }
    }

    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Replaces every gradient by its mean over the ranks; returns the sum over ranks of `flag`. A tensor without
    /// a gradient on this rank sends zeros (so that all ranks send the same layout).
    pub fn all_reduce(&mut self, pg: &ProcessGroup, opt: &AdamW, flag: f32) -> Result<f32> {
        let world = pg.world as f64;
        let last = self.flats.len() - 1;
        let mut total_flag = 0.0;
        tch::no_grad(|| -> Result<()> {
            for (k, (bucket, flat)) in self.buckets.iter().zip(self.flats.iter_mut()).enumerate() {
                let numel: i64 = bucket.iter().map(|&i| opt.slots[i].param.numel() as i64).sum();
                // Gathered with one cat into the flat buffer (a tensor without a gradient sends zeros).
                let parts: Vec<Tensor> = bucket
                    .iter()
                    .map(|&i| {
                        let p = &opt.slots[i].param;
                        let g = p.grad();
                        if g.defined() {
                            g.reshape([-1])
                        } else {
                            Tensor::zeros([p.numel() as i64], (Kind::Float, p.device()))
                        }
                    })
                    .collect();
                let _ = Tensor::cat_out(&flat.narrow(0, 0, numel), &parts, 0);
                if k == last {
                    let _ = flat.narrow(0, numel, 1).fill_(f64::from(flag));
                }
                pg.all_reduce_sum(flat)?;
                if k == last {
                    total_flag = flat.double_value(&[numel]) as f32;
                }
                let _ = flat.g_div_scalar_(world);
                let mut off = 0i64;
                for &i in bucket {
                    let p = &opt.slots[i].param;
                    let n = p.numel() as i64;
                    // Every tensor of our models gets a gradient in every step; one without keeps none.
                    let mut g = p.grad();
                    if g.defined() {
                        g.copy_(&flat.narrow(0, off, n).view(p.size().as_slice()));
                    }
                    off += n;
                }
            }
            Ok(())
        })?;
        Ok(total_flag)
    }
}

/// Fails unless every rank holds the same tensors (names and shapes) in the same order: a mismatch would make
/// the collectives exchange buffers of different sizes, which Gloo answers by aborting the process.
pub fn check_same_layout(pg: &ProcessGroup, opt: &AdamW) -> Result<()> {
    // FNV-1a over names and shapes, in slot order.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in &opt.slots {
        for b in s.name.bytes().chain(s.param.size().iter().flat_map(|d| d.to_le_bytes())) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let mine = Tensor::from_slice(&[h as i64]).to_device(device_of(opt));
    let all = Vec::<i64>::try_from(&pg.all_gather(&mine)?.to_device(tch::Device::Cpu).view([-1])).expect("i64");
    if let Some(r) = all.iter().position(|&x| x != all[0]) {
        anyhow::bail!("rank {r} holds a different model than rank 0 (tensor names or shapes differ)");
    }
    Ok(())
}

/// The device the optimised tensors live on.
fn device_of(opt: &AdamW) -> tch::Device {
    opt.slots.first().map_or(tch::Device::Cpu, |s| s.param.device())
}

/// Makes every rank's weights and AdamW moments rank 0's, one broadcast per tensor (once, at the start).
pub(crate) fn broadcast_state(pg: &ProcessGroup, opt: &AdamW) -> Result<()> {
    tch::no_grad(|| {
        for s in &opt.slots {
            for t in [&s.param, &s.exp_avg, &s.exp_avg_sq] {
                // Channels-last weights are not contiguous: broadcast a contiguous copy and write it back.
                if t.is_contiguous() {
                    pg.broadcast(t, 0)?;
                } else {
                    let c = t.contiguous();
                    pg.broadcast(&c, 0)?;
                    let mut dst = t.shallow_clone();
                    dst.copy_(&c);
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_epoch_like_distributed_sampler() {
        let order: Vec<usize> = (100..110).collect();
        let parts: Vec<Vec<usize>> = (0..3).map(|r| shard(&order, r, 3)).collect();
        assert_eq!(parts[0], [100, 103, 106, 109]);
        assert_eq!(parts[1], [101, 104, 107, 100], "padded from the start");
        assert_eq!(parts[2], [102, 105, 108, 101]);
        assert_eq!(shard(&order, 0, 1), order);
        // Step s of 2 ranks with batch 2 = step s of one rank with batch 4.
        let two: Vec<Vec<usize>> = (0..2).map(|r| shard(&order, r, 2)).collect();
        for (s, one) in order.chunks(4).enumerate() {
            let mut union: Vec<usize> = two.iter().flat_map(|p| p.chunks(2).nth(s).unwrap().to_vec()).collect();
            union.sort_unstable();
            assert_eq!(union, one);
        }
    }

    #[test]
    fn validation_parts_come_back_in_order_once() {
        let rows: Vec<usize> = (0..7).collect();
        let parts: Vec<Vec<f64>> =
            (0..3).map(|r| strided(&rows, r, 3).iter().map(|&x| x as f64 * 10.0).collect()).collect();
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 7, "no padding");
        assert_eq!(unshard(&parts, 7), [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
    }

    #[test]
    fn buckets_respect_the_cap() {
        let params: Vec<(String, Tensor, f64)> = [10, 10, 30, 5]
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("p{i}"), Tensor::zeros([n], (Kind::Float, tch::Device::Cpu)), 0.0))
            .collect();
        let opt = AdamW::new(params, 0.9, 0.999, 1e-8);
        let sync = GradSync::new(&opt, 100);
        assert_eq!(sync.buckets, [vec![0, 1], vec![2], vec![3]]);
        assert_eq!(sync.flats.iter().map(Tensor::numel).collect::<Vec<_>>(), [20, 30, 6], "flag slot at the end");
    }
}

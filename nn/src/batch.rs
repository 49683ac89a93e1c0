//! Batches: pack rows gathered from the memory-mapped pack by a background thread, ahead of the model, into
//! reused host buffers (page-locked when the model is on a GPU), with training's random flips and rotations applied
//! while copying; and the random views themselves.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use lensfind_core::rng::Rng;
use lensfind_data::pack::Pack;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::d4::D4;
use crate::degrade::Degrade;
use crate::shim::CudaEvent;

/// Random streams, one per purpose, so that each is a function of (seed, purpose, counter) only.
pub(crate) mod streams {
    pub(crate) const SPLIT: u64 = 1 << 60;
    pub(crate) const EPOCH: u64 = 2 << 60;
    pub(crate) const AUGMENT: u64 = 3 << 60;
    pub(crate) const TORCH: u64 = 4 << 60;
}

/// Batches gathered ahead of the one in use.
const AHEAD: usize = 2;

/// One training view of an image: a symmetry of the square, and with lens-train --degrade maybe worse observing
/// conditions (applied first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    pub d4: D4,
    pub degrade: Option<Degrade>,
}

/// One batch to gather: pack rows, and in training one view per row.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub rows: Vec<usize>,
    pub augs: Option<Vec<View>>,
}

impl Planned {
    /// Rows as they are (validation, inference).
    pub(crate) fn plain(rows: &[usize]) -> Planned {
        Planned { rows: rows.to_vec(), augs: None }
    }
}

/// A host buffer and the event after its last copy to the GPU (None on a CPU, or before any copy).
type Copied = (Tensor, Option<CudaEvent>);

/// Gathers pack rows into batches on the device.
pub(crate) struct Batcher {
    pack: Arc<Pack>,
    device: Device,
    /// The whole pack on the device (--data-on-device), gathered with index_select instead.
    on_device: Option<Tensor>,
    /// Host buffers [capacity, 5, H, W], reused from batch to batch and plan to plan, each with the point in the
    /// GPU's stream after which its last copy to the GPU has run (the copies are asynchronous: a buffer is written
    /// again only after that).
    free: Rc<RefCell<Vec<Copied>>>,
}

/// The share of a GPU's free memory that the pack may take when its placement is auto: the rest is the model's
/// (weights, moments, activations, cuDNN's workspaces).
pub(crate) const AUTO_ON_DEVICE_SHARE: f64 = 0.25;

/// Rows uploaded to the device per copy when the whole pack goes there (bounded host memory: a 200k-object pack is
/// 6.7 GB in float32).
const UPLOAD_ROWS: usize = 8192;

/// Whether a pack of `bytes` (in float32) goes whole on `device`: `given` (lens-train --data-on-device always or
/// never), or for auto, on a GPU when it takes at most [`AUTO_ON_DEVICE_SHARE`] of the GPU's free memory, never on
/// a CPU (the mapped file is already in host memory).
pub(crate) fn place_on_device(given: Option<bool>, device: Device, bytes: u64) -> bool {
    match (given, device) {
        (Some(on), _) => on,
        (None, Device::Cuda(i)) => {
            crate::shim::cuda_mem_info(i).is_some_and(|(free, _)| bytes as f64 <= AUTO_ON_DEVICE_SHARE * free as f64)
        }
        (None, _) => false,
    }
}

impl Batcher {
    /// Batches of `pack` for a model on `device`; `data_on_device`: see [`place_on_device`].
    pub(crate) fn new(pack: Arc<Pack>, device: Device, data_on_device: Option<bool>) -> Result<Batcher> {
        let (h, w) = (pack.manifest.height as i64, pack.manifest.width as i64);
        let bytes = (pack.len() * pack.row_len() * 4) as u64;
        let on_device = if place_on_device(data_on_device, device, bytes) {
            let all = Tensor::empty([pack.len() as i64, 5, h, w], (Kind::Float, device));
            let mut host = vec![0f32; UPLOAD_ROWS.min(pack.len()) * pack.row_len()];
            for start in (0..pack.len()).step_by(UPLOAD_ROWS) {
                let n = UPLOAD_ROWS.min(pack.len() - start);
                let chunk = &mut host[..n * pack.row_len()];
                chunk.par_chunks_mut(pack.row_len()).enumerate().for_each(|(i, dst)| pack.row_f32(start + i, dst));
                let src = Tensor::from_slice(chunk).view([n as i64, 5, h, w]);
                all.narrow(0, start as i64, n as i64).copy_(&src);
            }
            Some(all)
        } else {
            None
        };
        Ok(Batcher { pack, device, on_device, free: Rc::default() })
    }

    /// The batches of `plan`, in order, each gathered by a background thread while the ones before it are in
    /// use. A batch's images live in a reused buffer: they are valid until the next call to [`Batches::next`].
    pub(crate) fn batches(&self, plan: Vec<Planned>) -> Result<Batches> {
        Batches::new(self.clone_handle(), plan)
    }

    /// Another handle on the same pack, device and buffer pool.
    fn clone_handle(&self) -> Batcher {
        Batcher {
            pack: Arc::clone(&self.pack),
            device: self.device,
            on_device: self.on_device.as_ref().map(Tensor::shallow_clone),
            free: Rc::clone(&self.free),
        }
    }

    fn labels(&self, rows: &[usize]) -> Tensor {
        let labels: Vec<f32> = rows.iter().map(|&r| f32::from(self.pack.meta[r].label.unwrap_or(0))).collect();
        upload(Tensor::from_slice(&labels), self.device)
    }

    /// A host buffer for at least `n` rows: a free one if one is large enough, else a new one.
    fn buffer(&self, n: usize) -> Tensor {
        let mut free = self.free.borrow_mut();
        if let Some(i) = free.iter().position(|(b, _)| b.size()[0] >= n as i64) {
            // Dropping the event waits until the buffer's last copy has run.
            return free.swap_remove(i).0;
        }
        let (h, w) = (self.pack.manifest.height as i64, self.pack.manifest.width as i64);
        let buf = Tensor::empty([n as i64, 5, h, w], (Kind::Float, Device::Cpu));
        if self.device.is_cuda() {
            // Page-locked, so that the copy to the GPU runs asynchronously; pageable memory where the host refuses
            // to lock more (the copy then waits, but works).
            crate::shim::pin_memory(&buf).unwrap_or(buf)
        } else {
            buf
        }
    }
}

/// Copies the planned rows into `buf` (a contiguous float32 CPU tensor with room for them), applying their views.
fn gather(pack: &Pack, planned: &Planned, buf: &Tensor) {
    let n = pack.row_len();
    let len = planned.rows.len() * n;
    assert!(buf.kind() == Kind::Float && buf.is_contiguous() && buf.numel() >= len, "a buffer that fits");
    // SAFETY: `buf` is a contiguous float32 CPU tensor of at least `len` elements (checked above) that no one else
    // reads or writes while this runs: a buffer belongs to one job at a time and comes back only after it.
    let dst = unsafe { std::slice::from_raw_parts_mut(buf.data_ptr() as *mut f32, len) };
    let (h, w) = (pack.manifest.height, pack.manifest.width);
    match &planned.augs {
        None => dst.par_chunks_mut(n).zip(&planned.rows).for_each(|(d, &r)| pack.row_f32(r, d)),
        Some(augs) => dst.par_chunks_mut(n).zip(&planned.rows).zip(augs).for_each_init(
            || vec![0f32; n],
            |tmp, ((d, &r), view)| {
                pack.row_f32(r, tmp);
                if let Some(degrade) = &view.degrade {
                    degrade.apply_to_row(tmp, h, w);
                }
                view.d4.apply_to_row(tmp, d, h, w);
            },
        ),
    }
}

/// A job for the gathering thread: rows (with views) into a buffer.
struct Job {
    planned: Planned,
    buf: Tensor,
}

/// The batches of a plan, gathered ahead by a background thread.
pub(crate) struct Batches {
    batcher: Batcher,
    plan: VecDeque<Planned>,
    /// Row count and labels of each job sent, in order.
    in_flight: VecDeque<(usize, Tensor)>,
    /// The buffer of the batch last handed out, and its copy's event: free again at the next call.
    in_use: Option<Copied>,
    jobs: Option<Sender<Job>>,
    done: Option<Receiver<Tensor>>,
    worker: Option<JoinHandle<()>>,
}

impl Batches {
    fn new(batcher: Batcher, plan: Vec<Planned>) -> Result<Batches> {
        let mut batches = Batches {
            batcher,
            plan: plan.into(),
            in_flight: VecDeque::new(),
            in_use: None,
            jobs: None,
            done: None,
            worker: None,
        };
        if batches.batcher.on_device.is_none() && !batches.plan.is_empty() {
            let (jobs, job_rx) = channel::<Job>();
            let (done_tx, done) = channel::<Tensor>();
            let pack = Arc::clone(&batches.batcher.pack);
            let worker = std::thread::Builder::new()
                .name("lensfind-batches".into())
                .spawn(move || {
                    for job in job_rx {
                        gather(&pack, &job.planned, &job.buf);
                        if done_tx.send(job.buf).is_err() {
                            return;
                        }
                    }
                })
                .context("starting the thread that gathers batches")?;
            (batches.jobs, batches.done, batches.worker) = (Some(jobs), Some(done), Some(worker));
            for _ in 0..AHEAD {
                batches.send_next();
            }
        }
        Ok(batches)
    }

    /// Sends the next planned batch to the gathering thread.
    fn send_next(&mut self) {
        let Some(planned) = self.plan.pop_front() else { return };
        let labels = self.batcher.labels(&planned.rows);
        let n = planned.rows.len();
        let buf = self.batcher.buffer(n);
        if let Some(jobs) = &self.jobs {
            if jobs.send(Job { planned, buf }).is_ok() {
                self.in_flight.push_back((n, labels));
            }
        }
    }

    /// The next batch: images [B, 5, H, W] (float32, on the device, the planned views applied) and labels [B].
    /// The images are valid until the next call.
    #[allow(clippy::should_implement_trait)] // a lending iterator, which std's Iterator cannot express
    pub(crate) fn next(&mut self) -> Option<(Tensor, Tensor)> {
        if let Some(used) = self.in_use.take() {
            self.batcher.free.borrow_mut().push(used);
        }
        if let Some(all) = &self.batcher.on_device {
            let planned = self.plan.pop_front()?;
            let idx: Vec<i64> = planned.rows.iter().map(|&r| r as i64).collect();
            let x = all.index_select(0, &upload(Tensor::from_slice(&idx), self.batcher.device));
            let x = match &planned.augs {
                None => x.shallow_clone(),
                Some(views) => {
                    // Worse conditions are drawn on the host, where batches are gathered: a run with them never
                    // puts its pack on the device (train::launch refuses --degrade with --data-on-device always).
                    assert!(views.iter().all(|v| v.degrade.is_none()), "worse conditions with the pack on the device");
                    augment(&x, &views.iter().map(|v| v.d4).collect::<Vec<_>>())
                }
            };
            return Some((x, self.batcher.labels(&planned.rows)));
        }
        let (n, labels) = self.in_flight.pop_front()?;
        // A closed channel means the thread died (a panic while gathering): no more batches.
        let buf = self.done.as_ref()?.recv().ok()?;
        self.send_next();
        let x = buf.narrow(0, 0, n as i64);
        let (x, copied) = match self.batcher.device {
            Device::Cuda(i) => (x.to_device_(self.batcher.device, Kind::Float, true, false), CudaEvent::record(i)),
            _ => (x, None),
        };
        self.in_use = Some((buf, copied));
        Some((x, labels))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job; its buffers come back to the pool.
        self.jobs = None;
        if let Some(done) = self.done.take() {
            self.batcher.free.borrow_mut().extend(done.iter().map(|buf| (buf, None)));
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        if let Some(used) = self.in_use.take() {
            self.batcher.free.borrow_mut().push(used);
        }
    }
}

/// The views of pack rows `rows` in `epoch`: each drawn from a stream of (seed, epoch, row), so an image gets the
/// same view whatever batch or rank it lands in (one process with batch 2B and two with B train alike) and a
/// resumed run draws the same ones. Three draws an image: a flip left to right, a flip upside down, k quarter turns
/// ([`D4::from_flips_and_turns`]); non-square images get k in {0, 2} only. With `degrade` = Some(p), each image
/// is then shown under worse conditions with chance p ([`Degrade::draw`]), drawn after the view from the same stream
/// (so the views are those of a run without it).
pub(crate) fn draw_augmentations(
    rows: &[usize],
    seed: u64,
    epoch: usize,
    square: bool,
    degrade: Option<f64>,
) -> Vec<View> {
    rows.iter()
        .map(|&row| {
            let mut rng = Rng::new(seed ^ streams::AUGMENT ^ epoch as u64, row as u64);
            let (hflip, vflip) = (rng.chance(0.5), rng.chance(0.5));
            let k = if square { rng.below(4) } else { 2 * rng.below(2) };
            let d4 = D4::from_flips_and_turns(hflip, vflip, k as u8);
            let degrade = degrade.filter(|&p| rng.chance(p)).map(|_| Degrade::draw(&mut rng));
            View { d4, degrade }
        })
        .collect()
}

/// A small host tensor copied to `device` without making the host wait: from page-locked memory (libtorch's
/// caching host allocator), asynchronously on the current stream, which orders it before the kernels that read it.
/// A copy from pageable memory would wait for the device to finish all the work queued before it.
pub(crate) fn upload(t: Tensor, device: Device) -> Tensor {
    if !device.is_cuda() {
        return t;
    }
    let kind = t.kind();
    match crate::shim::pin_memory(&t) {
        Ok(pinned) => pinned.to_device_(device, kind, true, false),
        Err(_) => t.to_device(device),
    }
}

/// Applies one view per image on the device: each element of D4 present, to the images that have it.
pub(crate) fn augment(x: &Tensor, augs: &[D4]) -> Tensor {
    let b = x.size()[0];
    assert_eq!(augs.len() as i64, b, "one view per image");
    let device = x.device();
    let mut out = x.shallow_clone();
    for view in D4::all().into_iter().filter(|v| *v != D4::IDENTITY) {
        let sel: Vec<bool> = augs.iter().map(|a| *a == view).collect();
        if sel.iter().any(|&s| s) {
            let mask = upload(Tensor::from_slice(&sel), device).view([b, 1, 1, 1]);
            out = view.apply(x).where_self(&mask, &out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmentations_are_d4_elements_drawn_per_row_and_applied_per_image() {
        let x = Tensor::arange(2 * 5 * 4 * 4, (Kind::Float, Device::Cpu)).view([2, 5, 4, 4]);
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..20 {
            let views = draw_augmentations(&[7, 8], 1, epoch, true, None);
            let augs: Vec<D4> = views.iter().map(|v| v.d4).collect();
            seen.extend(augs.iter().map(|a| (a.quarter_turns, a.flip)));
            assert_eq!(
                views[..1],
                draw_augmentations(&[7], 1, epoch, true, None)[..],
                "a row's view ignores its batch"
            );
            // Worse conditions drawn after the view leave the views as they were; about half the images get them.
            let degraded = draw_augmentations(&[7, 8], 1, epoch, true, Some(0.5));
            assert_eq!(degraded.iter().map(|v| v.d4).collect::<Vec<_>>(), augs);
            assert!(views.iter().all(|v| v.degrade.is_none()));
            let y = augment(&x, &augs);
            for (i, view) in augs.iter().enumerate() {
                let (xi, yi) = (x.get(i as i64).unsqueeze(0), y.get(i as i64).unsqueeze(0));
                assert!(view.apply(&xi).equal(&yi), "image {i}: {view:?}");
            }
        }
        assert_eq!(seen.len(), 8, "every view is drawn over epochs: {seen:?}");
        // Non-square images: no quarter turns.
        assert!((0..20)
            .all(|e| draw_augmentations(&[3, 4, 5], 2, e, false, None).iter().all(|a| a.d4.quarter_turns % 2 == 0)));
        // --degrade 0.5: about half of 1,000 images (binomial sd 16: 440..560 is over 3.7 sd), none at 0, all at 1.
        let rows: Vec<usize> = (0..1000).collect();
        let n = |p| draw_augmentations(&rows, 3, 1, true, Some(p)).iter().filter(|v| v.degrade.is_some()).count();
        assert!((440..=560).contains(&n(0.5)), "{}", n(0.5));
        assert_eq!((n(0.0), n(1.0)), (0, 1000));
    }
}

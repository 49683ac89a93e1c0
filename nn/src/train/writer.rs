//! The run's files written off the training loop's critical path. At the end of an epoch the loop copies what the
//! files need to host memory (weights, AdamW moments, metrics) and hands the writing (safetensors, fsync, renames) to
//! a thread of its own; training goes on meanwhile. One epoch's files are in flight at most: handing over the next
//! waits for the previous ones, so the files on disk are always those of one epoch, written in the same order as
//! before (best weights and predictions, metrics, checkpoint, timing), and a resumed run finds a whole checkpoint.
//! An error in the background is reported at the next hand-over or at [`Writer::wait`], which the run calls before
//! it returns.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use tch::{Device, Tensor};

/// Writing to do, in order, on the writer's thread.
pub(crate) type Job = Box<dyn FnOnce() -> Result<()> + Send>;

/// The writer thread and the jobs handed to it.
pub(crate) struct Writer {
    jobs: Option<Sender<Job>>,
    done: Receiver<Result<()>>,
    in_flight: usize,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn new() -> Result<Writer> {
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel();
        let thread = std::thread::Builder::new()
            .name("lensfind-writer".into())
            .spawn(move || {
                for job in job_rx {
                    let result = crate::panics::catch(job);
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            })
            .context("starting the thread that writes the run's files")?;
        Ok(Writer { jobs: Some(jobs), done, in_flight: 0, thread: Some(thread) })
    }

    /// Hands `job` to the writer once the jobs before it are written (their first error is returned instead).
    pub(crate) fn submit(&mut self, job: Job) -> Result<()> {
        self.wait()?;
        let jobs = self.jobs.as_ref().ok_or_else(|| anyhow!("the writer thread has stopped"))?;
        jobs.send(job).map_err(|_| anyhow!("the thread that writes the run's files has stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits until everything handed over is written; the first error among it.
    pub(crate) fn wait(&mut self) -> Result<()> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            self.in_flight -= 1;
            let result = self.done.recv().map_err(|_| anyhow!("the thread that writes the run's files died"));
            if first.is_ok() {
                first = result.and_then(|r| r);
            }
        }
        first
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Whatever was handed over is written before the process goes on (an error here was not asked for: the
        // run already failed for another reason, which is the one reported).
        let _ = self.wait();
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A copy of `t` in host memory, contiguous, in `t`'s element order: what the writer reads while training goes on
/// changing `t` in place.
pub(crate) fn host_copy(t: &Tensor) -> Tensor {
    let copy = Tensor::empty(t.size(), (t.kind(), Device::Cpu));
    tch::no_grad(|| copy.shallow_clone().copy_(t));
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn jobs_run_in_order_one_epoch_in_flight_and_errors_come_back() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut w = Writer::new().unwrap();
        for i in 0..3 {
            let entries = Arc::clone(&log);
            w.submit(Box::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                entries.lock().unwrap().push(i);
                Ok(())
            }))
            .unwrap();
            // The hand-over waited for the job before: at most this one is still being written.
            assert!(log.lock().unwrap().len() >= i, "{i}");
        }
        w.wait().unwrap();
        assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
        // An error, and a panic, in the background reach the next call.
        w.submit(Box::new(|| Err(anyhow!("disk full")))).unwrap();
        assert_eq!(w.submit(Box::new(|| Ok(()))).unwrap_err().to_string(), "disk full");
        w.wait().unwrap();
        w.submit(Box::new(|| panic!("write failed"))).unwrap();
        assert!(w.wait().unwrap_err().to_string().contains("write failed"));
    }

    #[test]
    fn a_host_copy_keeps_the_values_while_the_tensor_changes() {
        let t = Tensor::arange(24, (tch::Kind::Float, Device::Cpu)).view([1, 2, 3, 4]);
        let cl = crate::models::layers::to_channels_last(&t);
        let copy = host_copy(&cl);
        assert!(copy.is_contiguous() && copy.equal(&t), "element order, contiguous");
        let _ = cl.shallow_clone().fill_(0.0);
        assert!(copy.equal(&t), "a copy, not a view");
    }
}

//! Data-parallel processes on libtorch's c10d (what PyTorch DDP runs on): rank discovery from torchrun's or
//! Slurm's environment, a TCPStore rendezvous, and a Gloo (CPU or CUDA tensors) or NCCL (CUDA) process group with
//! all-reduce, broadcast, all-gather and barrier, each bounded by a timeout.
//!
//! Faults: every rank runs a heartbeat thread that bumps a counter in the store every 500 ms, and a rank that
//! fails with an error leaves its message there. When a collective fails or times out, the rank reads both and
//! names the culprit ("rank 1 stopped responding", "rank 1 failed: ...") instead of hanging until the job's
//! time limit. A group whose peer died is never freed: its threads may be blocked on the dead peer.

mod env;
mod store;

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Device, Tensor};

use crate::device::Choice;

pub use env::Env;
use store::{c_string, err_buf, err_text, timeout_ms, Store, ERR_LEN};

extern "C" {
    fn lensfind_pg_new(
        store: *mut c_void,
        backend: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: c_int,
        hostname: *const c_char,
        err: *mut c_char,
        err_len: c_int,
    ) -> *mut c_void;
    fn lensfind_pg_free(pg: *mut c_void);
    fn lensfind_pg_allreduce_sum(pg: *mut c_void, t: *mut torch_sys::C_tensor, err: *mut c_char, len: c_int) -> c_int;
    fn lensfind_pg_broadcast(
        pg: *mut c_void,
        t: *mut torch_sys::C_tensor,
        root: c_int,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn lensfind_pg_allgather(
        pg: *mut c_void,
        out: *mut torch_sys::C_tensor,
        input: *mut torch_sys::C_tensor,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn lensfind_pg_barrier(pg: *mut c_void, err: *mut c_char, len: c_int) -> c_int;
    fn lensfind_nccl_available() -> c_int;
    fn lensfind_quiet_logs();
}

/// Whether this build has c10d's NCCL backend (the torch wheel had CUDA and the CUDA headers were there).
pub(crate) fn nccl_available() -> bool {
    // SAFETY: returns a compile-time constant.
    unsafe { lensfind_nccl_available() != 0 }
}

/// The collective backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gloo" => Ok(Backend::Gloo),
            "nccl" => Ok(Backend::Nccl),
            other => Err(format!("{other:?}: expected gloo or nccl")),
        }
    }
}

impl Backend {
    /// The backend that `--dist-backend` means for a process whose tensors live on `device`: auto is NCCL on GPUs
    /// when this build has it, Gloo otherwise.
    pub(crate) fn choose(given: Choice<Backend>, device: Device) -> Result<Backend> {
        let on_gpu = device.is_cuda();
        Ok(match given {
            Choice::Is(Backend::Nccl) if !on_gpu => {
                let problem = "needs GPUs; this process runs on the CPU (its device)";
                return Err(
                    crate::setting::SettingError::new(crate::setting::Setting::DistBackend, "nccl", problem).into()
                );
            }
            Choice::Is(b) => b,
            Choice::Auto if on_gpu && nccl_available() => Backend::Nccl,
            Choice::Auto => Backend::Gloo,
        })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        })
    }
}

const HEARTBEAT: Duration = Duration::from_millis(500);

// Both under the store's prefix of this attempt: a restarted group must not read a heartbeat or a failure report
// of the group before it.
fn heartbeat_key(rank: usize) -> String {
    format!("heartbeat/{rank}")
}

fn failure_key(rank: usize) -> String {
    format!("failed/{rank}")
}

/// One process's membership of the group: the store, the process group and the heartbeat.
pub struct ProcessGroup {
    pub rank: usize,
    pub world: usize,
    /// The rank on this node (the GPU index).
    pub local_rank: usize,
    pub backend: Backend,
    pub timeout: Duration,
    store: Store,
    pg: *mut c_void,
    stop_heartbeat: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
    /// Set when a collective failed: the group is then leaked, not freed.
    broken: AtomicBool,
}

impl ProcessGroup {
    /// Joins the group described by `env`: rank 0 serves the store; everyone waits up to `timeout` for it.
    pub fn init(env: &Env, backend: Backend, timeout: Duration) -> Result<ProcessGroup> {
        if backend == Backend::Nccl && !nccl_available() {
            bail!("this build has no NCCL backend (the torch wheel's CUDA headers were missing at build time)");
        }
        // c10d logs a warning with a stack trace for every store call that fails once a peer is gone (the heartbeat
        // thread makes some); lensfind reports the fault itself, once, so only libtorch's errors are printed.
        // SAFETY: sets libtorch's log level (a plain global int).
        unsafe { lensfind_quiet_logs() };
        // Under torchrun the agent already serves the store at MASTER_PORT; the workers are all clients.
        let store = Store::connect(env, env.rank == 0 && !env.agent_store, timeout)?;
        // Gloo binds to loopback when the master is local (tests, one node without a resolvable hostname).
        let loopback = matches!(env.master_addr.as_str(), "localhost" | "127.0.0.1" | "::1");
        let host = loopback.then(|| c_string("127.0.0.1"));
        let mut err = err_buf();
        // SAFETY: a live store; hostname is null or a C string; error buffer of ERR_LEN bytes.
        let pg = unsafe {
            lensfind_pg_new(
                store.0,
                c_int::from(backend == Backend::Nccl),
                env.rank as c_int,
                env.world as c_int,
                timeout_ms(timeout),
                host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
                err.as_mut_ptr(),
                ERR_LEN as c_int,
            )
        };
        if pg.is_null() {
            bail!(
                "rank {} of {}: creating the {backend} process group (store {}:{}) failed: {}",
                env.rank,
                env.world,
                env.master_addr,
                env.master_port,
                err_text(&err)
            );
        }
        let stop_heartbeat = Arc::new(AtomicBool::new(false));
        let beat_store = Store::connect(env, false, timeout)?;
        let (rank, stop) = (env.rank, Arc::clone(&stop_heartbeat));
        let heartbeat = std::thread::Builder::new()
            .name("lensfind-heartbeat".into())
            .spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if beat_store.set(&heartbeat_key(rank), &n.to_le_bytes()).is_err() {
                        return;
                    }
                    std::thread::sleep(HEARTBEAT);
                }
            })
            .context("starting the heartbeat thread")?;
        let pg = ProcessGroup {
            rank: env.rank,
            world: env.world,
            local_rank: env.local_rank,
            backend,
            timeout,
            store,
            pg,
            stop_heartbeat,
            heartbeat: Some(heartbeat),
            broken: AtomicBool::new(false),
        };
        Ok(pg)
    }

    /// Turns a failed collective into an error that names the rank at fault when it can be found.
    fn fault(&self, what: &str, message: String) -> anyhow::Error {
        self.broken.store(true, Ordering::Relaxed);
        let culprit = self.diagnose();
        let detail = message.trim().split(". This is typically caused").next().unwrap_or_default().to_string();
        anyhow!("{what} failed: {culprit} ({detail})")
    }

    /// Which other rank failed or stopped: a message it left, else a heartbeat that stopped moving.
    fn diagnose(&self) -> String {
        let others: Vec<usize> = (0..self.world).filter(|&r| r != self.rank).collect();
        for &r in &others {
            if let Ok(Some(msg)) = self.store.try_get(&failure_key(r)) {
                return format!("rank {r} failed: {}", String::from_utf8_lossy(&msg));
            }
        }
        let read = |r: usize| self.store.try_get(&heartbeat_key(r));
        let first: Vec<_> = others.iter().map(|&r| read(r)).collect();
        if first.iter().any(Result::is_err) {
            return "the rendezvous store is gone: rank 0, which serves it, has stopped".into();
        }
        std::thread::sleep(HEARTBEAT * 5);
        let stalled: Vec<String> = others
            .iter()
            .zip(&first)
            .filter(|(&r, before)| match (read(r), before) {
                (Ok(now), Ok(before)) => now == *before,
                _ => true,
            })
            .map(|(r, _)| r.to_string())
            .collect();
        match stalled.len() {
            0 => "no other rank reported an error and all are alive (a network fault, or a timeout too short for \
                  this step?)"
                .into(),
            1 => format!("rank {} stopped responding (killed or stalled)", stalled[0]),
            _ => format!("ranks {} stopped responding (killed or stalled)", stalled.join(", ")),
        }
    }

    /// Leaves this rank's error for the others to read, so that they can name it when their collectives fail.
    pub(crate) fn report_failure(&self, message: &str) {
        let _ = self.store.set(&failure_key(self.rank), message.as_bytes());
    }

    fn call(&self, what: &str, f: impl FnOnce(*mut c_char) -> c_int) -> Result<()> {
        if self.broken.load(Ordering::Relaxed) {
            bail!("rank {}: the process group is broken by an earlier failure", self.rank);
        }
        let mut err = err_buf();
        if f(err.as_mut_ptr()) == 0 {
            Ok(())
        } else {
            Err(self.fault(what, err_text(&err)))
        }
    }

    /// Sums `t` over all ranks, in place. `t` must be contiguous and on this rank's device.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        let p = t.as_ptr() as *mut torch_sys::C_tensor;
        // SAFETY: a live group and tensor; the shim writes at most ERR_LEN bytes of error.
        self.call("all-reduce", |e| unsafe { lensfind_pg_allreduce_sum(self.pg, p, e, ERR_LEN as c_int) })
    }

    /// Averages `t` over all ranks, in place (a sum, then a division: Gloo has no average).
    #[cfg(test)]
    pub(crate) fn all_reduce_mean(&self, t: &Tensor) -> Result<()> {
        self.all_reduce_sum(t)?;
        let _ = t.shallow_clone().g_div_scalar_(self.world as f64);
        Ok(())
    }

    /// Overwrites `t` on every rank with rank `root`'s.
    pub(crate) fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let p = t.as_ptr() as *mut torch_sys::C_tensor;
        // SAFETY: as above.
        self.call("broadcast", |e| unsafe { lensfind_pg_broadcast(self.pg, p, root as c_int, e, ERR_LEN as c_int) })
    }

    /// Every rank's `t` (same shape everywhere), stacked in rank order: [world, ...].
    pub(crate) fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.contiguous();
        let mut shape = vec![self.world as i64];
        shape.extend(t.size());
        let out = Tensor::empty(shape.as_slice(), (t.kind(), t.device()));
        let (po, pi) = (out.as_ptr() as *mut torch_sys::C_tensor, t.as_ptr() as *mut torch_sys::C_tensor);
        // SAFETY: as above; out has world x the input's elements.
        self.call("all-gather", |e| unsafe { lensfind_pg_allgather(self.pg, po, pi, e, ERR_LEN as c_int) })?;
        Ok(out)
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: as above.
        self.call("barrier", |e| unsafe { lensfind_pg_barrier(self.pg, e, ERR_LEN as c_int) })
    }

    /// Sums f64 values over all ranks (as a tensor on `device`, which NCCL needs to be a GPU).
    pub(crate) fn sum_f64(&self, values: &[f64], device: Device) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(values).to_device(device);
        self.all_reduce_sum(&t)?;
        Ok(Vec::<f64>::try_from(&t.to_device(Device::Cpu)).expect("f64 tensor"))
    }

    /// Gathers a different number of f64 values from each rank: every rank's, in rank order.
    pub(crate) fn gather_f64(&self, values: &[f64], device: Device) -> Result<Vec<Vec<f64>>> {
        let counts = self.all_gather(&Tensor::from_slice(&[values.len() as i64]).to_device(device))?;
        let counts = Vec::<i64>::try_from(&counts.to_device(Device::Cpu).view([-1])).expect("i64 tensor");
        let max = counts.iter().copied().max().unwrap_or(0) as usize;
        if max == 0 {
            return Ok(vec![Vec::new(); self.world]);
        }
        let mut padded = values.to_vec();
        padded.resize(max, 0.0);
        let all = self.all_gather(&Tensor::from_slice(&padded).to_device(device))?.to_device(Device::Cpu);
        Ok((0..self.world)
            .map(|r| {
                let row = Vec::<f64>::try_from(&all.get(r as i64)).expect("f64 tensor");
                row[..counts[r] as usize].to_vec()
            })
            .collect())
    }

    /// A clean end: every rank arrives, then the group is freed.
    pub fn finish(mut self) -> Result<()> {
        self.barrier()?;
        self.stop();
        Ok(())
    }

    fn stop(&mut self) {
        self.stop_heartbeat.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Relaxed) {
            // Threads inside the group may be blocked on a dead peer; freeing it could hang. The process is
            // about to exit with the error.
            return;
        }
        self.stop();
        // SAFETY: created by lensfind_pg_new and freed once, after its last collective.
        unsafe { lensfind_pg_free(self.pg) }
    }
}

#[cfg(test)]
mod tests;

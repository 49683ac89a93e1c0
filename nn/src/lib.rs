//! lensfind-nn: models, training and inference on libtorch (tch).
//!
//! A crate of its own rather than a feature of `lensfind`: cargo unifies features across a workspace build, so a
//! `torch` feature switched on by lens-train would link libtorch into lens-pack and lens-index too. Tools that need
//! no model depend on `lensfind` alone and never load libtorch.
//!
//! Modules depend one way: `models` -> `device`, `batch`, `config`, `run_dir` -> `infer` -> `train`; `shim`, `optim` and
//! `dist` are the libtorch plumbing underneath.

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod alloc;
mod autotune;
mod batch;
#[cfg(feature = "clap")]
pub mod cli;
pub mod config;
mod d4;
mod degrade;
pub mod device;
pub mod dist;
mod exec;
pub mod infer;
pub mod models;
pub mod optim;
mod panics;
pub mod recipe;
pub mod run_dir;
pub mod setting;
pub mod shim;
pub mod train;
pub mod tta;
pub mod version;

// The types of the private modules that the public API hands out (what auto chose and measured, the execution
// settings, the D4 group), nameable from the crate's root.
pub use autotune::{Autotune, Cache as AutotuneCache, Failed, Setting, Timing, Workload};
pub use d4::D4;
pub use exec::Exec;
pub use models::{registry, Model, ModelConfig, ModelSpec};

/// The `-j/--threads` option of the torch tools: libtorch's intra-op threads and the rayon pool that gathers
/// batches (both default to all cores).
pub fn init_threads(threads: Option<std::num::NonZeroUsize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        tch::set_num_threads(i32::try_from(n.get()).unwrap_or(i32::MAX));
    }
    Ok(lensfind_core::threads::init_pool(threads)?)
}

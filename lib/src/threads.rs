//! The `-j/--threads` option every parallel tool has.

use anyhow::Context;

/// Sizes rayon's global pool: `None` keeps rayon's default (all cores, or RAYON_NUM_THREADS).
pub fn init(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the thread pool")?;
    }
    Ok(())
}

//! The `-j/--threads` option every parallel tool has.

use std::num::NonZeroUsize;

/// Why the thread pool could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting the thread pool")]
pub struct ThreadsError(#[from] rayon::ThreadPoolBuildError);

/// Sizes rayon's global pool: `None` keeps rayon's default (all cores, or RAYON_NUM_THREADS). A count of threads is
/// never 0: the tools parse -j as a [`NonZeroUsize`], so that a 0 is refused where it is typed.
pub fn init_pool(threads: Option<NonZeroUsize>) -> Result<(), ThreadsError> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n.get()).build_global()?;
    }
    Ok(())
}

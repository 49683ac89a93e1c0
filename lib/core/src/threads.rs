//! The `-j/--threads` option every parallel tool has.

/// Why the thread pool could not be sized.
#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    #[error("--threads must be at least 1")]
    Zero,
    #[error("starting the thread pool")]
    Pool(#[from] rayon::ThreadPoolBuildError),
}

/// Sizes rayon's global pool: `None` keeps rayon's default (all cores, or RAYON_NUM_THREADS).
pub fn init_pool(threads: Option<usize>) -> Result<(), ThreadsError> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(ThreadsError::Zero);
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    Ok(())
}

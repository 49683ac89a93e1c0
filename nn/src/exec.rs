//! Where and how a tool runs its model, as its command line gives it: lens-train's and lens-infer's shared
//! settings, parsed by [`crate::cli::ExecArgs`] (with the `clap` feature) and read by training and inference.

use crate::autotune::Cache;
use crate::device::{Choice, DeviceName, MemoryFormat, Precision};

/// The device, the precision and memory format (fixed, or auto: measured at start-up), the CPU threads and whether
/// auto's measurements may come from and go to the cache of earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    pub device: DeviceName,
    pub precision: Choice<Precision>,
    pub memory_format: Choice<MemoryFormat>,
    pub threads: Option<std::num::NonZeroUsize>,
    pub autotune_cache: bool,
}

impl Default for Exec {
    /// Everything auto, all cores, the cache used: the tools' defaults.
    fn default() -> Self {
        Exec {
            device: DeviceName::Auto,
            precision: Choice::Auto,
            memory_format: Choice::Auto,
            threads: None,
            autotune_cache: true,
        }
    }
}

impl Exec {
    /// The autotune cache these settings ask for.
    pub fn cache(&self) -> Cache {
        if self.autotune_cache {
            Cache::user()
        } else {
            Cache::disabled()
        }
    }
}

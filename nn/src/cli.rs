//! The options lens-train and lens-infer share: where and how the model runs. Defined once so both tools spell,
//! document and parse them alike; the libraries take what they mean, an [`Exec`]. Only with the `clap` feature,
//! which only the tools switch on.

use crate::device::{Choice, DeviceName, MemoryFormat, Precision};
use crate::exec::Exec;
use crate::setting::{ScalingMismatch, Setting, SettingError};

/// The option that gives `setting`: `--batch-size` for `batch_size`.
pub fn flag(setting: Setting) -> String {
    format!("--{}", setting.name().replace('_', "-"))
}

/// The tools' wording of the library's errors about a setting: with the option's name (`--batch-size 0: must be
/// at least 1`), and a pack scaled otherwise than the run needs with the lens-pack command that repacks it; for
/// lensfind_core::cli::main_worded.
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(m) = e.downcast_ref::<ScalingMismatch>() {
        return Some(m.worded(|to| match to {
            Some(to) => format!("repack it with lens-pack --standardize {to}"),
            None => "repack one with lens-pack --standardize".to_string(),
        }));
    }
    e.downcast_ref::<SettingError>().map(|s| s.worded(flag))
}

/// Device, precision, memory format and threads.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// auto (time each candidate on this machine at start-up and take the fastest; see AUTO SETTINGS), fp32,
    /// bf16 (autocast) or fp16 (autocast; training adds dynamic loss scaling).
    #[arg(long, default_value = "auto", value_name = "PRECISION", value_parser = |s: &str| s.parse::<Choice<Precision>>())]
    pub precision: Choice<Precision>,

    /// auto (timed with --precision), contiguous (NCHW) or channels-last.
    #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = |s: &str| s.parse::<Choice<MemoryFormat>>())]
    pub memory_format: Choice<MemoryFormat>,

    /// The same as --memory-format contiguous.
    #[arg(long, conflicts_with = "memory_format")]
    pub no_channels_last: bool,

    /// Time the auto settings now, without reading or writing the cache of earlier choices
    /// ($XDG_CACHE_HOME/lensfind/autotune.json, or ~/.cache/lensfind/autotune.json).
    #[arg(long)]
    pub no_autotune_cache: bool,

    /// auto (the first GPU if any), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceName,

    /// CPU threads for libtorch and batch gathering (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
}

impl ExecArgs {
    /// What the options mean, --no-channels-last folded into the memory format.
    pub fn exec(&self) -> Exec {
        Exec {
            device: self.device,
            precision: self.precision,
            memory_format: if self.no_channels_last {
                Choice::Is(MemoryFormat::Contiguous)
            } else {
                self.memory_format
            },
            threads: self.threads,
            autotune_cache: !self.no_autotune_cache,
        }
    }
}

/// The text both tools' --help give under AUTO SETTINGS.
pub const AUTO_SETTINGS_HELP: &str = "\
AUTO SETTINGS: with --precision auto and --memory-format auto (the defaults), a few steps of each candidate are \
timed at start-up on the real model, batch and device (one that is many times slower than the best so far stops \
after one or two), and the fastest is used; the timings are printed on stderr \
(training also records them in config.json, and a resume keeps the recorded choice). Candidates: fp32 and bf16 on \
a CPU; bf16 (fp16 on GPUs older than Ampere) and fp32 on a GPU; each contiguous and channels-last. Which is fastest depends on the machine \
(CPU vendor and instruction sets, GPU model) and the model, so auto may choose differently on another machine; \
for bit-for-bit repeatable runs across machines give both settings. The choice is cached per CPU model and vector \
instructions (or GPU model), build of lensfind, libtorch version, model, input size, batch, threads and device in \
$XDG_CACHE_HOME/lensfind/autotune.json (or ~/.cache/lensfind/autotune.json): delete that file to clear it, or pass \
--no-autotune-cache to time again.";

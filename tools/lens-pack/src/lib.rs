//! lens-pack's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use lensfind_data::index::read_index_input;
use lensfind_data::npy::Dtype;
use lensfind_data::pack::{verify, write_pack, PackDir, PackOptions, PackSummary, Standardize, WriteError};

/// Pack the objects of an index into NAME.pack/, one memory-mappable array that training and inference read.
///
/// Reads the index that lens-index prints (a file, or stdin for - or no argument), loads the five band files of
/// every object in parallel, and writes four files into the pack directory:
///
/// images.npy: float32 (or float16) [N, 5, H, W], bands g,r,i,z,y, C order; numpy.load(path, mmap_mode="r") opens
/// it. NaN and Inf become 0, then each object is standardised (default: one mean and one population std over its
/// whole 5xHxW cube, as the reference does; skipped when std <= 1e-9).
///
/// meta.csv: row,id,label,source; row i describes images[i], in index order.
///
/// rejected.csv: id,reason for every object of the index that is not in the pack.
///
/// pack.json: format, version, shape, dtype, standardisation, counts and checksums.
///
/// Both challenge layouts are read: a one-row binary table with a vector column band_<b> (float64 or float32, with
/// or without TDIM), or an image in the first image HDU with data. An object whose file is missing, truncated,
/// unreadable or of the wrong shape is set aside in rejected.csv with its reason, and the pack is still written;
/// --max-rejected turns too many into an error.
///
/// The pack appears whole or not at all: it is built in a hidden directory beside NAME.pack and renamed into place
/// at the end; an existing pack of that name is replaced, anything else there is refused. Ctrl-C or SIGTERM leave
/// no trace. `lens-pack --verify NAME.pack` checks a pack against its checksums.
///
/// Exit status: 0 on success (objects may have been set aside), 2 on error or when --verify finds damage.
#[derive(Debug, Parser)]
#[command(name = "lens-pack", version, max_term_width = 110)]
pub struct Args {
    /// The index CSV (id,label,source,g,r,i,z,y); - or nothing reads stdin.
    #[arg(value_name = "INDEX")]
    pub index: Option<PathBuf>,

    /// The pack directory to write (conventionally NAME.pack).
    #[arg(long, short = 'o', value_name = "DIR", required_unless_present = "verify", conflicts_with = "verify")]
    pub output: Option<PathBuf>,

    /// Check an existing pack against its checksums instead of writing one; names damaged rows.
    #[arg(long, value_name = "PACK")]
    pub verify: Option<PathBuf>,

    /// Expected image size: S for SxS, or HxW. Other shapes are rejected.
    #[arg(long, value_name = "S|HxW", default_value = "41", value_parser = parse_size)]
    pub size: (usize, usize),

    /// Standardisation of each object: cube (one mean/std over 5xHxW), band (per band), none.
    #[arg(long, value_enum, default_value_t = Standardize::Cube)]
    pub standardize: Standardize,

    /// Stored element type: f32, or f16 to halve the size.
    #[arg(long, value_name = "f32|f16", default_value = "f32", value_parser = str::parse::<Dtype>)]
    pub dtype: Dtype,

    /// Fail (exit 2, no pack written) when more than N objects are rejected.
    #[arg(long, value_name = "N")]
    pub max_rejected: Option<usize>,

    /// Reject an object when more than this fraction (0-1) of its pixels are NaN or Inf; by default such pixels
    /// are set to 0 and the object is kept.
    #[arg(long, value_name = "FRACTION", default_value_t = 1.0)]
    pub max_nonfinite: f64,

    /// Worker threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,

    /// Objects loaded in parallel per step (bounds memory: about N x 34 kB at 41x41).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub chunk: usize,

    /// No progress output and no per-object warnings; the final summary only.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|&v| v > 0);
    let size = match s.split_once(['x', 'X']) {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(s).map(|v| (v, v)),
    };
    size.ok_or_else(|| format!("{s:?} is not S or HxW with positive integers"))
}

/// How many rejections to print one by one before summarising.
const SHOW_REJECTED: usize = 20;

fn run_verify(pack: &Path) -> Result<ExitCode> {
    let problems = verify(pack)?;
    if problems.is_empty() {
        eprintln!("lens-pack: {} is sound", pack.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("lens-pack: damaged: {p}");
    }
    bail!("{} failed verification ({} problems)", pack.display(), problems.len())
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(pack) = &args.verify {
        return run_verify(pack);
    }
    let out = args.output.as_deref().expect("clap requires --output without --verify");
    if !(0.0..=1.0).contains(&args.max_nonfinite) {
        bail!("--max-nonfinite {} is not a fraction between 0 and 1", args.max_nonfinite);
    }
    lensfind_core::threads::init_pool(args.threads)?;
    let (rows, name) = read_index_input(args.index.as_deref())?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted)).context("installing the signal handler")?;
    }
    let opts = PackOptions {
        height: args.size.0,
        width: args.size.1,
        dtype: args.dtype,
        standardize: args.standardize,
        max_rejected: args.max_rejected,
        max_nonfinite: args.max_nonfinite,
        chunk: args.chunk,
        quiet: args.quiet,
    };
    let tool = format!("lens-pack {}", env!("CARGO_PKG_VERSION"));
    // An I/O failure (a full disk, a vanished directory) names the pack it was writing.
    let summary = write_pack(&rows, out, &opts, &tool, &interrupted).map_err(|e| {
        let e = anyhow::Error::new(e);
        if e.chain().any(|c| c.is::<std::io::Error>()) {
            e.context(format!("writing {}", out.display()))
        } else {
            e
        }
    })?;
    if !args.quiet {
        for (id, reason) in summary.rejected.iter().take(SHOW_REJECTED) {
            eprintln!("lens-pack: warning: set aside {id}: {reason}");
        }
        if summary.rejected.len() > SHOW_REJECTED {
            eprintln!("lens-pack: warning: ... and {} more", summary.rejected.len() - SHOW_REJECTED);
        }
    }
    eprintln!("lens-pack: {}", summary_line(&summary, rows.len(), &name, out));
    Ok(ExitCode::SUCCESS)
}

/// What was packed, from where, into where, how fast, and what was set aside.
fn summary_line(summary: &PackSummary, objects: usize, name: &str, out: &Path) -> String {
    let m = &summary.manifest;
    let rate = m.count as f64 / summary.seconds.max(1e-9);
    let listed =
        if m.rejected > 0 { format!(" (listed in {})", PackDir(out).rejected().display()) } else { String::new() };
    let nonfinite = if m.nonfinite.objects_affected > 0 {
        format!("; {} NaN/Inf values in {} objects set to 0", m.nonfinite.values_replaced, m.nonfinite.objects_affected)
    } else {
        String::new()
    };
    format!(
        "packed {} of {objects} objects from {name} ({} lenses, {} non-lenses) into {} in {:.1}s ({rate:.0} objects/s); \
         set aside {}{listed}{nonfinite}",
        m.count,
        m.lenses,
        m.nonlenses,
        out.display(),
        summary.seconds,
        m.rejected,
    )
}

/// lensfind-data's errors about this tool's options, worded with the options' names (for
/// lensfind_core::cli::main_worded).
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match e.downcast_ref::<WriteError>()? {
        WriteError::TooManyRejected { count, max, id, reason } => Some(format!(
            "{count} objects rejected, more than --max-rejected {max}; no pack written (first: {id}: {reason})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("41"), Ok((41, 41)));
        assert_eq!(parse_size("40x64"), Ok((40, 64)));
        assert!(parse_size("0").is_err());
        assert!(parse_size("41x").is_err());
        assert!(parse_size("big").is_err());
    }
}

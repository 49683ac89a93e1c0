//! lens-synth's command line. The definition lives in a library target so that the man page generator (xtask)
//! renders exactly what `--help` shows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lensfind_synth::{generate, Difficulty, SynthError, SynthOptions};

/// Write a synthetic lens-finding dataset in the exact layout of the LSST Strong Lensing Data Challenge.
///
/// Training layout (default): OUT/slsim_lenses/, OUT/slsim_nonlenses/, OUT/hsc_lenses/ and OUT/hsc_nonlenses/, each
/// holding N objects as five files D<source>_<L|N>_<8 digits>_<band>.fits (bands g, r, i, z, y). Each file has an
/// empty primary HDU and a one-row binary table with the object id and a float64 vector column band_<b> of
/// SIZE*SIZE pixels; the HSC files carry a TDIM keyword, the SLSim files do not, as in the real release.
///
/// Blind layout (--blind): 2N objects (N lenses, N non-lenses, shuffled) as OUT/object_<n>_<band>.fits with the
/// image in the primary HDU, plus OUT/labels.csv (id,label,source) to score predictions against.
///
/// Every object is a red elliptical Sersic galaxy on a noisy sky seen through a per-band Gaussian PSF; lenses add a
/// blue background source ray-traced through a singular isothermal ellipsoid with external shear (arcs, rings,
/// multiple images; Einstein radii 0.6-2.0", many sources faint). 40% of all objects, lenses or not, have an
/// unlensed companion, mostly blue, so colour alone does not separate the classes. SLSim and HSC objects differ in
/// PSF and noise. OUT/params.csv records each object's Einstein radius, source flux and companion.
///
/// --difficulty hard makes the benchmark that tells training recipes apart (scripts/bench-recipes.sh): fainter
/// and smaller arcs (Einstein radii 0.5-1.6", sources 0.05-0.25" and fainter), companions on half the
/// objects, ring and spiral galaxies (blue rings and arms around the red galaxy) on half the non-lenses, and two
/// seeing/noise domains: good (the instrument's) and poor (seeing 1.4x broader, sky noise 1.7x), a quarter poor
/// in the training layout and 70% poor in the blind layout, a shifted mix. params.csv then adds the columns domain
/// (good, poor) and lookalike (none, ring, spiral). The default, easy, is unchanged, byte for byte.
///
/// The same --seed gives byte-identical files, whatever the number of threads.
#[derive(Debug, Parser)]
#[command(name = "lens-synth", version, max_term_width = 110)]
pub struct Args {
    /// Output directory; created if missing, must be empty.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Objects per class: per training directory, or per label with --blind.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    pub objects: usize,

    /// Random seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write the blind test layout (image in the primary HDU, no label in the name) and OUT/labels.csv.
    #[arg(long)]
    pub blind: bool,

    /// Damage K of the written files (alternately truncated and with a garbage header), listed in
    /// OUT/corrupted.csv, as the real release had.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub corrupt: usize,

    /// Cutout side in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 41)]
    pub size: usize,

    /// easy (the default) or hard: the benchmark of training recipes (see above).
    #[arg(long, value_enum, default_value_t = Difficulty::Easy, value_name = "LEVEL")]
    pub difficulty: Difficulty,

    /// Worker threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,

    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    lensfind_core::threads::init_pool(args.threads)?;
    let opts = SynthOptions {
        out: args.out,
        objects: args.objects,
        seed: args.seed,
        blind: args.blind,
        corrupt: args.corrupt,
        size: args.size,
        difficulty: args.difficulty,
        quiet: args.quiet,
    };
    let report = generate(&opts)?;
    if !args.quiet {
        eprintln!(
            "lens-synth: wrote {} objects ({} lenses) as {} files under {}{}",
            report.objects,
            report.lenses,
            report.files,
            opts.out.display(),
            if report.corrupted.is_empty() {
                String::new()
            } else {
                format!("; damaged {} (listed in corrupted.csv)", report.corrupted.len())
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// lensfind-synth's errors about this tool's options, worded with the options' names (for
/// lensfind_core::cli::main_worded).
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match e.downcast_ref::<SynthError>()? {
        SynthError::Size(n) => Some(format!("--size {n} is too small (at least 8 pixels)")),
        SynthError::Corrupt { corrupt, files } => {
            Some(format!("--corrupt {corrupt} is more than the {files} files to write"))
        }
        _ => None,
    }
}

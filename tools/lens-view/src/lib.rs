//! lens-view's command line: the selection is lensfind_view::select's, the drawing lensfind_view::render's.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{ArgGroup, Parser, ValueEnum};
use lensfind_data::pack::Pack;
use lensfind_view::render::{contact_sheet, SheetOptions, Stretch, View};
use lensfind_view::select::{class_name, load_scores, select, Choice, SelectError};

/// The contact sheet's geometry and pixels (the tests locate tiles with `render::Grid`).
pub use lensfind_view::render;

/// Draw a contact sheet of candidates: a PNG grid of colour composites from a pack, each labelled with its id and
/// score, for vetting by eye.
///
/// Which objects: the --top N best by score (the default, N = 36; needs --scores), the objects named with --ids or
/// --ids-file (in that order), or a random --sample of N objects (of one class with --label), seeded, in pack
/// order. --scores is lens-ensemble's id,pred or lens-infer's id,logit[,...]; with --ids or --sample it is
/// optional and only labels the tiles.
///
/// Each tile is the i, r, g bands as red, green, blue with the asinh stretch of Lupton et al. (2004), as astropy's
/// make_lupton_rgb; --band shows one band in grey. Packs are standardised per object, so each band's sky level
/// (the median of the tile's outer 4-pixel frame) is subtracted and the values are divided by the sky noise
/// (1.4826 x MAD of that frame, one unit for all bands so colours are kept): --stretch and --minimum are in noise
/// sigmas, and faint arcs a few sigma above the sky stay visible beside a bright lens galaxy.
///
/// Labels: the id, then the score (column name and value) and the pack's label ([L] lens, [N] non-lens) when known.
/// They need a TrueType font: DejaVu Sans (fonts-dejavu-core), or the file named by LENSFIND_FONT.
#[derive(Debug, Parser)]
#[command(name = "lens-view", version, max_term_width = 110)]
#[command(group(ArgGroup::new("selection").args(["top", "ids", "ids_file", "sample"])))]
pub struct Args {
    /// The pack holding the images.
    #[arg(long, value_name = "PACK")]
    pub pack: PathBuf,

    /// Scores: id,pred or id,logit[,...] (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,

    /// Show the N highest scores, best first (ties by id).
    #[arg(long, short = 'n', value_name = "N")]
    pub top: Option<usize>,

    /// Show these ids, in this order.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub ids: Option<Vec<String>>,

    /// Show the ids of FILE, in its order: a CSV with an id column (a submission, a candidate list), or one id per
    /// line (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,

    /// Show N objects drawn at random (seeded), in pack order.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,

    /// With --sample: draw only lenses (1) or only non-lenses (0), by the pack's labels.
    #[arg(long, requires = "sample", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub label: Option<u8>,

    /// Seed of --sample.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,

    /// Show one band in grey instead of the i,r,g colour composite.
    #[arg(long, value_enum)]
    pub band: Option<Band>,

    /// Tiles per row.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cols: u32,

    /// Pixel upsampling: each image pixel is drawn as KxK screen pixels.
    #[arg(long, default_value_t = 4, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub scale: u32,

    /// Lupton's Q: how soon the stretch turns from linear to logarithmic (higher shows more faint structure
    /// beside bright cores).
    #[arg(long, short = 'Q', default_value_t = 8.0, value_name = "Q")]
    pub q: f32,

    /// Lupton's stretch, in sky-noise sigmas: the linear range of the mapping (lower brightens faint features).
    #[arg(long, default_value_t = 8.0, value_name = "SIGMA")]
    pub stretch: f32,

    /// Black point, in sky-noise sigmas above the sky (a positive value hides the noise).
    #[arg(long, default_value_t = 0.0, value_name = "SIGMA", allow_negative_numbers = true)]
    pub minimum: f32,

    /// Write the PNG to FILE (whole or not at all); `-` for stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,

    /// Print nothing on stderr but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A band of the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Band {
    G,
    R,
    I,
    Z,
    Y,
}

impl Band {
    /// Index in the pack's band order (g, r, i, z, y).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The default --top when nothing is selected.
const DEFAULT_TOP: usize = 36;
/// More tiles than this make a PNG nobody can look at; it is most likely a mistake (--top without a limit).
const MAX_TILES: usize = 10_000;

/// What the arguments select, in the order of precedence: --ids, --ids-file, --sample, --top (the default).
fn choice<'a>(args: &'a Args, scores: Option<&'a lensfind_eval::scores::Scores>) -> Choice<'a> {
    if let Some(ids) = &args.ids {
        Choice::Ids(ids)
    } else if let Some(file) = &args.ids_file {
        Choice::IdsFile(file)
    } else if let Some(n) = args.sample {
        Choice::Sample { n, label: args.label, seed: args.seed }
    } else {
        let file = args.scores.as_deref().unwrap_or(Path::new("-"));
        Choice::Top { n: args.top.unwrap_or(DEFAULT_TOP), scores, file }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.output == Path::new("-") && std::io::stdout().is_terminal() {
        bail!("not writing a PNG to a terminal: redirect stdout or give -o FILE");
    }
    if !(args.q > 0.0 && args.stretch > 0.0 && args.minimum.is_finite()) {
        bail!("--q and --stretch must be positive and --minimum finite");
    }
    let pack = Pack::open(&args.pack)?;
    let scores = args.scores.as_deref().map(load_scores).transpose()?;
    let selection = select(&pack, choice(&args, scores.as_ref()))?;
    let rows = selection.rows;
    if let (Some(n), false) = (args.sample, args.quiet) {
        if rows.len() < n {
            let (pack, class) = (args.pack.display(), class_name(args.label));
            eprintln!("lens-view: {pack} holds only {}{class}; showing them all", rows.len());
        }
    }
    if rows.is_empty() {
        bail!("nothing to show: the selection is empty");
    }
    if rows.len() > MAX_TILES {
        bail!("{} tiles is more than {MAX_TILES}; choose fewer (--top, --sample)", rows.len());
    }
    let view = match args.band {
        Some(b) => View::Grey(b.index()),
        None => View::Colour([Band::I.index(), Band::R.index(), Band::G.index()]),
    };
    let stretch = Stretch { q: args.q, stretch: args.stretch, minimum: args.minimum };
    let opts = SheetOptions { view, stretch, cols: args.cols as usize, scale: args.scale as usize };
    let (grid, canvas) = contact_sheet(&pack, &rows, scores.as_ref(), &opts)?;
    canvas.write_png(&args.output)?;
    if !args.quiet {
        let shown = match view {
            View::Grey(b) => format!("band {}", pack.manifest.bands.get(b).map_or("?", String::as_str)),
            View::Colour(_) => "i,r,g".to_string(),
        };
        eprintln!(
            "lens-view: {} objects ({}), {shown}, {}x{} tiles, {}x{} px -> {}",
            rows.len(),
            selection.what,
            grid.cols,
            grid.rows,
            canvas.width,
            canvas.height,
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// lensfind-view's errors that a given option answers, worded with the options' names (for
/// lensfind_core::cli::main_worded).
pub fn word_with_flags(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    match e.downcast_ref::<SelectError>()? {
        SelectError::NoIdsGiven => Some("--ids names no id".into()),
        SelectError::NoScoresForTop => {
            Some("nothing to show: give --scores (for the top N by score), --ids, --ids-file or --sample".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_indices_follow_the_pack() {
        assert_eq!([Band::G, Band::R, Band::I, Band::Z, Band::Y].map(Band::index), [0, 1, 2, 3, 4]);
    }
}

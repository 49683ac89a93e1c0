//! lens-view's command line.

pub mod render;

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser, ValueEnum};
use lensfind::pack::Pack;
use lensfind::rng::Rng;
use lensfind::scores::{read_scores, read_scores_from, Scores};

use render::{Canvas, Grid, Stretch, View};

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

fn load_scores(path: &Path) -> Result<Scores> {
    let columns = ["pred", "logit"];
    let scores = if path == Path::new("-") {
        read_scores_from(std::io::stdin().lock(), Path::new("<stdin>"), &columns)?
    } else {
        read_scores(path, &columns)?
    };
    if scores.ids.is_empty() {
        bail!("{}: no scores (only a header, or empty)", path.display());
    }
    Ok(scores)
}

/// Ids from a file: the `id` column of a CSV whose header has one, else the first field of every non-empty line.
fn read_ids(path: &Path) -> Result<Vec<String>> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("reading ids from stdin")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty()).peekable();
    let header: Vec<&str> = lines.peek().map(|l| l.split(',').map(str::trim).collect()).unwrap_or_default();
    let ids: Vec<String> = match header.iter().position(|h| *h == "id") {
        Some(col) => {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let mut ids = Vec::new();
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("{}, line {}: malformed row", path.display(), i + 2))?;
                ids.push(rec.get(col).unwrap_or("").to_string());
            }
            ids
        }
        None => lines.map(|l| l.split(',').next().unwrap_or("").trim().to_string()).collect(),
    };
    if ids.is_empty() {
        bail!("{}: no ids", path.display());
    }
    Ok(ids)
}

/// Rows of `ids` in the pack, failing with the ids it does not hold.
fn rows_of(ids: &[String], row_of: &HashMap<&str, usize>, what: &str, pack: &Path) -> Result<Vec<usize>> {
    let missing: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !row_of.contains_key(id)).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().copied().take(5).collect();
        bail!(
            "{} id(s) of {what} are not in {}: {}{}",
            missing.len(),
            pack.display(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(ids.iter().map(|id| row_of[id.as_str()]).collect())
}

/// `n` distinct items of `pool` drawn with the seed (a partial Fisher-Yates shuffle), returned sorted.
fn sample(mut pool: Vec<usize>, n: usize, seed: u64) -> Vec<usize> {
    let n = n.min(pool.len());
    let mut rng = Rng::new(seed, 0);
    for i in 0..n {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool.sort_unstable();
    pool
}

/// The pack rows to show, in order, and a description of the choice for the summary line.
fn select(args: &Args, pack: &Pack, scores: Option<&Scores>) -> Result<(Vec<usize>, String)> {
    let row_of: HashMap<&str, usize> = pack.meta.iter().map(|m| (m.id.as_str(), m.row)).collect();
    if let Some(ids) = &args.ids {
        let ids: Vec<String> = ids.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if ids.is_empty() {
            bail!("--ids names no id");
        }
        return Ok((rows_of(&ids, &row_of, "--ids", &args.pack)?, "the ids given".into()));
    }
    if let Some(file) = &args.ids_file {
        let ids = read_ids(file)?;
        let what = format!("the ids of {}", file.display());
        return Ok((rows_of(&ids, &row_of, &what, &args.pack)?, what));
    }
    if let Some(n) = args.sample {
        let pool: Vec<usize> =
            pack.meta.iter().filter(|m| args.label.is_none() || m.label == args.label).map(|m| m.row).collect();
        let class = match args.label {
            Some(1) => " lenses",
            Some(_) => " non-lenses",
            None => " objects",
        };
        if pool.is_empty() {
            bail!("{} holds no{class} to sample", args.pack.display());
        }
        if pool.len() < n && !args.quiet {
            eprintln!("lens-view: {} holds only {}{class}; showing them all", args.pack.display(), pool.len());
        }
        let rows = sample(pool, n, args.seed);
        return Ok((rows, format!("a sample of{class} (seed {})", args.seed)));
    }
    let n = args.top.unwrap_or(DEFAULT_TOP);
    let Some(scores) = scores else {
        bail!("nothing to show: give --scores (for the top N by score), --ids, --ids-file or --sample");
    };
    let mut order: Vec<usize> = (0..scores.ids.len()).collect();
    order.sort_by(|&a, &b| {
        scores.values[b].total_cmp(&scores.values[a]).then_with(|| scores.ids[a].cmp(&scores.ids[b]))
    });
    let top: Vec<String> = order.into_iter().take(n).map(|k| scores.ids[k].clone()).collect();
    let file = args.scores.as_deref().unwrap_or(Path::new("-"));
    let what = format!("the top {} by {} of {}", top.len(), scores.column, file.display());
    Ok((rows_of(&top, &row_of, &format!("the top {n} of {}", file.display()), &args.pack)?, what))
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
    let (rows, what) = select(&args, &pack, scores.as_ref())?;
    if rows.is_empty() {
        bail!("nothing to show: the selection is empty");
    }
    if rows.len() > MAX_TILES {
        bail!("{} tiles is more than {MAX_TILES}; choose fewer (--top, --sample)", rows.len());
    }
    let (h, w) = (pack.manifest.height, pack.manifest.width);
    let view = match args.band {
        Some(b) => View::Grey(b.index()),
        None => View::Colour([Band::I.index(), Band::R.index(), Band::G.index()]),
    };
    let stretch = Stretch { q: args.q, stretch: args.stretch, minimum: args.minimum };
    let score_of: HashMap<&str, f64> = scores
        .as_ref()
        .map(|s| s.ids.iter().map(String::as_str).zip(s.values.iter().copied()).collect())
        .unwrap_or_default();
    let column = scores.as_ref().map_or("score", |s| s.column.as_str());

    let scale = args.scale as usize;
    let grid = Grid::new(rows.len(), args.cols as usize, h, w, scale);
    let (width, height) = grid.size();
    let mut canvas = Canvas::new(width, height);
    let mut row = vec![0f32; pack.row_len()];
    for (k, &r) in rows.iter().enumerate() {
        pack.row_f32(r, &mut row);
        let meta = &pack.meta[r];
        let (x, y) = grid.tile_origin(k);
        canvas.blit(&render::tile_rgb(&row, h, w, view, &stretch), w, h, scale, x, y);
        let mut second = match score_of.get(meta.id.as_str()) {
            Some(v) => format!("{column} {v:.4}"),
            None => "no score".to_string(),
        };
        match meta.label {
            Some(1) => second.push_str(" [L]"),
            Some(_) => second.push_str(" [N]"),
            None => {}
        }
        let text = render::label([&meta.id, &second], grid.tile_w, grid.label_h, grid.font_px)?;
        canvas.blit(&text, grid.tile_w, grid.label_h, 1, x, y + grid.tile_h);
    }
    lensfind::output::write_output(Some(&args.output), |out| {
        let mut enc = png::Encoder::new(out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&canvas.pixels)?;
        Ok(())
    })?;
    if !args.quiet {
        let shown = match view {
            View::Grey(b) => format!("band {}", pack.manifest.bands.get(b).map_or("?", String::as_str)),
            View::Colour(_) => "i,r,g".to_string(),
        };
        eprintln!(
            "lens-view: {} objects ({what}), {shown}, {}x{} tiles, {width}x{height} px -> {}",
            rows.len(),
            grid.cols,
            grid.rows,
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_seeded_distinct_and_sorted() {
        let pool: Vec<usize> = (0..100).collect();
        let a = sample(pool.clone(), 10, 3);
        assert_eq!(a, sample(pool.clone(), 10, 3));
        assert_ne!(a, sample(pool.clone(), 10, 4));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(pool, 1000, 0).len(), 100);
    }

    #[test]
    fn ids_from_csv_or_lines() {
        let t = tempfile_path("id,pred\nb,0.5\na,0.9\n");
        assert_eq!(read_ids(&t).unwrap(), ["b", "a"]);
        let t = tempfile_path("x1\n\nx2,whatever\n");
        assert_eq!(read_ids(&t).unwrap(), ["x1", "x2"]);
        let t = tempfile_path("\n");
        assert!(format!("{:#}", read_ids(&t).unwrap_err()).contains("no ids"));
    }

    fn tempfile_path(text: &str) -> tempfile::TempPath {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f.into_temp_path()
    }

    #[test]
    fn band_indices_follow_the_pack() {
        assert_eq!([Band::G, Band::R, Band::I, Band::Z, Band::Y].map(Band::index), [0, 1, 2, 3, 4]);
    }
}

//! The TrueType font that the PNG-writing tools (lens-eval --plot, lens-view) label with: DejaVu Sans, which the
//! set-up installs (fonts-dejavu-core), or the font named by `LENSFIND_FONT`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Fonts tried after `LENSFIND_FONT`, in order.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// The bytes of the first font found; `what` says what needs it, for the error.
pub fn truetype_font(what: &str) -> Result<(PathBuf, Vec<u8>)> {
    let candidates: Vec<PathBuf> = std::env::var_os("LENSFIND_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONTS.iter().map(PathBuf::from))
        .collect();
    let Some(path) = candidates.into_iter().find(|p| p.is_file()) else {
        bail!("{what} needs a TrueType font for its labels: install fonts-dejavu-core or set LENSFIND_FONT");
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path, bytes))
}

//! The TrueType font that the PNG-writing tools (lens-eval --plot, lens-view) label with: DejaVu Sans, which the
//! set-up installs (fonts-dejavu-core), or the font named by `LENSFIND_FONT`; registered with plotters as
//! "sans-serif".

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::style::FontStyle;

use super::RenderError;

/// Fonts tried after `LENSFIND_FONT`, in order.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// The path and bytes of the first font found; `what` says what needs it, for the error.
pub(crate) fn truetype_font(what: &str) -> Result<(PathBuf, Vec<u8>), RenderError> {
    let candidates: Vec<PathBuf> = std::env::var_os("LENSFIND_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONTS.iter().map(PathBuf::from))
        .collect();
    let Some(path) = candidates.into_iter().find(|p| p.is_file()) else {
        return Err(RenderError::NoFont { what: what.to_string() });
    };
    let bytes = std::fs::read(&path).map_err(|source| RenderError::ReadFont { path: path.clone(), source })?;
    Ok((path, bytes))
}

/// Set once a font is registered: plotters keeps it for the life of the process.
static REGISTERED: OnceLock<()> = OnceLock::new();

/// Registers the font as plotters' "sans-serif" (once per process); `what` says what needs it, for the error.
pub(crate) fn register(what: &str) -> Result<(), RenderError> {
    if REGISTERED.get().is_some() {
        return Ok(());
    }
    let (path, bytes) = truetype_font(what)?;
    // plotters wants the bytes for the rest of the process; this happens once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| RenderError::BadFont { path })?;
    let _ = REGISTERED.set(());
    Ok(())
}

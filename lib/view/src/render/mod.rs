//! Pictures: lens-view's contact sheets (Lupton asinh composites of pack rows, in a labelled grid) and lens-eval's
//! ROC plot, drawn with plotters into RGB buffers and written as PNG.
//!
//! - `font`: the TrueType font of the labels;
//! - `lupton`: one object's tile, sky-subtracted and asinh-stretched;
//! - `sheet`: the grid of tiles and labels;
//! - `roc`: the ROC curves with a log false-positive-rate axis, and the reliability diagram beside them.

mod font;
mod lupton;
mod roc;
mod sheet;

use std::io;
use std::path::{Path, PathBuf};

pub use lupton::{Stretch, View};
pub use roc::roc_plot;
pub use sheet::{contact_sheet, Grid, SheetOptions};

use lensfind_core::output::{write_whole, OutputError};

/// Why a picture could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{what} needs a TrueType font for its labels: install fonts-dejavu-core or set LENSFIND_FONT")]
    NoFont { what: String },
    #[error("reading {}", path.display())]
    ReadFont { path: PathBuf, source: io::Error },
    #[error("{} is not a usable TrueType font", path.display())]
    BadFont { path: PathBuf },
    /// plotters failed; its error is generic over the backend, so only its text is kept.
    #[error("drawing {what}: {message}")]
    Draw { what: &'static str, message: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// An RGB image being assembled, 3 bytes a pixel, row-major.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `colour`.
    pub fn new(width: usize, height: usize, colour: [u8; 3]) -> Canvas {
        let pixels = colour.iter().copied().cycle().take(width * height * 3).collect();
        Canvas { width, height, pixels }
    }

    /// Copies an RGB image of `w` x `h` pixels to (x0, y0), each pixel as a `scale` x `scale` block.
    pub(crate) fn blit(&mut self, src: &[u8], w: usize, h: usize, scale: usize, x0: usize, y0: usize) {
        for y in 0..h * scale {
            for x in 0..w * scale {
                let s = ((y / scale) * w + x / scale) * 3;
                let d = ((y0 + y) * self.width + x0 + x) * 3;
                self.pixels[d..d + 3].copy_from_slice(&src[s..s + 3]);
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG to `path` (whole or not at all; `-` is stdout).
    pub fn write_png(&self, path: &Path) -> Result<(), OutputError> {
        write_whole(Some(path), |out| {
            let mut enc = png::Encoder::new(out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&self.pixels)?;
            Ok(())
        })
    }
}

/// A plotters error as [`RenderError::Draw`].
fn draw_error<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> RenderError + Copy {
    move |e| RenderError::Draw { what, message: format!("{e:?}") }
}

//! A contact sheet: tiles in a grid, each with a two-line label (id; score and class) under it.

use std::collections::HashMap;

use plotters::prelude::*;

use super::lupton::{tile_rgb, Stretch, View};
use super::{draw_error, font, Canvas, RenderError};
use lensfind_data::pack::Pack;
use lensfind_eval::scores::Scores;

/// Background of the sheet and of the labels.
pub(crate) const BACKGROUND: [u8; 3] = [0, 0, 0];

/// Where the tiles and labels of a sheet lie: `cols` tiles per row, each `tile_w` x `tile_h` pixels with a label
/// of `label_h` pixels under it, `gap` pixels between cells and around the sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub count: usize,
    pub cols: usize,
    pub rows: usize,
    pub tile_w: usize,
    pub tile_h: usize,
    pub label_h: usize,
    pub font_px: usize,
    pub gap: usize,
}

impl Grid {
    /// The grid for `count` images of `h` x `w` pixels, each pixel drawn `scale` x `scale`; at most `cols` columns
    /// (fewer when there are fewer images).
    pub fn new(count: usize, cols: usize, h: usize, w: usize, scale: usize) -> Grid {
        let cols = cols.clamp(1, count.max(1));
        let (tile_w, tile_h) = (w * scale, h * scale);
        // Two lines of text (id; score and label), readable at scale 4 (a 164-pixel tile) and not too big above.
        let font_px = (tile_w / 11).clamp(10, 16);
        Grid { count, cols, rows: count.div_ceil(cols), tile_w, tile_h, label_h: 2 * font_px + 6, font_px, gap: 4 }
    }

    /// Width and height of the sheet in pixels.
    pub fn size(&self) -> (usize, usize) {
        (
            self.cols * self.tile_w + (self.cols + 1) * self.gap,
            self.rows * (self.tile_h + self.label_h) + (self.rows + 1) * self.gap,
        )
    }

    /// Top-left pixel of tile `k` (row-major: left to right, then down); its label starts `tile_h` below.
    pub fn tile_origin(&self, k: usize) -> (usize, usize) {
        let (row, col) = (k / self.cols, k % self.cols);
        (self.gap + col * (self.tile_w + self.gap), self.gap + row * (self.tile_h + self.label_h + self.gap))
    }
}

/// Two lines of text, white then light grey, on the background, as RGB bytes of `w` x `h` pixels; what does not
/// fit is cut off at the edges.
pub(crate) fn label(lines: [&str; 2], w: usize, h: usize, font_px: usize) -> Result<Vec<u8>, RenderError> {
    font::register("lens-view")?;
    let mut buf: Vec<u8> = BACKGROUND.iter().copied().cycle().take(w * h * 3).collect();
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let draw = draw_error("a label");
        let colours = [RGBColor(255, 255, 255), RGBColor(200, 200, 200)];
        for (k, (text, colour)) in lines.iter().zip(colours).enumerate() {
            let style = ("sans-serif", font_px as f64).into_font().color(&colour);
            area.draw(&Text::new(text.to_string(), (2, (2 + k * (font_px + 2)) as i32), style)).map_err(draw)?;
        }
        area.present().map_err(draw)?;
    }
    Ok(buf)
}

/// How to draw a sheet.
#[derive(Debug, Clone, Copy)]
pub struct SheetOptions {
    pub view: View,
    pub stretch: Stretch,
    /// Tiles per row (fewer when there are fewer tiles).
    pub cols: usize,
    /// Each image pixel is drawn as `scale` x `scale` screen pixels.
    pub scale: usize,
}

/// Draws the pack rows `rows`, in order, as a contact sheet: each tile labelled with its id, then its score in
/// `scores` (column name and value, or "no score") and its class in the pack (`[L]` lens, `[N]` non-lens) when known.
pub fn contact_sheet(
    pack: &Pack,
    rows: &[usize],
    scores: Option<&Scores>,
    opts: &SheetOptions,
) -> Result<(Grid, Canvas), RenderError> {
    let (h, w) = (pack.manifest.height, pack.manifest.width);
    let score_of: HashMap<&str, f64> =
        scores.map(|s| s.ids.iter().map(String::as_str).zip(s.values.iter().copied()).collect()).unwrap_or_default();
    let column = scores.map_or("score", |s| s.column.name());
    let grid = Grid::new(rows.len(), opts.cols, h, w, opts.scale);
    let (width, height) = grid.size();
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    let mut row = vec![0f32; pack.row_len()];
    for (k, &r) in rows.iter().enumerate() {
        pack.row_f32(r, &mut row);
        let meta = &pack.meta[r];
        let (x, y) = grid.tile_origin(k);
        canvas.blit(&tile_rgb(&row, h, w, opts.view, &opts.stretch), w, h, opts.scale, x, y);
        let mut second = match score_of.get(meta.id.as_str()) {
            Some(v) => format!("{column} {v:.4}"),
            None => "no score".to_string(),
        };
        match meta.label {
            Some(1) => second.push_str(" [L]"),
            Some(_) => second.push_str(" [N]"),
            None => {}
        }
        let text = label([&meta.id, &second], grid.tile_w, grid.label_h, grid.font_px)?;
        canvas.blit(&text, grid.tile_w, grid.label_h, 1, x, y + grid.tile_h);
    }
    Ok((grid, canvas))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_geometry() {
        let g = Grid::new(7, 3, 41, 41, 4);
        assert_eq!((g.cols, g.rows), (3, 3));
        let (w, h) = g.size();
        assert_eq!(w, 3 * 164 + 4 * 4);
        assert_eq!(h, 3 * (164 + g.label_h) + 4 * 4);
        assert_eq!(g.tile_origin(4), (4 + 168, 4 + 164 + g.label_h + 4));
        assert_eq!(Grid::new(2, 6, 41, 41, 1).cols, 2);
    }
}

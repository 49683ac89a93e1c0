//! Pixels of a contact sheet: the asinh colour composite of Lupton et al. (2004) on sky-subtracted tiles, the
//! grid, and the labels.

use std::sync::OnceLock;

use anyhow::Result;
use plotters::prelude::*;

/// Width of the outer frame of a tile whose pixels estimate the sky level and noise.
const FRAME: usize = 4;
/// Background of the sheet and of the labels.
pub const BACKGROUND: [u8; 3] = [0, 0, 0];

/// What one tile shows: a colour composite of three bands (pack band indices for R, G, B) or one band in grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Colour([usize; 3]),
    Grey(usize),
}

impl View {
    fn bands(&self) -> Vec<usize> {
        match *self {
            View::Colour(b) => b.to_vec(),
            View::Grey(b) => vec![b],
        }
    }
}

/// Lupton et al. (2004)'s mapping, as astropy's `make_lupton_rgb(minimum, stretch, Q)`: with I the mean of the
/// bands after subtracting `minimum`, each band is multiplied by asinh(Q I / stretch) / (Q I), and a pixel whose
/// brightest band exceeds 1 is scaled down as a whole, so colours stay true where the centre saturates.
/// All three are in units of the tile's sky noise (see [`tile_rgb`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub q: f32,
    pub stretch: f32,
    pub minimum: f32,
}

fn median(v: &mut [f32]) -> f32 {
    v.sort_unstable_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Sky level (median) and noise (1.4826 x median absolute deviation, the std for Gaussian noise) of a band's outer
/// frame: a cutout is centred on its object, so the frame is mostly sky.
pub fn sky(band: &[f32], h: usize, w: usize) -> (f32, f32) {
    let f = FRAME.min(h / 4).min(w / 4).max(1);
    let mut px: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .filter(|&(y, x)| y < f || y >= h - f || x < f || x >= w - f)
        .map(|(y, x)| band[y * w + x])
        .collect();
    let level = median(&mut px);
    let mut dev: Vec<f32> = px.iter().map(|v| (v - level).abs()).collect();
    (level, 1.4826 * median(&mut dev))
}

/// One object's tile as RGB bytes (h x w x 3) from its pack row ([5, h, w]).
///
/// Packs are standardised per object (a mean and a std over the cube), which leaves the sky at some unknown
/// offset and the unit arbitrary. Each band's sky level (the median of the tile's outer 4-pixel frame) is
/// subtracted, so empty sky maps to black, and the values are divided by the sky noise (1.4826 x MAD of that
/// frame, averaged over the bands shown; one unit for all of them so that colours are kept). `stretch` and
/// `minimum` are therefore in noise sigmas, the same for every tile whatever its brightness.
pub fn tile_rgb(row: &[f32], h: usize, w: usize, view: View, s: &Stretch) -> Vec<u8> {
    let plane = h * w;
    let bands = view.bands();
    let levels: Vec<(f32, f32)> = bands.iter().map(|&b| sky(&row[b * plane..(b + 1) * plane], h, w)).collect();
    let mut unit = levels.iter().map(|l| l.1).sum::<f32>() / levels.len() as f32;
    if !(unit.is_finite() && unit > 0.0) {
        // A noiseless frame (synthetic or blank data): fall back to the spread of the whole tile.
        let mean = row.iter().sum::<f32>() / row.len() as f32;
        unit = (row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / row.len() as f32).sqrt();
        if !(unit.is_finite() && unit > 0.0) {
            unit = 1.0;
        }
    }
    let value = |k: usize, p: usize| (row[bands[k] * plane + p] - levels[k].0) / unit - s.minimum;
    let mut out = vec![0u8; plane * 3];
    for p in 0..plane {
        let rgb = match view {
            View::Grey(_) => {
                let v = value(0, p).max(0.0);
                let g = ((s.q * v / s.stretch).asinh() / s.q).min(1.0);
                [g; 3]
            }
            View::Colour(_) => {
                let c = [value(0, p), value(1, p), value(2, p)];
                let i = (c[0] + c[1] + c[2]) / 3.0;
                if i <= 0.0 {
                    [0.0; 3]
                } else {
                    let fac = (s.q * i / s.stretch).asinh() / (s.q * i);
                    let c = c.map(|v| (v * fac).max(0.0));
                    let top = c[0].max(c[1]).max(c[2]);
                    if top > 1.0 {
                        c.map(|v| v / top)
                    } else {
                        c
                    }
                }
            }
        };
        for k in 0..3 {
            out[p * 3 + k] = (rgb[k] * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

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

/// An RGB image being assembled.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        let pixels = BACKGROUND.iter().copied().cycle().take(width * height * 3).collect();
        Canvas { width, height, pixels }
    }

    /// Copies an RGB image of `w` x `h` pixels to (x0, y0), each pixel as a `scale` x `scale` block.
    pub fn blit(&mut self, src: &[u8], w: usize, h: usize, scale: usize, x0: usize, y0: usize) {
        for y in 0..h * scale {
            for x in 0..w * scale {
                let s = ((y / scale) * w + x / scale) * 3;
                let d = ((y0 + y) * self.width + x0 + x) * 3;
                self.pixels[d..d + 3].copy_from_slice(&src[s..s + 3]);
            }
        }
    }
}

static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn register_font() -> Result<()> {
    FONT.get_or_init(|| {
        let (path, bytes) = lensfind::font::truetype_font("lens-view").map_err(|e| format!("{e:#}"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Two lines of text, white then light grey, on the background, as RGB bytes of `w` x `h` pixels; what does not
/// fit is cut off at the edges.
pub fn label(lines: [&str; 2], w: usize, h: usize, font_px: usize) -> Result<Vec<u8>> {
    register_font()?;
    let mut buf: Vec<u8> = BACKGROUND.iter().copied().cycle().take(w * h * 3).collect();
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let draw = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing a label: {e:?}");
        let colours = [RGBColor(255, 255, 255), RGBColor(200, 200, 200)];
        for (k, (text, colour)) in lines.iter().zip(colours).enumerate() {
            let style = ("sans-serif", font_px as f64).into_font().color(&colour);
            area.draw(&Text::new(text.to_string(), (2, (2 + k * (font_px + 2)) as i32), style)).map_err(draw)?;
        }
        area.present().map_err(draw)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sky_of_a_flat_frame_with_one_outlier() {
        let (h, w) = (12, 12);
        let mut band = vec![2.0f32; h * w];
        band[0] = 100.0;
        band[6 * w + 6] = 50.0; // the centre is not in the frame
        assert_eq!(sky(&band, h, w), (2.0, 0.0));
    }

    #[test]
    fn asinh_mapping_is_astropys() {
        // One pixel of r=g=b=x on a zero frame; the frame noise is 0, so the unit is the tile's std.
        let (h, w) = (8, 8);
        let mut row = vec![0f32; 5 * h * w];
        for b in 0..3 {
            row[b * h * w + 4 * w + 4] = 8.0;
        }
        let unit = (8.0f32 * 8.0 * 3.0 / (5.0 * 64.0) - (8.0 * 3.0 / 320.0f32).powi(2)).sqrt();
        let s = Stretch { q: 8.0, stretch: 50.0, minimum: 0.0 };
        let px = tile_rgb(&row, h, w, View::Colour([2, 1, 0]), &s);
        let i = 8.0 / unit;
        let want = (i * (8.0 * i / 50.0).asinh() / (8.0 * i)).min(1.0);
        assert_eq!(px[(4 * w + 4) * 3], (want * 255.0).round() as u8);
        assert_eq!(&px[..3], &[0, 0, 0], "sky is black");
    }

    #[test]
    fn saturated_pixels_keep_their_colour() {
        let (h, w) = (8, 8);
        let mut row = vec![0f32; 5 * h * w];
        let p = 4 * w + 4;
        row[2 * h * w + p] = 1000.0; // i -> R
        row[h * w + p] = 500.0; // r -> G
        let s = Stretch { q: 8.0, stretch: 0.5, minimum: 0.0 };
        let px = tile_rgb(&row, h, w, View::Colour([2, 1, 0]), &s);
        assert_eq!(&px[p * 3..p * 3 + 3], &[255, 128, 0]);
    }

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

//! One object's tile: the asinh colour composite of Lupton et al. (2004), as astropy's make_lupton_rgb, on bands
//! whose sky level is subtracted and whose values are in units of the sky noise.

/// Width of the outer frame of a tile whose pixels estimate the sky level and noise.
const FRAME: usize = 4;

/// What one tile shows: a colour composite of three bands (pack band indices for R, G, B) or one band in grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Colour([usize; 3]),
    Grey(usize),
}

impl View {
    fn bands(self) -> Vec<usize> {
        match self {
            View::Colour(b) => b.to_vec(),
            View::Grey(b) => vec![b],
        }
    }
}

/// Lupton et al. (2004)'s mapping, as astropy's `make_lupton_rgb(minimum, stretch, Q)`: with I the mean of the
/// bands after subtracting `minimum`, each band is multiplied by asinh(Q I / stretch) / (Q I), and a pixel whose
/// brightest band exceeds 1 is scaled down as a whole, so colours stay true where the centre saturates.
/// All three are in units of the tile's sky noise (see `tile_rgb`).
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
pub(crate) fn sky(band: &[f32], h: usize, w: usize) -> (f32, f32) {
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
pub(crate) fn tile_rgb(row: &[f32], h: usize, w: usize, view: View, s: &Stretch) -> Vec<u8> {
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
}

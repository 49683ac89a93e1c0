//! One object: five band files read, cleaned and standardised.

use serde::{Deserialize, Serialize};

#[cfg(feature = "fits")]
use crate::fits::read_band;
#[cfg(feature = "fits")]
use crate::index::IndexRow;
#[cfg(feature = "fits")]
use crate::naming::BANDS;

/// Standardisation of each object's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Standardize {
    /// One mean and one population std over the object's whole 5xHxW cube (the reference's way).
    Cube,
    /// A mean and std per band.
    Band,
    /// Per band: its median subtracted, in units of its noise (1.4826 x the median absolute deviation from the
    /// median, a sigma that the object's own light hardly moves), through asinh: the noise stays linear around
    /// +-1 and bright light is compressed logarithmically, so a faint arc keeps its contrast beside a bright
    /// deflector and each band counts by its signal-to-noise (after Lanusse et al. 2018, CMU DeepLens).
    Noise,
    /// Raw values (only NaN/Inf replaced).
    None,
}

impl Standardize {
    /// The name lens-pack's --standardize and pack.json give it.
    pub fn name(self) -> &'static str {
        match self {
            Standardize::Cube => "cube",
            Standardize::Band => "band",
            Standardize::Noise => "noise",
            Standardize::None => "none",
        }
    }
}

impl std::fmt::Display for Standardize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "fits")]
/// Standard deviation below which an image is left unscaled, as the reference does.
pub(crate) const MIN_STD: f64 = 1e-9;

#[cfg(feature = "fits")]
/// Standardises `pixels` (5 bands of `npix` values) in place.
pub(crate) fn standardize(pixels: &mut [f64], npix: usize, mode: Standardize) {
    let groups: Vec<&mut [f64]> = match mode {
        Standardize::None => return,
        Standardize::Cube => vec![pixels],
        Standardize::Band => pixels.chunks_mut(npix).collect(),
        Standardize::Noise => {
            pixels.chunks_mut(npix).for_each(in_noise_units);
            return;
        }
    };
    for g in groups {
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let var = g.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = var.sqrt();
        if std > MIN_STD {
            for v in g.iter_mut() {
                *v = (*v - mean) / std;
            }
        }
    }
}

/// The factor from a median absolute deviation to the sigma of Gaussian noise (1 / Phi^-1(3/4)).
#[cfg(feature = "fits")]
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

#[cfg(feature = "fits")]
fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// [`Standardize::Noise`] on one band: `asinh((v - median) / sigma)`, sigma from the median absolute deviation, or
/// the population std where more than half the pixels share one value (MAD 0); a flat band is only centred.
#[cfg(feature = "fits")]
fn in_noise_units(band: &mut [f64]) {
    if band.is_empty() {
        return;
    }
    let mut work = band.to_vec();
    let centre = median(&mut work);
    for (w, v) in work.iter_mut().zip(band.iter()) {
        *w = (v - centre).abs();
    }
    let mut sigma = MAD_TO_SIGMA * median(&mut work);
    if sigma <= MIN_STD {
        let n = band.len() as f64;
        let mean = band.iter().sum::<f64>() / n;
        sigma = (band.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    }
    for v in band.iter_mut() {
        *v = if sigma > MIN_STD { ((*v - centre) / sigma).asinh() } else { *v - centre };
    }
}

#[cfg(feature = "fits")]
/// A loaded object: standardised pixels and how many input values were not finite.
pub(crate) struct Loaded {
    pub(crate) pixels: Vec<f64>,
    pub(crate) nonfinite: u64,
}

#[cfg(feature = "fits")]
/// Reads the five bands of `row`, replaces NaN/Inf by 0, rejects the object when more than `max_nonfinite` of its
/// values were not finite, and standardises. The error is the reason that goes into `rejected.csv`.
pub(crate) fn load_object(
    row: &IndexRow,
    height: usize,
    width: usize,
    mode: Standardize,
    max_nonfinite: f64,
) -> Result<Loaded, String> {
    let npix = height * width;
    let mut pixels = vec![0.0f64; 5 * npix];
    for (b, path) in row.paths.iter().enumerate() {
        read_band(path, b, height, width, &mut pixels[b * npix..(b + 1) * npix])
            .map_err(|e| format!("band {}: {e} ({})", BANDS[b], path.display()))?;
    }
    let mut nonfinite = 0u64;
    for v in pixels.iter_mut() {
        // A float64 value beyond float32's range counts as Inf: the pack (float32) cannot hold it, and the
        // reference, which converts to float32 first, turns it into Inf and then 0. Kept, one such value (a
        // flipped exponent bit makes 1e308 of 0.98) overflows the variance and zeroes the whole object.
        if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
            *v = 0.0;
            nonfinite += 1;
        }
    }
    let fraction = nonfinite as f64 / pixels.len() as f64;
    if fraction > max_nonfinite {
        return Err(format!(
            "{:.1}% of the pixels are NaN or Inf (limit {:.1}%)",
            100.0 * fraction,
            100.0 * max_nonfinite
        ));
    }
    standardize(&mut pixels, npix, mode);
    Ok(Loaded { pixels, nonfinite })
}

#[cfg(all(test, feature = "fits"))]
mod tests {
    use super::*;

    #[test]
    fn noise_units_put_each_band_s_noise_at_one_and_compress_bright_light() {
        // Two bands of 1001 pixels: noise of sigma 2 (band 0) and 50 (band 1) around offsets 10 and -300, with a
        // bright source of 1000 sigma in 20 pixels. The noise is evenly spaced over [-2, 2] x sigma / 1.4826, whose
        // median absolute deviation is exactly sigma / 1.4826: its robust sigma is sigma.
        let npix = 1001;
        let mut pixels = Vec::with_capacity(2 * npix);
        for (offset, sigma) in [(10.0, 2.0), (-300.0, 50.0)] {
            for i in 0..npix {
                let noise = sigma / MAD_TO_SIGMA * (-2.0 + 4.0 * i as f64 / (npix - 1) as f64);
                let source = if i % 50 == 0 { 1000.0 * sigma } else { 0.0 };
                pixels.push(offset + noise + source);
            }
        }
        standardize(&mut pixels, npix, Standardize::Noise);
        for band in pixels.chunks(npix) {
            // Back from asinh: the noise pixels in units of the sigma found. 20 source pixels of 1001 move the
            // median and the MAD by about 2% of the noise's spread: its ends at +-2/1.4826 = +-1.349 within 5%.
            let noise: Vec<f64> = band.iter().enumerate().filter(|(i, _)| i % 50 != 0).map(|(_, v)| v.sinh()).collect();
            let (lo, hi) = noise.iter().fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            let end = 2.0 / MAD_TO_SIGMA;
            assert!((hi - end).abs() < 0.05 * end && (lo + end).abs() < 0.05 * end, "{lo} {hi}");
            // The source, 1000 sigma above, near asinh(1000) = 7.6: compressed, still far above the noise.
            assert!((band[50] - 1000f64.asinh()).abs() < 0.05, "{}", band[50]);
        }
        // More than half the pixels at one value (MAD 0): the std is the unit; a flat band is only centred.
        let mut sparse = vec![0.0; 10];
        sparse[9] = 3.0;
        let std = (0.9f64 * 0.1 * 9.0).sqrt();
        standardize(&mut sparse, 10, Standardize::Noise);
        assert!((sparse[9] - (3.0 / std).asinh()).abs() < 1e-12 && sparse[0] == 0.0, "{sparse:?}");
        let mut flat = vec![5.0; 4];
        standardize(&mut flat, 4, Standardize::Noise);
        assert_eq!(flat, [0.0; 4]);
    }

    #[test]
    fn each_mode_s_name_is_its_name_in_pack_json() {
        for mode in [Standardize::Cube, Standardize::Band, Standardize::Noise, Standardize::None] {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
        }
    }

    #[test]
    fn cube_and_band_standardisation() {
        let npix = 4;
        let raw: Vec<f64> = (0..20).map(|i| (i * i) as f64).collect();
        let mut cube = raw.clone();
        standardize(&mut cube, npix, Standardize::Cube);
        let mean: f64 = cube.iter().sum::<f64>() / 20.0;
        let var: f64 = cube.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 20.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
        let mut band = raw.clone();
        standardize(&mut band, npix, Standardize::Band);
        for g in band.chunks(npix) {
            let m: f64 = g.iter().sum::<f64>() / 4.0;
            let v: f64 = g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 4.0;
            assert!(m.abs() < 1e-12 && (v - 1.0).abs() < 1e-12);
        }
        // A flat image keeps its values: no division by ~0.
        let mut flat = vec![3.0; 20];
        standardize(&mut flat, npix, Standardize::Cube);
        assert_eq!(flat, vec![3.0; 20]);
    }
}

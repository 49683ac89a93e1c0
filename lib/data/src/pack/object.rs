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
    /// Raw values (only NaN/Inf replaced).
    None,
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

//! Worse observing conditions as a training augmentation (lens-train --degrade): an image blurred by a Gaussian
//! (broader seeing) and given more noise (a shallower field), in the pack's own scaled pixels, so that a model
//! trained on one mix of seeing and depth holds up on fields observed under other conditions (a survey's test
//! fields are not its training fields).
//!
//! Each band's noise is measured on the image itself (a robust estimate from neighbouring pixels), so the added
//! noise is a multiple of what the image already has, whatever the pack's scaling made of its units.

use lensfind_core::rng::Rng;

/// The widest extra blur, a Gaussian's sigma in pixels: at LSST's 0.2"/px and ~0.8" seeing (sigma ~1.7 px) it
/// broadens the seeing by up to ~1.3x, the spread between a survey's good and median nights.
pub(crate) const MAX_BLUR_PX: f64 = 1.5;
/// The most the noise is raised: up to this many times the image's own (a field of a quarter the exposure).
pub(crate) const MAX_NOISE_FACTOR: f64 = 2.0;

/// The conditions one image is shown under: drawn per image and epoch, applied while its batch is gathered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Degrade {
    /// Sigma of the Gaussian blur, pixels (0: none).
    pub(crate) blur_px: f64,
    /// The noise after blurring is raised to this multiple of the image's own, band by band (>= 1).
    pub(crate) noise_factor: f64,
    /// Seed of the added noise.
    pub(crate) noise_seed: u64,
}

impl Degrade {
    /// Draws the conditions of one image from `rng`: blur uniform in [0, MAX_BLUR_PX), noise factor uniform in
    /// [1, MAX_NOISE_FACTOR).
    pub(crate) fn draw(rng: &mut Rng) -> Degrade {
        let blur_px = rng.range(0.0, MAX_BLUR_PX);
        let noise_factor = rng.range(1.0, MAX_NOISE_FACTOR);
        let noise_seed = rng.below(u64::MAX);
        Degrade { blur_px, noise_factor, noise_seed }
    }

    /// Applies the conditions to one image (`img`: C bands of h x w, row-major), in place: each band blurred, then
    /// given Gaussian noise so that its noise level is `noise_factor` times what it was before the blur.
    pub(crate) fn apply_to_row(&self, img: &mut [f32], h: usize, w: usize) {
        let plane = h * w;
        assert!(plane > 0 && img.len() % plane == 0, "whole bands of {h}x{w}");
        let kernel = gaussian_kernel(self.blur_px);
        let mut scratch = vec![0f32; plane];
        for (b, band) in img.chunks_exact_mut(plane).enumerate() {
            let before = noise_sigma(band, h, w);
            if kernel.len() > 1 {
                blur(band, &mut scratch, h, w, &kernel);
            }
            let after = noise_sigma(band, h, w);
            let target = self.noise_factor * before;
            let add = (target * target - after * after).max(0.0).sqrt();
            if add > 0.0 {
                let mut rng = Rng::new(self.noise_seed, b as u64);
                for p in band.iter_mut() {
                    *p += (add * rng.normal()) as f32;
                }
            }
        }
    }
}

/// A band's noise level: the median absolute difference of horizontally neighbouring pixels over 0.6745 x sqrt(2),
/// which is the standard deviation for white Gaussian noise (the difference of two has sd sqrt(2) sigma, and the
/// median of |N(0, s)| is 0.6745 s) and barely moves for a smooth source covering part of the image.
pub(crate) fn noise_sigma(band: &[f32], h: usize, w: usize) -> f64 {
    if w < 2 {
        return 0.0;
    }
    let mut d: Vec<f32> = Vec::with_capacity(h * (w - 1));
    for row in band.chunks_exact(w) {
        d.extend(row.windows(2).map(|p| (p[1] - p[0]).abs()));
    }
    let mid = d.len() / 2;
    let (_, median, _) = d.select_nth_unstable_by(mid, f32::total_cmp);
    f64::from(*median) / (0.674_489_75 * std::f64::consts::SQRT_2)
}

/// A normalised Gaussian of `sigma` pixels out to 3 sigma; [1] (no blur) below a tenth of a pixel.
fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    if sigma < 0.1 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = k.iter().sum();
    k.iter().map(|v| (v / sum) as f32).collect()
}

/// The separable Gaussian blur of one band in place (`scratch`: a band's worth of room): the kernel along each
/// row, then along each column, the edge pixel repeated beyond the border (no darkened rim).
fn blur(band: &mut [f32], scratch: &mut [f32], h: usize, w: usize, kernel: &[f32]) {
    blur_1d(band, scratch, h, w, kernel, true);
    blur_1d(scratch, band, h, w, kernel, false);
}

/// One pass of the kernel along each row (`along_rows`) or each column.
fn blur_1d(src: &[f32], dst: &mut [f32], h: usize, w: usize, kernel: &[f32], along_rows: bool) {
    let r = (kernel.len() / 2) as i64;
    for i in 0..h {
        for j in 0..w {
            let mut acc = 0f32;
            for (t, k) in kernel.iter().enumerate() {
                let (y, x) = if along_rows {
                    (i, (j as i64 + t as i64 - r).clamp(0, w as i64 - 1) as usize)
                } else {
                    ((i as i64 + t as i64 - r).clamp(0, h as i64 - 1) as usize, j)
                };
                acc += k * src[y * w + x];
            }
            dst[i * w + j] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn white(seed: u64, n: usize, sigma: f64) -> Vec<f32> {
        let mut rng = Rng::new(seed, 0);
        (0..n).map(|_| (sigma * rng.normal()) as f32).collect()
    }

    #[test]
    fn noise_estimate_is_the_standard_deviation_of_white_noise_and_ignores_a_smooth_source() {
        // 5 bands of 41x41 (8,405 pixels): the estimate's relative standard error is ~2.5% a band, so 8% is three
        // standard errors.
        let (h, w) = (41, 41);
        let noise = white(1, h * w, 0.3);
        assert!((noise_sigma(&noise, h, w) / 0.3 - 1.0).abs() < 0.08, "{}", noise_sigma(&noise, h, w));
        // A bright smooth blob (a deflector 40x the noise, sigma 3 px) moves the estimate by less than 10%.
        let mut with_source = noise.clone();
        for i in 0..h {
            for j in 0..w {
                let r2 = ((i as f64 - 20.0).powi(2) + (j as f64 - 20.0).powi(2)) / 9.0;
                with_source[i * w + j] += (12.0 * (-r2 / 2.0).exp()) as f32;
            }
        }
        let ratio = noise_sigma(&with_source, h, w) / noise_sigma(&noise, h, w);
        assert!((ratio - 1.0).abs() < 0.1, "{ratio}");
    }

    #[test]
    fn degrading_blurs_keeps_the_flux_and_raises_the_noise_to_the_factor() {
        let (h, w) = (41, 41);
        let d = Degrade { blur_px: 1.2, noise_factor: 1.8, noise_seed: 9 };
        // A point source on an empty sky (no noise to measure, so none is added): the blur spreads it, its peak
        // drops and its total stays (a normalised kernel, the source far from the edges; float32 sums of ~100
        // terms of a flux of 10: within 1e-4).
        let mut point = vec![0f32; 5 * h * w];
        for b in 0..5 {
            point[b * h * w + 20 * w + 20] = 10.0;
        }
        d.apply_to_row(&mut point, h, w);
        for band in point.chunks_exact(h * w) {
            assert!(band[20 * w + 20] < 2.0, "the peak is spread: {}", band[20 * w + 20]);
            let total: f32 = band.iter().sum();
            assert!((total - 10.0).abs() < 1e-4, "the flux is kept: {total}");
        }
        // White noise: after the blur (which smooths it) and the noise added, each band's noise is the factor
        // times its own (the estimator's 8% as above, on the ratio of two estimates: 0.15 of 1.8).
        let orig = white(2, 5 * h * w, 0.05);
        let mut img = orig.clone();
        d.apply_to_row(&mut img, h, w);
        for b in 0..5 {
            let (o, g) = (&orig[b * h * w..(b + 1) * h * w], &img[b * h * w..(b + 1) * h * w]);
            let ratio = noise_sigma(g, h, w) / noise_sigma(o, h, w);
            assert!((ratio - 1.8).abs() < 0.15, "band {b}: noise x{ratio}");
        }
        // Deterministic: the same conditions give the same image.
        let mut again = orig.clone();
        d.apply_to_row(&mut again, h, w);
        assert_eq!(again, img);
        // No blur and factor 1 leave the image as it is (nothing to add).
        let mut same = orig.clone();
        Degrade { blur_px: 0.0, noise_factor: 1.0, noise_seed: 3 }.apply_to_row(&mut same, h, w);
        assert_eq!(same, orig);
    }

    #[test]
    fn the_blur_is_a_normalised_gaussian_that_keeps_a_flat_image_flat() {
        for sigma in [0.3, 0.7, 1.5] {
            let k = gaussian_kernel(sigma);
            assert_eq!(k.len() % 2, 1);
            let sum: f32 = k.iter().sum();
            // float32 sums of at most 11 terms near 1: rounding below 1e-6.
            assert!((sum - 1.0).abs() < 1e-6, "{sigma}: {sum}");
        }
        let (h, w) = (7, 9);
        let mut out = vec![2.5f32; h * w];
        let mut tmp = vec![0f32; h * w];
        blur(&mut out, &mut tmp, h, w, &gaussian_kernel(1.5));
        // Edges repeated: a flat image stays flat, to float32 rounding of a weighted sum of equal values.
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-5), "{out:?}");
    }
}

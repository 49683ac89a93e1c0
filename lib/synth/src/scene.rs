//! The physics of a synthetic cutout: Sersic galaxies, a singular isothermal ellipsoid (SIE) plus external shear
//! that ray-traces a background source into arcs and rings, a Gaussian PSF per band, and Gaussian sky noise.
//!
//! Angles are in arcseconds, positions relative to the cutout centre, fluxes in arbitrary counts.

use super::difficulty::Distributions;
use super::lookalike::Lookalike;
use lensfind_core::rng::Rng;

/// Instrument settings of one source of data (SLSim/DP0 = LSST-like, HSC).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instrument {
    /// Arcseconds per pixel.
    pub(crate) pixel_scale: f64,
    /// Range of PSF FWHM (arcsec) per band g,r,i,z,y; each object draws a seeing inside it.
    pub(crate) psf_fwhm: [(f64, f64); 5],
    /// Sky noise standard deviation per band.
    pub(crate) sky_sigma: [f64; 5],
}

/// LSST DP0-like: 0.2"/px, ~0.7-0.9" seeing, deep coadd noise.
pub(crate) const DP0: Instrument = Instrument {
    pixel_scale: 0.2,
    psf_fwhm: [(0.80, 1.00), (0.70, 0.90), (0.65, 0.85), (0.65, 0.85), (0.65, 0.90)],
    sky_sigma: [0.6, 0.5, 0.6, 0.9, 1.6],
};

/// HSC-like, degraded to the LSST grid as the challenge did: sharper PSF, noisier.
pub(crate) const HSC: Instrument = Instrument {
    pixel_scale: 0.2,
    psf_fwhm: [(0.65, 0.85), (0.60, 0.80), (0.55, 0.70), (0.60, 0.75), (0.60, 0.85)],
    sky_sigma: [1.0, 1.1, 1.3, 1.8, 2.8],
};

/// A red early-type galaxy SED (relative flux in g,r,i,z,y) and a blue star-forming one.
const RED: [f64; 5] = [0.25, 0.55, 0.80, 0.95, 1.00];
const BLUE: [f64; 5] = [1.00, 0.90, 0.75, 0.62, 0.55];

/// An elliptical Sersic profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sersic {
    pub(crate) x: f64,
    pub(crate) y: f64,
    /// Effective (half-light) radius along the intermediate axis, arcsec.
    pub(crate) r_eff: f64,
    pub(crate) n: f64,
    /// Axis ratio b/a in (0, 1].
    pub(crate) q: f64,
    /// Position angle, radians.
    pub(crate) phi: f64,
}

impl Sersic {
    /// A profile at a random position angle around the centre, at a distance drawn from `dist` (arcsec), with
    /// radius, index and axis ratio drawn uniformly from their ranges and a random orientation.
    fn draw_around(rng: &mut Rng, dist: (f64, f64), r_eff: (f64, f64), n: (f64, f64), q: (f64, f64)) -> Sersic {
        let d = rng.range(dist.0, dist.1);
        let a = rng.range(0.0, std::f64::consts::TAU);
        Sersic {
            x: d * a.cos(),
            y: d * a.sin(),
            r_eff: rng.range(r_eff.0, r_eff.1),
            n: rng.range(n.0, n.1),
            q: rng.range(q.0, q.1),
            phi: rng.range(0.0, std::f64::consts::PI),
        }
    }

    fn b_n(&self) -> f64 {
        // Ciotti & Bertin (1999) asymptotic expansion, good to 1e-4 for n > 0.36.
        let n = self.n;
        2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)
    }

    /// Surface brightness at (x, y), normalised to unit total flux.
    pub(crate) fn at(&self, x: f64, y: f64) -> f64 {
        let (s, c) = self.phi.sin_cos();
        let dx = x - self.x;
        let dy = y - self.y;
        let xp = c * dx + s * dy;
        let yp = -s * dx + c * dy;
        let r = (self.q * xp * xp + yp * yp / self.q).sqrt();
        let b = self.b_n();
        (-b * ((r / self.r_eff).powf(1.0 / self.n) - 1.0)).exp() / self.total()
    }

    /// Integral of the un-normalised profile over the plane: 2 pi n Re^2 e^b b^-2n Gamma(2n) (q=b/a drops out
    /// because r_eff is measured on the intermediate axis).
    fn total(&self) -> f64 {
        let b = self.b_n();
        let n = self.n;
        std::f64::consts::TAU * n * self.r_eff * self.r_eff * b.exp() * b.powf(-2.0 * n) * gamma(2.0 * n)
    }
}

/// Lanczos approximation of the gamma function (g=7, 9 terms), accurate to ~1e-15 for x > 0.5.
fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    (std::f64::consts::TAU).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

/// A singular isothermal ellipsoid with external shear.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sie {
    pub(crate) x: f64,
    pub(crate) y: f64,
    /// Einstein radius, arcsec.
    pub(crate) theta_e: f64,
    /// Axis ratio of the isodensity contours, (0, 1].
    pub(crate) q: f64,
    pub(crate) phi: f64,
    /// External shear components.
    pub(crate) gamma1: f64,
    pub(crate) gamma2: f64,
}

impl Sie {
    /// Deflection angle at image-plane position (x, y) (Kormann, Schneider & Bartelmann 1994).
    pub(crate) fn deflection(&self, x: f64, y: f64) -> (f64, f64) {
        let (s, c) = self.phi.sin_cos();
        let dx = x - self.x;
        let dy = y - self.y;
        let xp = c * dx + s * dy;
        let yp = -s * dx + c * dy;
        let q = self.q.min(0.999);
        let f = (1.0 - q * q).sqrt();
        let psi = (q * q * xp * xp + yp * yp).sqrt();
        let (ax, ay) = if psi < 1e-12 {
            (0.0, 0.0)
        } else {
            let k = self.theta_e * q.sqrt() / f;
            (k * (f * xp / psi).atan(), k * (f * yp / psi).atanh())
        };
        // Back to the sky frame, then add the shear (which acts about the lens centre).
        let alpha_x = c * ax - s * ay + self.gamma1 * dx + self.gamma2 * dy;
        let alpha_y = s * ax + c * ay + self.gamma2 * dx - self.gamma1 * dy;
        (alpha_x, alpha_y)
    }
}

/// Everything drawn for one object: the scene, before pixels.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub(crate) lens_light: Sersic,
    pub(crate) lens_flux: [f64; 5],
    /// For lenses: the mass model and the lensed background source.
    pub(crate) lens_mass: Option<Sie>,
    pub(crate) source: Option<(Sersic, [f64; 5])>,
    /// An unlensed companion (a blue interloper or a satellite), on lenses and non-lenses alike.
    pub(crate) companion: Option<(Sersic, [f64; 5])>,
    /// A ring or spiral galaxy's blue light around the foreground galaxy (hard non-lenses only).
    pub(crate) lookalike: Option<(Lookalike, [f64; 5])>,
    pub(crate) psf_fwhm: [f64; 5],
}

/// Per-band fluxes: a total drawn log-uniformly in `flux`, shaped by `base` with 15% jitter per band.
fn sed(rng: &mut Rng, base: &[f64; 5], flux: (f64, f64)) -> [f64; 5] {
    let flux = rng.log_range(flux.0, flux.1);
    let mut out = [0.0; 5];
    for (o, b) in out.iter_mut().zip(base) {
        *o = flux * b * rng.range(0.85, 1.15);
    }
    out
}

impl Scene {
    /// Draws a scene. Lenses and non-lenses share every distribution of the foreground galaxy and companions, so
    /// only the lensed source, its arcs, rings and counter-images, tells them apart (and, in a hard dataset, the
    /// ring and spiral look-alikes are non-lenses). The draws come in a fixed order, and a look-alike is drawn
    /// only when `dist` allows one, so that an easy dataset's random stream, and so its bytes, never change.
    pub(crate) fn draw(rng: &mut Rng, lens: bool, inst: &Instrument, dist: &Distributions) -> Scene {
        let lens_light = Sersic {
            x: rng.range(-0.1, 0.1),
            y: rng.range(-0.1, 0.1),
            r_eff: rng.range(0.4, 1.4),
            n: rng.range(2.5, 5.0),
            q: rng.range(0.55, 0.95),
            phi: rng.range(0.0, std::f64::consts::PI),
        };
        let lens_flux = sed(rng, &RED, (150.0, 1500.0));
        let mut psf_fwhm = [0.0; 5];
        for (f, (lo, hi)) in psf_fwhm.iter_mut().zip(inst.psf_fwhm) {
            *f = rng.range(lo, hi);
        }
        let companion = rng.chance(dist.companion_chance).then(|| {
            let s = Sersic::draw_around(rng, dist.companion_distance, (0.15, 0.6), (0.6, 2.0), (0.3, 1.0));
            let colours = if rng.chance(0.7) { &BLUE } else { &RED };
            (s, sed(rng, colours, (20.0, 250.0)))
        });
        let (lens_mass, source) = if lens {
            let theta_e = rng.range(dist.theta_e.0, dist.theta_e.1);
            let mass = Sie {
                x: lens_light.x,
                y: lens_light.y,
                theta_e,
                q: (lens_light.q + rng.range(-0.1, 0.1)).clamp(0.5, 0.99),
                phi: lens_light.phi + rng.range(-0.2, 0.2),
                gamma1: rng.range(-0.06, 0.06),
                gamma2: rng.range(-0.06, 0.06),
            };
            // Source positions inside the caustics make rings and quads; further out, doubles and single arcs.
            let src = Sersic::draw_around(rng, (0.0, 0.7 * theta_e), dist.source_r_eff, (0.7, 1.5), (0.5, 1.0));
            // Unlensed source flux: log-uniform so that a good fraction of the systems are faint.
            (Some(mass), Some((src, sed(rng, &BLUE, dist.source_flux))))
        } else {
            (None, None)
        };
        let lookalike = (!lens && dist.lookalike_chance > 0.0 && rng.chance(dist.lookalike_chance)).then(|| {
            let shape = Lookalike::draw(rng, lens_light.x, lens_light.y);
            (shape, sed(rng, &BLUE, dist.lookalike_flux))
        });
        Scene { lens_light, lens_flux, lens_mass, source, companion, lookalike, psf_fwhm }
    }

    /// Renders the scene into `out` (5 bands of `size x size`, row-major, band-major) with PSF and noise.
    pub(crate) fn render(&self, rng: &mut Rng, inst: &Instrument, size: usize, out: &mut [f64]) {
        const SUB: usize = 3; // 3x3 sub-pixel samples: resolves the arcs' width at 0.2"/px
        assert_eq!(out.len(), 5 * size * size);
        let npix = size * size;
        let mut lens_map = vec![0.0; npix];
        let mut source_map = vec![0.0; npix];
        let mut comp_map = vec![0.0; npix];
        let mut lookalike_map = vec![0.0; npix];
        let half = (size as f64 - 1.0) / 2.0;
        let px_area = inst.pixel_scale * inst.pixel_scale / (SUB * SUB) as f64;
        for row in 0..size {
            for col in 0..size {
                let (mut l, mut s, mut c, mut k) = (0.0, 0.0, 0.0, 0.0);
                for sy in 0..SUB {
                    for sx in 0..SUB {
                        let off = |k: usize| (k as f64 + 0.5) / SUB as f64 - 0.5;
                        // Row 0 is the bottom of the image, as FITS displays it: y grows with the row index.
                        let x = (col as f64 - half + off(sx)) * inst.pixel_scale;
                        let y = (row as f64 - half + off(sy)) * inst.pixel_scale;
                        l += self.lens_light.at(x, y);
                        if let (Some(mass), Some((src, _))) = (&self.lens_mass, &self.source) {
                            let (ax, ay) = mass.deflection(x, y);
                            s += src.at(x - ax, y - ay);
                        }
                        if let Some((comp, _)) = &self.companion {
                            c += comp.at(x, y);
                        }
                        if let Some((shape, _)) = &self.lookalike {
                            k += shape.at(x, y);
                        }
                    }
                }
                let i = row * size + col;
                lens_map[i] = l * px_area;
                source_map[i] = s * px_area;
                comp_map[i] = c * px_area;
                lookalike_map[i] = k;
            }
        }
        // A look-alike's profile is not normalised: scale its map to unit flux inside the cutout.
        let lookalike_sum: f64 = lookalike_map.iter().sum();
        if lookalike_sum > 0.0 {
            lookalike_map.iter_mut().for_each(|v| *v /= lookalike_sum);
        }
        let mut band_img = vec![0.0; npix];
        for b in 0..5 {
            for i in 0..npix {
                band_img[i] = lens_map[i] * self.lens_flux[b]
                    + self.source.as_ref().map_or(0.0, |(_, f)| source_map[i] * f[b])
                    + self.companion.as_ref().map_or(0.0, |(_, f)| comp_map[i] * f[b]);
                if let Some((_, f)) = &self.lookalike {
                    band_img[i] += lookalike_map[i] * f[b];
                }
            }
            let sigma_px = self.psf_fwhm[b] / 2.354_820_045 / inst.pixel_scale;
            gaussian_blur(&mut band_img, size, sigma_px);
            let dst = &mut out[b * npix..(b + 1) * npix];
            for (d, v) in dst.iter_mut().zip(&band_img) {
                *d = v + inst.sky_sigma[b] * rng.normal();
            }
        }
    }
}

/// Separable Gaussian convolution with zero padding (flux that the PSF spreads off the cutout is lost, as on a
/// real cutout of a larger image).
fn gaussian_blur(img: &mut [f64], size: usize, sigma: f64) {
    let radius = (3.5 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius).map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / norm).collect();
    let mut tmp = vec![0.0; img.len()];
    convolve_1d(img, &mut tmp, size, &kernel, (0, 1));
    convolve_1d(&tmp, img, size, &kernel, (1, 0));
}

/// One pass of a separable convolution along `step` = (row step, column step).
fn convolve_1d(src: &[f64], dst: &mut [f64], size: usize, kernel: &[f64], step: (isize, isize)) {
    let n = size as isize;
    let radius = (kernel.len() / 2) as isize;
    for r in 0..n {
        for c in 0..n {
            let mut acc = 0.0;
            for (k, w) in kernel.iter().enumerate() {
                let d = k as isize - radius;
                let (rr, cc) = (r + d * step.0, c + d * step.1);
                if (0..n).contains(&rr) && (0..n).contains(&cc) {
                    acc += w * src[(rr * n + cc) as usize];
                }
            }
            dst[(r * n + c) as usize] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_matches_factorials() {
        for (x, want) in [(1.0, 1.0), (2.0, 1.0), (5.0, 24.0), (0.5, std::f64::consts::PI.sqrt())] {
            assert!((gamma(x) - want).abs() < 1e-10 * want, "gamma({x})");
        }
    }

    #[test]
    fn sersic_is_normalised() {
        let s = Sersic { x: 0.0, y: 0.0, r_eff: 0.5, n: 1.5, q: 0.7, phi: 0.3 };
        let h = 0.01;
        let mut sum = 0.0;
        for i in -800..800 {
            for j in -800..800 {
                sum += s.at(i as f64 * h, j as f64 * h) * h * h;
            }
        }
        assert!((sum - 1.0).abs() < 0.01, "{sum}");
    }

    #[test]
    fn sis_limit_has_einstein_radius() {
        // A round SIE deflects by theta_E everywhere, radially.
        let m = Sie { x: 0.0, y: 0.0, theta_e: 1.2, q: 0.999, phi: 0.0, gamma1: 0.0, gamma2: 0.0 };
        for (x, y) in [(0.5, 0.0), (0.0, 2.0), (1.0, 1.0)] {
            let (ax, ay) = m.deflection(x, y);
            let r = f64::hypot(x, y);
            assert!((f64::hypot(ax, ay) - 1.2).abs() < 2e-3);
            assert!((ax * y - ay * x).abs() / r < 2e-3, "radial");
        }
    }

    #[test]
    fn source_behind_lens_makes_a_ring() {
        // A source exactly behind a round lens is imaged into a ring at theta_E: the ring pixels are bright, the
        // centre is not.
        let inst = Instrument { sky_sigma: [0.0; 5], ..DP0 };
        let mut rng = Rng::new(1, 1);
        let mut scene = Scene::draw(&mut rng, true, &inst, &super::super::Difficulty::Easy.distributions());
        scene.lens_flux = [0.0; 5];
        scene.companion = None;
        scene.lens_mass = Some(Sie { x: 0.0, y: 0.0, theta_e: 1.6, q: 0.999, phi: 0.0, gamma1: 0.0, gamma2: 0.0 });
        let src = Sersic { x: 0.0, y: 0.0, r_eff: 0.1, n: 1.0, q: 1.0, phi: 0.0 };
        scene.source = Some((src, [100.0; 5]));
        let mut out = vec![0.0; 5 * 41 * 41];
        scene.render(&mut rng, &inst, 41, &mut out);
        let at = |r: usize, c: usize| out[41 * 41 * 2 + r * 41 + c];
        let ring = 1.6 / 0.2; // 8 pixels from the centre
        let on_ring = [at(20, 20 + ring as usize), at(20 + ring as usize, 20), at(20, 20 - ring as usize)];
        assert!(on_ring.iter().all(|&v| v > 5.0 * at(20, 20)), "{on_ring:?} vs centre {}", at(20, 20));
    }
}

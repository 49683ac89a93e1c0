//! Non-lenses that look like lenses (the hard dataset's hard negatives): a ring galaxy, whose clumpy blue ring
//! around a red nucleus resembles an Einstein ring, and a spiral whose blue arms resemble arcs. Both are centred on
//! the foreground galaxy, as the lens galaxy of a real lens is.

use lensfind_core::rng::Rng;

/// A look-alike's light profile (not normalised: the renderer scales the map to its flux).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookalike {
    /// A Gaussian ring of `radius` and `width` (arcsec) on an ellipse of axis ratio `q` at angle `phi`, its
    /// brightness modulated by 1 + `clump` cos(m theta + phase) (lopsided or knotty, like a partial arc).
    Ring { x: f64, y: f64, radius: f64, width: f64, q: f64, phi: f64, clump: f64, m: f64, phase: f64 },
    /// Two logarithmic arms at `pitch` (radians) from `r_in` outwards, `width` wide, fading over `scale`.
    Spiral { x: f64, y: f64, pitch: f64, r_in: f64, width: f64, scale: f64, q: f64, phi: f64, phase: f64 },
}

impl Lookalike {
    /// Draws a ring or a spiral (even odds) centred on (x, y).
    pub(crate) fn draw(rng: &mut Rng, x: f64, y: f64) -> Lookalike {
        let tau = std::f64::consts::TAU;
        if rng.chance(0.5) {
            Lookalike::Ring {
                x,
                y,
                radius: rng.range(0.6, 1.8),
                width: rng.range(0.08, 0.22),
                q: rng.range(0.55, 1.0),
                phi: rng.range(0.0, std::f64::consts::PI),
                clump: rng.range(0.0, 0.9),
                m: (1 + rng.below(3)) as f64,
                phase: rng.range(0.0, tau),
            }
        } else {
            Lookalike::Spiral {
                x,
                y,
                pitch: rng.range(12.0, 30.0).to_radians(),
                r_in: rng.range(0.3, 0.6),
                width: rng.range(0.1, 0.22),
                scale: rng.range(0.8, 1.6),
                q: rng.range(0.5, 1.0),
                phi: rng.range(0.0, std::f64::consts::PI),
                phase: rng.range(0.0, tau),
            }
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Lookalike::Ring { .. } => "ring",
            Lookalike::Spiral { .. } => "spiral",
        }
    }

    /// Surface brightness at (x, y), up to a constant.
    pub(crate) fn at(&self, px: f64, py: f64) -> f64 {
        // Polar coordinates in the galaxy's plane (an inclined disc: the minor axis stretched by 1/q).
        let polar = |x0: f64, y0: f64, q: f64, phi: f64| {
            let (s, c) = phi.sin_cos();
            let (dx, dy) = (px - x0, py - y0);
            let (u, v) = (c * dx + s * dy, (-s * dx + c * dy) / q);
            (u.hypot(v), v.atan2(u))
        };
        match *self {
            Lookalike::Ring { x, y, radius, width, q, phi, clump, m, phase } => {
                let (r, theta) = polar(x, y, q, phi);
                let d = (r - radius) / width;
                (-0.5 * d * d).exp() * (1.0 + clump * (m * theta + phase).cos())
            }
            Lookalike::Spiral { x, y, pitch, r_in, width, scale, q, phi, phase } => {
                let (r, theta) = polar(x, y, q, phi);
                if r < 0.5 * r_in {
                    return 0.0;
                }
                // The arm's angle at radius r; two arms half a turn apart, so the offset is taken modulo pi.
                let arm = phase + (r / r_in).ln() / pitch.tan();
                let pi = std::f64::consts::PI;
                let off = (theta - arm).rem_euclid(pi);
                let off = off.min(pi - off);
                let d = r * off / width;
                let rise = ((r - 0.5 * r_in) / (0.5 * r_in)).min(1.0);
                (-0.5 * d * d).exp() * (-r / scale).exp() * rise
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_is_bright_on_its_radius_and_dark_inside() {
        let ring = Lookalike::Ring {
            x: 0.0,
            y: 0.0,
            radius: 1.2,
            width: 0.1,
            q: 1.0,
            phi: 0.0,
            clump: 0.0,
            m: 1.0,
            phase: 0.0,
        };
        assert!((ring.at(1.2, 0.0) - 1.0).abs() < 1e-12 && (ring.at(0.0, -1.2) - 1.0).abs() < 1e-12);
        assert!(ring.at(0.0, 0.0) < 1e-12 && ring.at(2.0, 0.0) < 1e-12);
    }

    #[test]
    fn spiral_arms_wind_outwards() {
        let s = Lookalike::Spiral {
            x: 0.0,
            y: 0.0,
            pitch: 20f64.to_radians(),
            r_in: 0.4,
            width: 0.15,
            scale: 1.2,
            q: 1.0,
            phi: 0.0,
            phase: 0.0,
        };
        // On the arm at r_in (angle 0) and half a turn later (the second arm); off the arm a quarter turn away.
        assert!(s.at(0.4, 0.0) > 0.5 && s.at(-0.4, 0.0) > 0.5, "{} {}", s.at(0.4, 0.0), s.at(-0.4, 0.0));
        assert!(s.at(0.0, 0.4) < 1e-3);
        // Further out the arm has turned: at r = 1 it lies at angle ln(2.5)/tan(20 deg).
        let a = (1.0f64 / 0.4).ln() / 20f64.to_radians().tan();
        assert!(s.at(a.cos(), a.sin()) > 10.0 * s.at(1.0, 0.0).max(1e-12));
    }
}

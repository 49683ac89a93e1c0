//! How hard a synthetic dataset is: the distributions a scene is drawn from, and (hard) the seeing/noise domain of
//! each object. `easy` is the default generator (its bytes are pinned by a test); `hard` is a benchmark
//! on which training recipes differ: fainter and smaller arcs, more companions, ring and spiral galaxies among the
//! non-lenses, two seeing/noise domains, and a blind set whose domain mix differs from the training set's.

use super::scene::Instrument;

/// The difficulty of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Difficulty {
    /// Bright arcs, companions on 40% of the objects, one seeing/noise domain per source: learnt in a few epochs.
    #[default]
    Easy,
    /// Fainter and smaller arcs, companions on half the objects, ring and spiral galaxies on half the non-lenses,
    /// a good and a poor seeing/noise domain (a quarter poor in training, 70% in the blind set).
    Hard,
}

/// The ranges a scene's random parameters are drawn from (uniform unless said otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Distributions {
    pub(crate) companion_chance: f64,
    /// Distance of a companion from the centre, arcsec.
    pub(crate) companion_distance: (f64, f64),
    pub(crate) theta_e: (f64, f64),
    /// Half-light radius of the lensed source, arcsec.
    pub(crate) source_r_eff: (f64, f64),
    /// Unlensed source flux, log-uniform.
    pub(crate) source_flux: (f64, f64),
    /// Chance that a non-lens has a ring or spiral look-alike; 0 draws nothing (the easy stream is unchanged).
    pub(crate) lookalike_chance: f64,
    /// Total flux of a look-alike's blue ring or arms, log-uniform.
    pub(crate) lookalike_flux: (f64, f64),
}

impl Difficulty {
    pub(crate) fn distributions(self) -> Distributions {
        match self {
            Difficulty::Easy => Distributions {
                companion_chance: 0.4,
                companion_distance: (1.2, 3.2),
                theta_e: (0.6, 2.0),
                source_r_eff: (0.08, 0.35),
                source_flux: (8.0, 200.0),
                lookalike_chance: 0.0,
                lookalike_flux: (0.0, 0.0),
            },
            Difficulty::Hard => Distributions {
                companion_chance: 0.5,
                companion_distance: (0.9, 3.0),
                theta_e: (0.5, 1.6),
                source_r_eff: (0.05, 0.25),
                source_flux: (8.0, 120.0),
                lookalike_chance: 0.5,
                lookalike_flux: (20.0, 400.0),
            },
        }
    }

    /// The chance that an object is seen in the poor domain: a quarter of the training set, 70% of the blind set
    /// (a shifted mix, as a survey's test fields differ from its training fields). None: one domain (easy).
    pub(crate) fn poor_domain_chance(self, blind: bool) -> Option<f64> {
        match (self, blind) {
            (Difficulty::Easy, _) => None,
            (Difficulty::Hard, false) => Some(0.25),
            (Difficulty::Hard, true) => Some(0.7),
        }
    }
}

/// The seeing/noise domain of an object of a hard dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// The instrument as it is.
    Good,
    /// Seeing 1.4x broader and sky noise 1.7x higher: a shallower field under worse seeing.
    Poor,
}

impl Domain {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Domain::Good => "good",
            Domain::Poor => "poor",
        }
    }

    pub(crate) fn apply(self, inst: &Instrument) -> Instrument {
        match self {
            Domain::Good => *inst,
            Domain::Poor => Instrument {
                pixel_scale: inst.pixel_scale,
                psf_fwhm: inst.psf_fwhm.map(|(lo, hi)| (lo * 1.4, hi * 1.4)),
                sky_sigma: inst.sky_sigma.map(|s| s * 1.7),
            },
        }
    }
}

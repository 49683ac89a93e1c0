//! The challenge's file-naming conventions.
//!
//! Training files: `D<source>_<L|N>_<digits>_<band>.fits` (e.g. `D1_L_00004419_y.fits`): source 1 is SLSim/DP0,
//! 2 is HSC; `L` is a lens (label 1), `N` a non-lens (label 0). Blind test files: `object_<digits>_<band>.fits`,
//! with neither label nor source. In both, the object id is the stem without `_<band>`.

use std::fmt;

/// The five LSST bands, in the order the pack stores them.
pub const BANDS: [char; 5] = ['g', 'r', 'i', 'z', 'y'];

/// Position of a band letter in [`BANDS`].
fn band_index(band: char) -> Option<usize> {
    BANDS.iter().position(|&b| b == band)
}

/// What the name of one band file says about its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BandFile {
    /// The object id: the stem without `_<band>`.
    pub id: String,
    /// Index into [`BANDS`].
    pub band: usize,
    /// 1 = lens, 0 = non-lens; `None` for blind files.
    pub label: Option<u8>,
    /// 1 = SLSim/DP0, 2 = HSC; `None` for blind files.
    pub source: Option<u8>,
}

/// Why a file name fits neither convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameError {
    /// Does not end in `.fits`: not a candidate at all (the indexer skips such files silently).
    NotFits,
    /// Ends in `.fits` but the part before it is not `<id>_<band>` with a known band.
    NoBand,
    /// Has a band but the id is neither `D<source>_<L|N>_<digits>` nor `object_<digits>`.
    BadId,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::NotFits => "not a .fits file",
            NameError::NoBand => "name does not end in _<band>.fits with band one of g,r,i,z,y",
            NameError::BadId => "id is neither D<1|2>_<L|N>_<digits> nor object_<digits>",
        })
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a file name (no directory part).
pub(crate) fn parse_file_name(name: &str) -> Result<BandFile, NameError> {
    let stem = name.strip_suffix(".fits").ok_or(NameError::NotFits)?;
    let (id, band) = stem.rsplit_once('_').ok_or(NameError::NoBand)?;
    let mut band_chars = band.chars();
    let band = match (band_chars.next(), band_chars.next()) {
        (Some(c), None) => band_index(c).ok_or(NameError::NoBand)?,
        _ => return Err(NameError::NoBand),
    };
    let (label, source) = parse_id(id)?;
    Ok(BandFile { id: id.to_string(), band, label, source })
}

/// Label and source that an object id encodes (`None, None` for blind ids).
pub(crate) fn parse_id(id: &str) -> Result<(Option<u8>, Option<u8>), NameError> {
    if let Some(digits) = id.strip_prefix("object_") {
        return if all_digits(digits) { Ok((None, None)) } else { Err(NameError::BadId) };
    }
    let mut parts = id.splitn(3, '_');
    let (Some(src), Some(letter), Some(digits)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NameError::BadId);
    };
    let source = match src {
        "D1" => 1,
        "D2" => 2,
        _ => return Err(NameError::BadId),
    };
    let label = match letter {
        "L" => 1,
        "N" => 0,
        _ => return Err(NameError::BadId),
    };
    if !all_digits(digits) {
        return Err(NameError::BadId);
    }
    Ok((Some(label), Some(source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str) -> BandFile {
        parse_file_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn training_names() {
        let f = ok("D1_L_00004419_y.fits");
        assert_eq!(f, BandFile { id: "D1_L_00004419".into(), band: 4, label: Some(1), source: Some(1) });
        let f = ok("D2_N_7_g.fits");
        assert_eq!((f.id.as_str(), f.band, f.label, f.source), ("D2_N_7", 0, Some(0), Some(2)));
        assert_eq!(ok("D1_N_00000001_i.fits").band, 2);
        assert_eq!(ok("D1_N_00000001_z.fits").band, 3);
        assert_eq!(ok("D1_N_00000001_r.fits").band, 1);
    }

    #[test]
    fn blind_names() {
        let f = ok("object_000123_r.fits");
        assert_eq!(f, BandFile { id: "object_000123".into(), band: 1, label: None, source: None });
    }

    #[test]
    fn malformed_names() {
        use NameError::*;
        let cases = [
            ("D1_L_00004419_y.fit", NotFits),
            ("D1_L_00004419_y.fits.gz", NotFits),
            ("README.md", NotFits),
            ("D1_L_00004419.fits", NoBand),
            ("D1_L_00004419_u.fits", NoBand),
            ("D1_L_00004419_gr.fits", NoBand),
            ("D1_L_00004419_.fits", NoBand),
            ("_g.fits", BadId),
            ("g.fits", NoBand),
            (".fits", NoBand),
            ("D3_L_1_g.fits", BadId),
            ("D1_X_1_g.fits", BadId),
            ("D1_L__g.fits", BadId),
            ("D1_L_12a_g.fits", BadId),
            ("D1_L_1_2_g.fits", BadId),
            ("D1L_1_g.fits", BadId),
            ("d1_l_1_g.fits", BadId),
            ("object__g.fits", BadId),
            ("object_12x_g.fits", BadId),
            ("objects_12_g.fits", BadId),
            ("D1_L_١٢_g.fits", BadId), // non-ASCII digits are not digits here
        ];
        for (name, want) in cases {
            assert_eq!(parse_file_name(name), Err(want), "{name}");
        }
    }
}

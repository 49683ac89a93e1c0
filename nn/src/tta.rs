//! Test-time augmentation: each image is seen through several of the 8 symmetries of the square (the dihedral
//! group D4) and the logits are averaged.

use crate::d4::D4;

/// The test-time augmentation sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tta {
    None,
    /// Original, horizontal flip, vertical flip: the reference's default.
    Flips,
    /// All 8 rotations and reflections.
    D4,
}

impl std::str::FromStr for Tta {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Tta::None),
            "flips" => Ok(Tta::Flips),
            "d4" => Ok(Tta::D4),
            _ => Err(format!("{s:?}: expected none, flips or d4")),
        }
    }
}

impl Tta {
    pub fn views(self) -> Vec<D4> {
        match self {
            Tta::None => vec![D4::IDENTITY],
            // A vertical flip is a horizontal flip after a half turn.
            Tta::Flips => vec![D4::IDENTITY, D4::HFLIP, D4::VFLIP],
            Tta::D4 => D4::all(),
        }
    }

    pub fn view_names(self) -> Vec<String> {
        match self {
            Tta::Flips => vec!["orig".into(), "hflip".into(), "vflip".into()],
            _ => self.views().into_iter().map(D4::name).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_are_the_reference_flips_and_the_whole_group() {
        assert_eq!(Tta::None.views(), [D4::IDENTITY]);
        assert_eq!(Tta::Flips.views(), [D4::IDENTITY, D4::HFLIP, D4::VFLIP]);
        assert_eq!(Tta::D4.views().len(), 8);
        assert_eq!(Tta::Flips.view_names(), ["orig", "hflip", "vflip"]);
        assert_eq!(Tta::D4.view_names()[3], "rot90_flip");
    }
}

//! Test-time augmentation: each image is seen through several of the 8 symmetries of the square (the dihedral
//! group D4) and the logits are averaged.

use tch::Tensor;

/// One element of D4: rotate by `quarter_turns` x 90 degrees (counter-clockwise in array terms, torch.rot90 on
/// dims (H, W)), then flip horizontally if `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub quarter_turns: u8,
    pub flip: bool,
}

impl View {
    pub const IDENTITY: View = View { quarter_turns: 0, flip: false };

    /// Applies the view to a batch [B, C, H, W].
    pub fn apply(self, x: &Tensor) -> Tensor {
        let r = if self.quarter_turns % 4 == 0 {
            x.shallow_clone()
        } else {
            x.rot90(i64::from(self.quarter_turns), [2, 3])
        };
        if self.flip {
            r.flip([3])
        } else {
            r
        }
    }

    /// The view that applying `self` then `then` gives (the group law; used by the tests to check closure).
    pub fn then(self, then: View) -> View {
        // A view is F^f R^a (rotate, then flip). With R^b F = F R^-b:
        //   (F^g R^b)(F^f R^a) = F^(g xor f) R^(a + (f ? -b : b)).
        let a = i16::from(self.quarter_turns);
        let b = i16::from(then.quarter_turns);
        let k = (a + if self.flip { -b } else { b }).rem_euclid(4);
        View { quarter_turns: k as u8, flip: self.flip ^ then.flip }
    }

    pub fn name(self) -> String {
        let flip = if self.flip { "_flip" } else { "" };
        format!("rot{}{flip}", 90 * u16::from(self.quarter_turns))
    }
}

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
    pub fn views(self) -> Vec<View> {
        match self {
            Tta::None => vec![View::IDENTITY],
            // A vertical flip is a horizontal flip after a half turn.
            Tta::Flips => {
                vec![View::IDENTITY, View { quarter_turns: 0, flip: true }, View { quarter_turns: 2, flip: true }]
            }
            Tta::D4 => (0..4).flat_map(|k| [false, true].map(|flip| View { quarter_turns: k, flip })).collect(),
        }
    }

    pub fn view_names(self) -> Vec<String> {
        match self {
            Tta::Flips => vec!["orig".into(), "hflip".into(), "vflip".into()],
            _ => self.views().into_iter().map(View::name).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn all() -> Vec<View> {
        Tta::D4.views()
    }

    #[test]
    fn d4_is_closed_and_the_law_matches_the_tensors() {
        let x = Tensor::arange(2 * 3 * 5 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 5, 5]);
        for a in all() {
            for b in all() {
                let composed = b.apply(&a.apply(&x));
                let c = a.then(b);
                assert!(all().contains(&c));
                assert!(composed.equal(&c.apply(&x)), "{a:?} then {b:?} should be {c:?}");
            }
        }
        // The 8 views of an asymmetric image are all different.
        let images: Vec<Tensor> = all().iter().map(|v| v.apply(&x)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert!(!images[i].equal(&images[j]));
            }
        }
        let flips = Tta::Flips.views();
        assert!(flips[1].apply(&x).equal(&x.flip([3])) && flips[2].apply(&x).equal(&x.flip([2])));
    }
}

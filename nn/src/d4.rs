//! The 8 symmetries of the square (the dihedral group D4), the one type behind training's random views and
//! test-time augmentation: an image rotated by k quarter turns, then maybe flipped left to right.

use tch::Tensor;

/// One element of D4: rotate by `quarter_turns` x 90 degrees (counter-clockwise in array terms: torch.rot90 on
/// dims (H, W)), then flip horizontally (the W axis) if `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct D4 {
    pub quarter_turns: u8,
    pub flip: bool,
}

impl D4 {
    pub(crate) const IDENTITY: D4 = D4 { quarter_turns: 0, flip: false };
    /// A flip left to right (the W axis).
    pub(crate) const HFLIP: D4 = D4 { quarter_turns: 0, flip: true };
    /// A flip upside down (the H axis): a half turn, then a flip left to right.
    pub(crate) const VFLIP: D4 = D4 { quarter_turns: 2, flip: true };

    /// All 8 elements.
    pub(crate) fn all() -> Vec<D4> {
        (0..4).flat_map(|k| [false, true].map(|flip| D4 { quarter_turns: k, flip })).collect()
    }

    /// A rotation by `k` quarter turns.
    pub(crate) fn rotation(k: u8) -> D4 {
        D4 { quarter_turns: k % 4, flip: false }
    }

    /// Applies the element to a batch [B, C, H, W] (odd quarter turns need H == W).
    pub(crate) fn apply(self, x: &Tensor) -> Tensor {
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

    /// Writes the element applied to one image `src` ([C, h, w], row-major) into `dst`, exactly as
    /// [`D4::apply`] computes it: a copy with the pixels moved, no arithmetic. Odd quarter turns need h == w.
    pub(crate) fn apply_to_row(self, src: &[f32], dst: &mut [f32], h: usize, w: usize) {
        assert!(self.quarter_turns % 2 == 0 || h == w, "a quarter turn of a non-square image");
        let plane = h * w;
        for (s, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
            for i in 0..h {
                for j in 0..w {
                    // Where output (i, j) comes from: undo the flip (column jr of the rotated image), then the
                    // rotation.
                    let jr = if self.flip { w - 1 - j } else { j };
                    let (y, x) = match self.quarter_turns % 4 {
                        0 => (i, jr),
                        1 => (jr, w - 1 - i),
                        2 => (h - 1 - i, w - 1 - jr),
                        _ => (h - 1 - jr, i),
                    };
                    d[i * w + j] = s[y * w + x];
                }
            }
        }
    }

    /// The element that applying `self` then `then` gives (the group law).
    pub(crate) fn then(self, then: D4) -> D4 {
        // An element is F^f R^a (rotate, then flip). With R^b F = F R^-b:
        //   (F^g R^b)(F^f R^a) = F^(g xor f) R^(a + (f ? -b : b)).
        let a = i16::from(self.quarter_turns);
        let b = i16::from(then.quarter_turns);
        let k = (a + if self.flip { -b } else { b }).rem_euclid(4);
        D4 { quarter_turns: k as u8, flip: self.flip ^ then.flip }
    }

    /// A flip left to right if `hflip`, then upside down if `vflip`, then `k` quarter turns: how training draws its
    /// random views (three draws per image).
    pub(crate) fn from_flips_and_turns(hflip: bool, vflip: bool, k: u8) -> D4 {
        let h = if hflip { D4::HFLIP } else { D4::IDENTITY };
        let v = if vflip { D4::VFLIP } else { D4::IDENTITY };
        h.then(v).then(D4::rotation(k))
    }

    /// `rot0`, `rot90_flip`, ...: the element's name in lens-infer's per-view columns.
    pub(crate) fn name(self) -> String {
        let flip = if self.flip { "_flip" } else { "" };
        format!("rot{}{flip}", 90 * u16::from(self.quarter_turns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn d4_is_closed_and_the_law_matches_the_tensors() {
        let x = Tensor::arange(2 * 3 * 5 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 5, 5]);
        for a in D4::all() {
            for b in D4::all() {
                let composed = b.apply(&a.apply(&x));
                let c = a.then(b);
                assert!(D4::all().contains(&c));
                assert!(composed.equal(&c.apply(&x)), "{a:?} then {b:?} should be {c:?}");
            }
        }
        // The 8 images of an asymmetric one are all different.
        let images: Vec<Tensor> = D4::all().iter().map(|v| v.apply(&x)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert!(!images[i].equal(&images[j]));
            }
        }
        assert!(D4::HFLIP.apply(&x).equal(&x.flip([3])) && D4::VFLIP.apply(&x).equal(&x.flip([2])));
    }

    #[test]
    fn training_views_are_the_flips_then_the_turns_and_the_copy_equals_the_tensor_ops() {
        // Training draws (hflip, vflip, k): the image flipped left to right, upside down, then turned k times.
        let (h, w) = (5usize, 5usize);
        let x = Tensor::randn([1, 5, h as i64, w as i64], (Kind::Float, Device::Cpu));
        let src = Vec::<f32>::try_from(x.view([-1])).unwrap();
        for bits in 0..16u8 {
            let (hflip, vflip, k) = (bits & 1 == 1, bits & 2 == 2, bits >> 2);
            let mut want = x.shallow_clone();
            if hflip {
                want = want.flip([3]);
            }
            if vflip {
                want = want.flip([2]);
            }
            let want = want.rot90(i64::from(k), [2, 3]);
            let view = D4::from_flips_and_turns(hflip, vflip, k);
            assert!(view.apply(&x).equal(&want), "{bits}: {view:?}");
            let mut got = vec![0f32; src.len()];
            view.apply_to_row(&src, &mut got, h, w);
            assert_eq!(got, Vec::<f32>::try_from(want.contiguous().view([-1])).unwrap(), "{view:?}");
        }
        // Half turns and flips of a non-square image.
        let x = Tensor::randn([1, 5, 3, 4], (Kind::Float, Device::Cpu));
        let src = Vec::<f32>::try_from(x.view([-1])).unwrap();
        for view in [D4::HFLIP, D4::VFLIP, D4::rotation(2), D4 { quarter_turns: 2, flip: false }] {
            let want = Vec::<f32>::try_from(view.apply(&x).contiguous().view([-1])).unwrap();
            let mut got = vec![0f32; src.len()];
            view.apply_to_row(&src, &mut got, 3, 4);
            assert_eq!(got, want, "{view:?}");
        }
    }
}

//! Dynamic loss scaling for fp16, as torch.cuda.amp.GradScaler does it (tch has none): the loss is multiplied by
//! `scale` before backward; when any gradient is inf or NaN the step is skipped and the scale halved; after
//! `growth_interval` good steps in a row it doubles.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GradScaler {
    pub scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: usize,
    /// Good steps since the last change.
    pub growth_tracker: usize,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, growth_tracker: 0 }
    }
}

impl GradScaler {
    /// Records whether this step's gradients were finite; returns whether the optimizer step should be taken.
    pub(crate) fn update(&mut self, grads_finite: bool) -> bool {
        if !grads_finite {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
            return false;
        }
        self.growth_tracker += 1;
        if self.growth_tracker >= self.growth_interval {
            self.scale *= self.growth_factor;
            self.growth_tracker = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_on_inf_and_grows_after_good_steps() {
        let mut s = GradScaler { growth_interval: 3, ..Default::default() };
        assert!(!s.update(false));
        assert_eq!(s.scale, 32768.0);
        assert!(s.update(true) && s.update(true));
        assert_eq!(s.scale, 32768.0);
        assert!(s.update(true));
        assert_eq!(s.scale, 65536.0);
    }
}

//! An exponential moving average of the weights (lens-train --ema-half-life), kept beside the weights the
//! optimizer moves: after every optimizer step `ema += (1 - d) (w - ema)`. The average is a second copy of the
//! model, validated after every epoch beside the raw weights; the better of the two on validation is what the run
//! keeps. Averaging the last epochs' weights steadies the ranking of the highest scores, where the metrics at low
//! false-positive rates live.
//!
//! The decay comes from a half-life in epochs, so that one setting means the same on packs and batches of any size:
//! `d = 0.5^(1 / (half_life x steps_per_epoch))`. In the first steps the average would mostly hold the random
//! initial weights: the decay is capped at `(1 + t) / (10 + t)` after t updates, as TensorFlow's
//! ExponentialMovingAverage does with num_updates.

use anyhow::{bail, Result};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::models::layers::vars_to_channels_last;
use crate::models::{Model, ModelConfig};

/// The averaged model and how it follows the trained one.
pub(crate) struct Ema {
    /// The averaged weights, a model of their own (built like the trained one, in its layout).
    pub(crate) model: Model,
    /// (name, averaged, trained) weights, sorted by name: every variable of the model.
    pairs: Vec<(String, Tensor, Tensor)>,
    /// The decay per optimizer step once warmed up.
    decay: f64,
}

/// The decay per step of a half-life of `half_life` epochs of `steps_per_epoch` steps.
pub(crate) fn decay_per_step(half_life: f64, steps_per_epoch: usize) -> f64 {
    0.5f64.powf(1.0 / (half_life * steps_per_epoch.max(1) as f64))
}

/// The decay of the update after `updates` earlier ones: [`decay_per_step`]'s, capped early on.
pub(crate) fn decay_at(decay: f64, updates: usize) -> f64 {
    decay.min((1 + updates) as f64 / (10 + updates) as f64)
}

impl Ema {
    /// An average that starts at the weights of `trained` (a model built from `config` in `trained_vs`), in the
    /// same layout.
    pub(crate) fn new(
        config: &ModelConfig,
        trained_vs: &VarStore,
        channels_last: bool,
        decay: f64,
        device: Device,
    ) -> Result<Ema> {
        let vs = VarStore::new(device);
        let model = config.build(&vs.root());
        if channels_last {
            vars_to_channels_last(&vs);
        }
        let trained = trained_vs.variables();
        let mut pairs: Vec<(String, Tensor, Tensor)> = Vec::with_capacity(trained.len());
        for (name, averaged) in vs.variables() {
            let Some(w) = trained.get(&name) else { bail!("the averaged model has {name}, the trained one not") };
            tch::no_grad(|| averaged.set_requires_grad(false).copy_(w));
            pairs.push((name, averaged, w.shallow_clone()));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // `vs` may go: the model and the pairs hold its tensors.
        Ok(Ema { model, pairs, decay })
    }

    /// Moves the average toward the trained weights, the update after `updates` earlier ones; queued on the
    /// device, without waiting for it.
    pub(crate) fn update(&self, updates: usize) {
        let d = decay_at(self.decay, updates);
        let (averaged, trained): (Vec<Tensor>, Vec<Tensor>) =
            self.pairs.iter().map(|(_, a, w)| (a.shallow_clone(), w.shallow_clone())).unzip();
        tch::no_grad(|| crate::shim::foreach_lerp_(&averaged, &trained, 1.0 - d));
    }

    /// The averaged weights by name, in host memory and element order (for the checkpoint and model.safetensors).
    pub(crate) fn weights_on_host(&self) -> Vec<(String, Tensor)> {
        self.pairs.iter().map(|(n, a, _)| (n.clone(), super::writer::host_copy(a))).collect()
    }

    /// The averaged weight `name`.
    #[cfg(test)]
    fn averaged(&self, name: &str) -> Tensor {
        self.pairs.iter().find(|(n, _, _)| n == name).map(|(_, a, _)| a.shallow_clone()).expect("a weight's name")
    }

    /// Sets the averaged weights from `tensors` (name, tensor), element by element; every weight must be there.
    pub(crate) fn load(&self, tensors: &std::collections::BTreeMap<String, Tensor>, prefix: &str) -> Result<()> {
        tch::no_grad(|| {
            for (name, averaged, _) in &self.pairs {
                let key = format!("{prefix}{name}");
                let Some(src) = tensors.get(&key) else { bail!("checkpoint has no {key}: it is not from this run") };
                if src.size() != averaged.size() {
                    bail!("checkpoint {key} has shape {:?}, the model {:?}", src.size(), averaged.size());
                }
                averaged.shallow_clone().copy_(src);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn the_decay_halves_a_difference_in_the_half_life_and_starts_capped() {
        let d = decay_per_step(2.0, 50);
        assert!((d.powi(100) - 0.5).abs() < 1e-12, "100 steps, half of the distance kept");
        assert_eq!(decay_at(d, 0), 0.1, "the first update takes 90% of the trained weights");
        assert_eq!(decay_at(d, 10_000), d);
    }

    #[test]
    fn the_average_follows_the_trained_weights_as_the_formula_says_in_either_layout() {
        for channels_last in [false, true] {
            let config = ModelConfig::from_name("convnext_atto", None).unwrap();
            let vs = VarStore::new(Device::Cpu);
            tch::manual_seed(1);
            let _model = config.build(&vs.root());
            if channels_last {
                vars_to_channels_last(&vs);
            }
            let ema = Ema::new(&config, &vs, channels_last, 0.9, Device::Cpu).unwrap();
            let name = "stem.0.weight";
            let start = vs.variables()[name].copy();
            assert!(ema.averaged(name).equal(&start), "starts at the trained weights");
            assert_eq!(ema.averaged(name).stride(), start.stride(), "in their layout");
            // Two updates toward weights moved by +1: after a step of decay 0.1 (t = 0) and one of 2/11 (t = 1),
            // (1 - 0.1 * 2/11) of the way.
            let _ = tch::no_grad(|| vs.variables()[name].shallow_clone().g_add_scalar_(1.0));
            ema.update(0);
            ema.update(1);
            let want = &start + (1.0 - 0.1 * 2.0 / 11.0);
            let got = ema.averaged(name).copy();
            // float32 lerp of values of order 1: a few ulps.
            let err = (&got - &want).abs().max().double_value(&[]);
            assert!(err < 1e-6, "{err}");
            // Saved and loaded back, element by element.
            let saved: std::collections::BTreeMap<String, Tensor> =
                ema.weights_on_host().into_iter().map(|(n, t)| (format!("ema/{n}"), t)).collect();
            let other = Ema::new(&config, &vs, channels_last, 0.9, Device::Cpu).unwrap();
            other.load(&saved, "ema/").unwrap();
            assert!(other.averaged(name).equal(&got));
            assert_eq!(saved[&format!("ema/{name}")].kind(), Kind::Float);
        }
    }
}

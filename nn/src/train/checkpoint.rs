//! What an exact resume needs, in `RUN/checkpoint/`: `state.safetensors` (weights and AdamW moments, by name) and
//! `state.json` (counters, loss scale, early-stopping state, the metrics so far). Random numbers are functions of
//! (seed, purpose, step), so the step is the whole random state. Written beside and swapped in whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::ema::Ema;
use super::scaler::GradScaler;
use super::writer::host_copy;
use crate::optim::AdamW;
use crate::run_dir::MetricsRow;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainState {
    /// The epoch in progress (0-based) and how many of its batches are done.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// Batches done over the whole run (drives the schedule and the random streams).
    pub global_step: usize,
    pub optimizer_steps: i64,
    pub scaler: GradScaler,
    pub best_auc: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_without_improvement: usize,
    /// Sum and count of the training loss over the epoch in progress.
    pub loss_sum: f64,
    pub loss_count: usize,
    pub history: Vec<MetricsRow>,
    /// Set when early stopping ended the run.
    pub stopped_early: bool,
    /// The number of processes that trained; batch_in_epoch counts steps of that many ranks.
    #[serde(default = "one")]
    pub world_size: usize,
    /// Whether each AdamW moment in state.safetensors holds its parameter's elements in the parameter's own
    /// (logical) order: true for every checkpoint written now. False in checkpoints of channels-last runs written
    /// before the moments took their parameters' strides: the CPU's fused kernel then paired moment and parameter by
    /// memory position, so a 4-D moment held its elements in the parameter's NHWC memory order (see [`load`]).
    #[serde(default)]
    pub moments_by_element: bool,
    /// Whether the best epoch's weights (model.safetensors) are the moving average of the weights rather than the
    /// weights themselves (runs with --ema-half-life).
    #[serde(default)]
    pub best_is_ema: bool,
}

fn one() -> usize {
    1
}

impl TrainState {
    pub(crate) fn new() -> TrainState {
        TrainState {
            epoch: 0,
            batch_in_epoch: 0,
            global_step: 0,
            optimizer_steps: 0,
            scaler: GradScaler::default(),
            best_auc: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            loss_sum: 0.0,
            loss_count: 0,
            history: Vec::new(),
            stopped_early: false,
            world_size: 1,
            moments_by_element: true,
            best_is_ema: false,
        }
    }
}

impl TrainState {
    /// Moves on to the next epoch, from its first batch, with a fresh training-loss sum.
    pub(crate) fn next_epoch(&mut self) {
        self.epoch += 1;
        self.batch_in_epoch = 0;
        self.loss_sum = 0.0;
        self.loss_count = 0;
    }
}

impl Default for TrainState {
    fn default() -> Self {
        Self::new()
    }
}

/// The tensors of a checkpoint, copied to host memory in element order: the weights (`model/NAME`), AdamW's
/// moments (`exp_avg/NAME`, `exp_avg_sq/NAME`) and the weights' moving average where the run keeps one
/// (`ema/NAME`), sorted by name. `weights` are the weights' copies when the caller has them already (see
/// [`super::weights_on_host`]).
pub(crate) fn snapshot(opt: &AdamW, weights: Option<&[(String, Tensor)]>, ema: Option<&Ema>) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(opt.slots.len() * 3);
    for s in &opt.slots {
        let param = weights
            .and_then(|w| w.iter().find(|(n, _)| *n == s.name))
            .map_or_else(|| host_copy(&s.param), |(_, t)| t.shallow_clone());
        tensors.push((format!("model/{}", s.name), param));
        tensors.push((format!("exp_avg/{}", s.name), host_copy(&s.exp_avg)));
        tensors.push((format!("exp_avg_sq/{}", s.name), host_copy(&s.exp_avg_sq)));
    }
    if let Some(ema) = ema {
        tensors.extend(ema.weights_on_host().into_iter().map(|(n, t)| (format!("{EMA_PREFIX}{n}"), t)));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Writes a checkpoint, `state` and the tensors of [`snapshot`], into `dir` (replaced whole).
pub(crate) fn save(dir: &Path, state: &TrainState, tensors: &[(String, Tensor)]) -> Result<()> {
    lensfind_core::output::clean_stale_temps(dir, "lens-train"); // what a SIGKILLed run left
    let tmp = lensfind_core::output::temp_beside(dir, "tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Tensor::write_safetensors(tensors, tmp.join("state.safetensors")).context("writing state.safetensors")?;
    fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)? + "\n").context("writing state.json")?;
    for f in ["state.safetensors", "state.json"] {
        fs::File::open(tmp.join(f)).and_then(|f| f.sync_all())?;
    }
    Ok(lensfind_core::output::move_dir_into_place(&tmp, dir)?)
}

/// Whether `dir` holds a checkpoint (its state.json is written last, and the directory swapped in whole).
pub(crate) fn exists(dir: &Path) -> bool {
    dir.join("state.json").exists()
}

/// The counters of the checkpoint in `dir`, without its tensors.
pub(crate) fn read_state(dir: &Path) -> Result<TrainState> {
    let state_path = dir.join("state.json");
    let text = fs::read_to_string(&state_path)
        .with_context(|| format!("reading {} (is there a checkpoint to resume?)", state_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))
}

/// Restores weights, moments and counters from `dir` into `opt`, whatever the strides of either side (values are
/// copied element by element); returns the saved state. `channels_last`: the run's memory format, which wrote the
/// checkpoint; an older channels-last checkpoint's 4-D moments are put back in element order (see
/// [`TrainState::moments_by_element`]).
pub(crate) fn load(dir: &Path, opt: &mut AdamW, channels_last: bool) -> Result<TrainState> {
    let mut state = read_state(dir)?;
    let nhwc_moments = channels_last && !state.moments_by_element;
    state.moments_by_element = true;
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(dir.join("state.safetensors"))
        .context("reading state.safetensors")?
        .into_iter()
        .collect();
    tch::no_grad(|| -> Result<()> {
        for s in &mut opt.slots {
            for (prefix, dst) in
                [("model", &mut s.param), ("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)]
            {
                let key = format!("{prefix}/{}", s.name);
                let Some(src) = tensors.get(&key) else { bail!("checkpoint has no {key}: it is not from this model") };
                if src.size() != dst.size() {
                    bail!("checkpoint {key} has shape {:?}, the model {:?}", src.size(), dst.size());
                }
                if nhwc_moments && prefix != "model" && src.dim() == 4 {
                    dst.copy_(&from_nhwc_order(src));
                } else {
                    dst.copy_(src);
                }
            }
        }
        Ok(())
    })?;
    opt.set_steps_taken(state.optimizer_steps);
    Ok(state)
}

/// The prefix of the moving average's weights in state.safetensors.
const EMA_PREFIX: &str = "ema/";

/// Restores the moving average of the weights from the checkpoint in `dir`.
pub(crate) fn load_ema(dir: &Path, ema: &Ema) -> Result<()> {
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(dir.join("state.safetensors"))
        .context("reading state.safetensors")?
        .into_iter()
        .collect();
    ema.load(&tensors, EMA_PREFIX)
}

/// The [N, C, H, W] tensor whose elements, read in NHWC order, are `t`'s in its row-major order.
fn from_nhwc_order(t: &Tensor) -> Tensor {
    let s = t.size();
    t.reshape([s[0], s[2], s[3], s[1]]).permute([0, 3, 1, 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layers::to_channels_last;
    use tch::{Device, Kind};

    /// An optimizer over one [2, 3, 4, 5] weight and one bias, the weight in the given layout, with moments set to
    /// distinct values.
    fn optimizer(channels_last: bool, seed: f64) -> AdamW {
        let w = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let w = if channels_last { to_channels_last(&w) } else { w };
        let b = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let mut opt = AdamW::new(vec![("w".into(), w, 0.01), ("b".into(), b, 0.0)], 0.9, 0.999, 1e-8);
        tch::no_grad(|| {
            for (k, s) in opt.slots.iter_mut().enumerate() {
                let n = s.param.numel() as i64;
                let values = |offset: f64| {
                    (Tensor::arange(n, (Kind::Float, Device::Cpu)) + offset + seed).view(s.param.size().as_slice())
                };
                s.exp_avg.copy_(&values(1000.0 * k as f64));
                s.exp_avg_sq.copy_(&values(5000.0 * k as f64));
                s.param.shallow_clone().copy_(&values(9000.0 * k as f64));
            }
        });
        opt
    }

    #[test]
    fn a_checkpoint_resumes_in_the_other_layout_with_each_moment_on_its_element() {
        for (written, resumed) in [(true, false), (false, true)] {
            let dir = tempfile::tempdir().unwrap();
            let from = optimizer(written, 0.0);
            save(dir.path(), &TrainState::new(), &snapshot(&from, None, None)).unwrap();
            let mut to = optimizer(resumed, 0.5);
            load(dir.path(), &mut to, resumed).unwrap();
            for (a, b) in from.slots.iter().zip(&to.slots) {
                assert!(b.param.equal(&a.param) && b.exp_avg.equal(&a.exp_avg) && b.exp_avg_sq.equal(&a.exp_avg_sq));
                assert_eq!(b.exp_avg.stride(), b.param.stride(), "the moments keep their parameter's strides");
            }
        }
    }

    #[test]
    fn an_older_channels_last_checkpoint_has_its_moments_put_back_in_element_order() {
        // Written before the moments followed their parameters: a contiguous moment beside a channels-last weight,
        // paired by memory position, saved in that memory order; state.json without moments_by_element.
        let dir = tempfile::tempdir().unwrap();
        let want = optimizer(true, 0.0);
        let mut tensors = snapshot(&want, None, None);
        for (name, t) in &mut tensors {
            if !name.starts_with("model/") && t.dim() == 4 {
                *t = t.permute([0, 2, 3, 1]).contiguous().view(t.size().as_slice());
            }
        }
        let mut state = TrainState::new();
        state.moments_by_element = false;
        save(dir.path(), &state, &tensors).unwrap();
        let mut got = optimizer(true, 0.5);
        assert!(load(dir.path(), &mut got, true).unwrap().moments_by_element, "written in element order from now on");
        for (a, b) in want.slots.iter().zip(&got.slots) {
            assert!(b.exp_avg.equal(&a.exp_avg) && b.exp_avg_sq.equal(&a.exp_avg_sq), "{}", a.name);
        }
        // A contiguous run's older checkpoint had its moments in element order already: read as they are.
        let mut plain = optimizer(false, 0.5);
        load(dir.path(), &mut plain, false).unwrap();
        assert!(!plain.slots.iter().find(|s| s.name == "w").unwrap().exp_avg.equal(&want.slots[0].exp_avg));
    }
}

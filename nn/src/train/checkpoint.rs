//! What an exact resume needs, in `RUN/checkpoint/`: `state.safetensors` (weights and AdamW moments, by name) and
//! `state.json` (counters, loss scale, early-stopping state, the metrics so far). Random numbers are functions of
//! (seed, purpose, step), so the step is the whole random state. Written beside and swapped in whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::scaler::GradScaler;
use crate::optim::AdamW;
use crate::run_dir::MetricsRow;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
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
}

fn one() -> usize {
    1
}

impl TrainState {
    pub fn new() -> TrainState {
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
        }
    }
}

impl TrainState {
    /// Moves on to the next epoch, from its first batch, with a fresh training-loss sum.
    pub fn next_epoch(&mut self) {
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

/// Writes the checkpoint of `state` and the optimizer (which holds the weights) into `dir` (replaced whole).
pub fn save(dir: &Path, state: &TrainState, opt: &AdamW) -> Result<()> {
    lensfind::output::clean_stale_temps(dir, "lens-train"); // what a SIGKILLed run left
    let tmp = lensfind::output::temp_beside(dir, "tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(opt.slots.len() * 3);
    for s in &opt.slots {
        tensors.push((format!("model/{}", s.name), s.param.detach().to_device(tch::Device::Cpu).contiguous()));
        tensors.push((format!("exp_avg/{}", s.name), s.exp_avg.to_device(tch::Device::Cpu).contiguous()));
        tensors.push((format!("exp_avg_sq/{}", s.name), s.exp_avg_sq.to_device(tch::Device::Cpu).contiguous()));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&tensors, tmp.join("state.safetensors")).context("writing state.safetensors")?;
    fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)? + "\n").context("writing state.json")?;
    for f in ["state.safetensors", "state.json"] {
        fs::File::open(tmp.join(f)).and_then(|f| f.sync_all())?;
    }
    lensfind::output::replace_dir(&tmp, dir)
}

/// Whether `dir` holds a checkpoint (its state.json is written last, and the directory swapped in whole).
pub fn exists(dir: &Path) -> bool {
    dir.join("state.json").exists()
}

/// The counters of the checkpoint in `dir`, without its tensors.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let state_path = dir.join("state.json");
    let text = fs::read_to_string(&state_path)
        .with_context(|| format!("reading {} (is there a checkpoint to resume?)", state_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))
}

/// Restores weights, moments and counters from `dir` into `opt`; returns the saved state.
pub fn load(dir: &Path, opt: &mut AdamW) -> Result<TrainState> {
    let state = read_state(dir)?;
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
                dst.copy_(src);
            }
        }
        Ok(())
    })?;
    opt.step = state.optimizer_steps;
    Ok(state)
}

//! A run directory, lens-train's `--out`: config.json (every setting of the run, written first), model.safetensors
//! (the best epoch's weights under timm's names), metrics.csv (one row per epoch), timing.csv, val_predictions.csv
//! and checkpoint/. lens-train writes it, `--resume` continues it and lens-infer reads it, all through here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lensfind_core::output::write_whole;
use lensfind_core::text::opt_u8;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use crate::config::TrainConfig;
use crate::setting::{Setting, SettingError};

/// timing.csv's columns: the training loop's seconds and images/s (all ranks' images), then validation's seconds,
/// saving's (best weights, validation predictions, metrics.csv and the checkpoint), and the whole epoch's seconds and
/// training images per second of it, which is what a user waits for.
pub(crate) const TIMING_HEADER: &str =
    "epoch,train_seconds,train_images_per_s,validation_seconds,save_seconds,epoch_seconds,epoch_images_per_s";

/// Where an epoch's time went.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EpochTiming {
    /// The training loop, from its first batch to the last step.
    pub train_seconds: f64,
    /// Training images of the epoch, all ranks.
    pub images: usize,
    pub validation_seconds: f64,
    pub save_seconds: f64,
}

/// One line of metrics.csv: the epoch's training loss and validation metrics. Timings live in timing.csv, so
/// that two runs with the same seed give the same metrics.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: f64,
    pub val_accuracy: f64,
    pub val_precision: f64,
    pub val_recall: f64,
    pub val_tpr_at_fpr_1e2: f64,
    pub val_tpr_at_fpr_1e3: f64,
    pub val_auc_source1: f64,
    pub val_auc_source2: f64,
    pub skipped_steps: usize,
    /// The same validation figures for the moving average of the weights (--ema-half-life); empty without one.
    #[serde(default)]
    pub ema_val_loss: Option<f64>,
    #[serde(default)]
    pub ema_val_auc: Option<f64>,
    #[serde(default)]
    pub ema_val_tpr_at_fpr_1e2: Option<f64>,
    #[serde(default)]
    pub ema_val_tpr_at_fpr_1e3: Option<f64>,
}

impl MetricsRow {
    /// The validation AUC that ranks this epoch: the better of the raw weights' and their moving average's (NaN
    /// where neither is defined).
    pub(crate) fn best_val_auc(&self) -> f64 {
        match self.ema_val_auc {
            Some(ema) if ema > self.val_auc || self.val_auc.is_nan() => ema,
            _ => self.val_auc,
        }
    }

    /// Whether the moving average of the weights did better on validation than the raw weights this epoch.
    pub(crate) fn ema_is_better(&self) -> bool {
        self.best_val_auc() != self.val_auc && !self.best_val_auc().is_nan()
    }
}

/// One validation object's prediction, a row of val_predictions.csv.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValPrediction<'a> {
    pub id: &'a str,
    pub label: Option<u8>,
    pub source: Option<u8>,
    pub logit: f64,
}

/// The files of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    pub(crate) fn weights_path(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }

    pub(crate) fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoint")
    }

    /// The settings of the run, from config.json.
    pub(crate) fn read_config(&self) -> Result<TrainConfig> {
        let path = self.config_path();
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is {} a lens-train run?)", path.display(), self.path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Starts a new run: creates the directory and writes config.json (whole or not at all). A directory that
    /// already holds a run is refused.
    pub(crate) fn create(&self, cfg: &TrainConfig) -> Result<()> {
        if self.config_path().exists() {
            let problem = "already holds a run: resume it, or choose another directory";
            return Err(SettingError::new(Setting::Out, self.path.display(), problem).into());
        }
        fs::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
        Ok(write_whole(Some(&self.config_path()), |w| Ok(serde_json::to_writer_pretty(w, cfg)?))?)
    }

    /// Saves the weights as model.safetensors, sorted by name, whole or not at all: `vars` are (timm name, tensor)
    /// pairs in host memory (see [`crate::train::weights_on_host`]).
    pub(crate) fn save_weights(&self, vars: &[(String, Tensor)]) -> Result<()> {
        let path = self.weights_path();
        // What a killed run left beside it goes first (output::remove_stale_temps knows these names).
        lensfind_core::output::clean_stale_temps(&path, "lens-train");
        let tmp = lensfind_core::output::temp_beside(&path, "tmp");
        Tensor::write_safetensors(vars, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
        Ok(lensfind_core::output::move_file_into_place(&tmp, &path)?)
    }

    /// Loads model.safetensors into the variables of `vs` (a model built from config.json's `model`).
    pub(crate) fn load_weights(&self, vs: &mut VarStore, model: &str) -> Result<()> {
        let weights = self.weights_path();
        if !weights.exists() {
            bail!("{} does not exist: the run has not finished an epoch yet", weights.display());
        }
        vs.load(&weights).with_context(|| {
            format!(
                "loading {} into a {model} built from {}: they do not match",
                weights.display(),
                self.config_path().display()
            )
        })
    }

    /// Writes metrics.csv with every epoch so far.
    pub(crate) fn write_metrics(&self, history: &[MetricsRow]) -> Result<()> {
        Ok(write_whole(Some(&self.path.join("metrics.csv")), |w| {
            let mut csv = csv::Writer::from_writer(w);
            for row in history {
                csv.serialize(row)?;
            }
            csv.flush()?;
            Ok(())
        })?)
    }

    /// Appends an epoch's times and speeds to timing.csv.
    pub(crate) fn append_timing(&self, epoch: usize, t: &EpochTiming) -> Result<()> {
        let path = self.path.join("timing.csv");
        let new = !path.exists();
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&path)?;
        // One write per append: writeln! on a File issues a write per formatted piece, and a SIGKILL between them
        // left half a row that the resumed run then continued.
        let mut text = if new { format!("{TIMING_HEADER}\n") } else { String::new() };
        let whole = t.train_seconds + t.validation_seconds + t.save_seconds;
        let rate = |seconds: f64| t.images as f64 / seconds.max(1e-9);
        text.push_str(&format!(
            "{epoch},{:.3},{:.1},{:.3},{:.3},{whole:.3},{:.1}\n",
            t.train_seconds,
            rate(t.train_seconds),
            t.validation_seconds,
            t.save_seconds,
            rate(whole)
        ));
        f.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Writes val_predictions.csv (id,label,source,logit), whole or not at all.
    pub(crate) fn write_val_predictions<'a>(&self, rows: impl IntoIterator<Item = ValPrediction<'a>>) -> Result<()> {
        Ok(write_whole(Some(&self.path.join("val_predictions.csv")), |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record(["id", "label", "source", "logit"])?;
            for p in rows {
                csv.write_record([p.id, &opt_u8(p.label), &opt_u8(p.source), &format!("{:.6}", p.logit)])?;
            }
            csv.flush()?;
            Ok(())
        })?)
    }
}

#[cfg(test)]
mod recipe_tests {
    use super::*;
    use crate::recipe::{resolve, Overrides, Recipe};

    #[test]
    fn config_json_keeps_the_recipe_and_old_files_still_load() {
        let (_, record) =
            resolve(Recipe::Scratch, 128, Some(100), &Overrides { lr: Some(3e-3), ..Overrides::default() });
        let cfg = TrainConfig { recipe: Some(record), ..TrainConfig::example() };
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::new(t.path().join("run"));
        run.create(&cfg).unwrap();
        assert_eq!(run.read_config().unwrap(), cfg, "the recipe round-trips through config.json");

        // A config.json written before recipes has no "recipe": it loads, as None.
        let mut old = serde_json::to_value(TrainConfig::example()).unwrap();
        assert!(old.as_object_mut().unwrap().remove("recipe").is_none(), "None is not written");
        std::fs::write(run.config_path(), old.to_string()).unwrap();
        assert_eq!(run.read_config().unwrap().recipe, None);
    }
}

#[cfg(test)]
mod ema_tests {
    use super::*;

    fn row(raw: f64, ema: Option<f64>) -> MetricsRow {
        let mut r = crate::train::validation_row_for_tests(raw);
        r.ema_val_auc = ema;
        r
    }

    #[test]
    fn an_epoch_ranks_by_the_better_of_the_weights_and_their_average() {
        assert_eq!((row(0.8, None).best_val_auc(), row(0.8, None).ema_is_better()), (0.8, false));
        assert_eq!((row(0.8, Some(0.9)).best_val_auc(), row(0.8, Some(0.9)).ema_is_better()), (0.9, true));
        // A tie keeps the raw weights; an undefined AUC (one class) loses to a defined one.
        assert!(!row(0.8, Some(0.8)).ema_is_better() && !row(0.8, Some(f64::NAN)).ema_is_better());
        assert_eq!((row(f64::NAN, Some(0.7)).best_val_auc(), row(f64::NAN, Some(0.7)).ema_is_better()), (0.7, true));
        assert!(
            row(f64::NAN, Some(f64::NAN)).best_val_auc().is_nan() && !row(f64::NAN, Some(f64::NAN)).ema_is_better()
        );
    }
}

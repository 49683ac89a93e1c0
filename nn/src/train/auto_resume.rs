//! lens-train --auto-resume: one command line that starts a run, and continues it when it is run again (a batch
//! script resubmitted or requeued, a group that torchrun restarts). The run directory decides: none yet -> a new
//! run; the same settings -> continue from the checkpoint, or from the first step when there is none yet; other
//! settings -> an error that names them.

use anyhow::{bail, Result};
use tch::Device;

use super::checkpoint;
use crate::config::{Continued, TrainConfig};
use crate::device::Precision;
use crate::dist::ProcessGroup;
use crate::run_dir::RunDir;
use crate::setting::{Setting, SettingError};

/// How a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// A new run: rank 0 creates the directory and writes config.json.
    New,
    /// From the first step, in a directory that holds config.json but no checkpoint yet (a run stopped before its
    /// first one). Exact: every random number comes from the seed.
    Again,
    /// From the checkpoint; `step` is its global step when it was looked at (--auto-resume), None when loading it
    /// will find it (--resume).
    Resume { step: Option<usize> },
}

/// What `run` holds decides how the run described by a command line (`wanted`) starts. `precision` and
/// `channels_last` are the command line's when it gave them, None for auto. Returns the settings to run with
/// (`wanted` for a new run, else config.json's continued with the command line's where they may change:
/// [`crate::config::ON_CONTINUE`]) and the start. Writes nothing.
pub(crate) fn decide(
    run: &RunDir,
    wanted: TrainConfig,
    precision: Option<Precision>,
    channels_last: Option<bool>,
) -> Result<(TrainConfig, Start)> {
    if !run.config_path().exists() {
        return Ok((wanted, Start::New));
    }
    let mut cfg = run.read_config()?;
    let differences = cfg.differences(&wanted, precision);
    if !differences.is_empty() {
        let problem = format!(
            "holds a run with other settings ({}); continuing a run automatically needs the same settings: choose \
             another directory, or resume this one with its own settings",
            differences.join("; ")
        );
        return Err(SettingError::new(Setting::Out, run.path().display(), problem).into());
    }
    cfg.continue_with(&Continued {
        device: Some(wanted.device),
        checkpoint_every: Some(wanted.checkpoint_every),
        data_on_device: Some(wanted.data_on_device),
        channels_last,
    });
    let dir = run.checkpoint_dir();
    if checkpoint::exists(&dir) {
        let step = checkpoint::read_state(&dir)?.global_step;
        return Ok((cfg, Start::Resume { step: Some(step) }));
    }
    // An epoch's results are written just before its checkpoint: results without a checkpoint are a run whose
    // checkpoint was removed, not one that never got that far. Starting it again would overwrite them.
    let results: Vec<String> = [run.weights_path(), run.path().join("metrics.csv")]
        .into_iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !results.is_empty() {
        bail!(
            "{} holds results ({}) but no checkpoint to continue from; remove the directory to train it again",
            run.path().display(),
            results.join(", ")
        );
    }
    Ok((cfg, Start::Again))
}

/// Makes sure that every rank found the same in the run directory: a rank that saw no checkpoint, or another one,
/// would train from other weights (a run directory on a file system that the nodes do not share). When they
/// differ, every rank fails alike. `device` is this rank's (NCCL gathers GPU tensors).
pub(crate) fn agree(pg: &ProcessGroup, start: Start, run: &RunDir, device: Device) -> Result<()> {
    let code: i64 = match start {
        Start::New => -1,
        Start::Again => -2,
        Start::Resume { step } => step.map_or(-3, |s| s as i64),
    };
    // As f64, exact for any step count below 2^53.
    let seen: Vec<i64> = pg.gather_f64(&[code as f64], device)?.into_iter().map(|v| v[0] as i64).collect();
    let others: Vec<usize> = (1..seen.len()).filter(|&r| seen[r] != seen[0]).collect();
    if others.is_empty() {
        return Ok(());
    }
    let describe = |c: i64| match c {
        -1 => "no run".to_string(),
        -2 => "a run without a checkpoint".to_string(),
        -3 => "a checkpoint".to_string(),
        step => format!("a checkpoint at step {step}"),
    };
    let theirs: Vec<String> = others.iter().map(|&r| format!("rank {r} {}", describe(seen[r]))).collect();
    bail!(
        "the ranks do not see the same {}: rank 0 finds {}, {}; every rank must see the run directory on a file \
         system that all nodes share",
        run.path().display(),
        describe(seen[0]),
        theirs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceName;

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig { epochs, ..TrainConfig::example() }
    }

    #[test]
    fn the_run_directory_decides_how_a_run_starts() {
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::new(t.path().join("run"));
        assert_eq!(decide(&run, config(4), None, None).unwrap(), (config(4), Start::New));

        run.create(&config(4)).unwrap();
        let mut wanted = config(4);
        (wanted.device, wanted.checkpoint_every, wanted.precision) = (DeviceName::Cpu, Some(5), Precision::Fp32);
        let (cfg, start) = decide(&run, wanted, None, None).unwrap();
        assert_eq!(start, Start::Again);
        assert_eq!((cfg.device, cfg.checkpoint_every), (DeviceName::Cpu, Some(5)), "the command line's");
        assert_eq!(cfg.precision, Precision::Bf16, "auto keeps what the run chose");

        let err = decide(&run, config(5), None, None).unwrap_err().to_string();
        assert!(err.contains("other settings (epochs: 4 in config.json, 5 on the command line)"), "{err}");
        let err = decide(&run, config(4), Some(Precision::Fp32), None).unwrap_err().to_string();
        assert!(err.contains("precision: bf16 in config.json, fp32 on the command line"), "{err}");

        let dir = run.checkpoint_dir();
        std::fs::create_dir(&dir).unwrap();
        let state = checkpoint::TrainState { global_step: 30, ..Default::default() };
        std::fs::write(dir.join("state.json"), serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(decide(&run, config(4), None, None).unwrap().1, Start::Resume { step: Some(30) });

        // Results whose checkpoint is gone are not trained over.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(run.path().join("metrics.csv"), "epoch\n1\n").unwrap();
        let err = decide(&run, config(4), None, None).unwrap_err().to_string();
        assert!(err.contains("holds results") && err.contains("metrics.csv"), "{err}");
    }
}

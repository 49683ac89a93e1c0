//! The library behind the lensfind tools: everything that needs no libtorch.
//!
//! Data: `naming` (the challenge's file names), `index` (finding the files of each object), `fits` (reading a band
//! image), `pack` (the memory-mapped dataset), `npy`, `synth` (a challenge-format synthetic dataset). Results:
//! `scores` (logits, submissions, truth), `ensemble` (and weights chosen on validation), `metrics` (AUC, TPR at
//! low FPR, the per-source report), `operating` (thresholds chosen by a rule), `calibration` (temperature and
//! Platt scaling, Brier, ECE), `submission` (the scores and challenge formats), `select` and `render` (contact
//! sheets, the ROC and reliability plots). Plumbing: `output` (whole-or-nothing outputs),
//! `progress` (stderr reporting), `text` (CSV field formatting), `rng`, `threads`, and `cli` (the tools' `main`).
//!
//! Errors are thiserror types per module; anyhow appears only where the tools meet the library (cli, and the few
//! anyhow forms kept for nn's callers).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod calibration;
pub mod cli;
pub mod ensemble;
pub mod fits;
pub mod index;
pub mod metrics;
pub mod naming;
pub mod npy;
pub mod operating;
pub mod output;
pub mod pack;
pub mod progress;
pub mod render;
pub mod rng;
pub mod scores;
pub mod select;
pub mod submission;
pub mod synth;
pub mod text;
pub mod threads;

/// An error and its causes on one line, `a: b: c`, for tests that look for a message anywhere in the chain.
#[cfg(test)]
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

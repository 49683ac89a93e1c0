//! Scores and what is made of them, from the bottom up: `probability` (sigmoid, log-loss), `scores` (logits,
//! submissions, truth files), `metrics` (AUC, TPR at low FPR, the per-source report), `calibration` (temperature and
//! Platt scaling, Brier, ECE), `operating` (thresholds chosen by a rule), `ensemble` (and weights chosen on
//! validation), `submission` (the scores and challenge formats), and `evaluation` (lens-eval's: a scores file
//! against its labels).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod calibration;
pub mod ensemble;
pub mod evaluation;
pub mod metrics;
mod operating;
mod probability;
pub mod scores;
pub mod submission;

pub use operating::{OperatingError, OperatingPoint, Rule};

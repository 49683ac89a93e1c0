//! lensfind's plumbing, shared by every other crate: `output` (outputs written whole or not at all), `progress`
//! (stderr reporting as DESIGN.md asks), `text` (CSV field formatting), `rng` (the seeded random numbers), `threads`
//! (the rayon pool), and `cli` (the tools' `main`: the error report and exit codes).
//!
//! Errors are thiserror types per module; anyhow appears only where the tools meet the libraries (`cli`).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod output;
pub mod progress;
pub mod rng;
pub mod text;
pub mod threads;

/// An error and its causes on one line, `a: b: c`, for tests that look for a message anywhere in the chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

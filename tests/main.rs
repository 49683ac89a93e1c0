//! lensfind's end-to-end tests: the built tools run together as a user runs them. One test binary, as ripgrep and
//! xsv keep theirs (one link instead of one per file): a module per tool or concern below; the helpers they share
//! (finding and running the tools, datasets, the project's Python, LENSFIND_SKIP) are this crate's library,
//! common.rs. Run one module with `cargo test -p lensfind-e2e -- pack::`.
#![allow(clippy::unwrap_used)] // a panic is how a test fails, also in the helpers the tests call
#![allow(clippy::too_many_lines)] // a scenario test reads top to bottom: its steps and their checks in order

mod autotune;
mod crash;
mod dist;
mod ensemble;
mod eval;
mod fits;
mod hostile;
mod index;
mod infer;
mod pack;
mod pipeline;
mod readme;
mod slurm;
mod synth;
mod train;
mod version;
mod view;

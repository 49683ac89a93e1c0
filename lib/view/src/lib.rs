//! Pictures: `render` (contact sheets of cutouts in Lupton RGB, the ROC and reliability plots) and `select` (which
//! objects to draw: the top of a ranking, ids, the errors at a threshold).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod render;
pub mod select;

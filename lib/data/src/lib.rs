//! The challenge's data, from FITS files to the memory-mapped pack every model reads: `naming` (the challenge's file
//! names), `index` (finding the band files of each object), `fits` (reading a band image, through cfitsio), `npy`
//! (NumPy's format), `pack` (the pack: writing, reading, verifying).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

/// Reading and writing FITS band files, through cfitsio: with the `fits` feature only, so that the tools that read
/// packs alone (inference, evaluation, pictures) do not link cfitsio.
#[cfg(feature = "fits")]
pub mod fits;
pub mod index;
pub mod naming;
pub mod npy;
pub mod pack;

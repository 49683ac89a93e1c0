//! The pack: a directory `NAME.pack/` that holds a whole dataset ready for training and inference.
//!
//! - `images.npy`: float32 (or float16) `[N, 5, H, W]`, C order, bands g,r,i,z,y, cleaned and standardised;
//! - `meta.csv`: `row,id,label,source`;
//! - `rejected.csv`: `id,reason` for every object of the index that is not in the pack;
//! - `pack.json`: the [`Manifest`], with checksums.

mod object;
mod read;
// Writing a pack reads the challenge's FITS files: with the `fits` feature (cfitsio) only.
#[cfg(feature = "fits")]
mod write;

pub use object::Standardize;
pub use read::{parse_manifest, read_manifest, verify, MetaRow, Pack};
#[cfg(feature = "fits")]
pub use write::{write_pack, PackOptions, PackSummary, WriteError};

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::npy::{Dtype, NpyError};

/// The files of a pack directory `NAME.pack/`: the one place their names are written.
#[derive(Debug, Clone, Copy)]
pub struct PackDir<'a>(pub &'a Path);

impl PackDir<'_> {
    pub(crate) const IMAGES: &'static str = "images.npy";
    pub(crate) const META: &'static str = "meta.csv";
    pub(crate) const REJECTED: &'static str = "rejected.csv";
    pub(crate) const MANIFEST: &'static str = "pack.json";

    pub(crate) fn images(self) -> PathBuf {
        self.0.join(Self::IMAGES)
    }

    pub(crate) fn meta(self) -> PathBuf {
        self.0.join(Self::META)
    }

    pub fn rejected(self) -> PathBuf {
        self.0.join(Self::REJECTED)
    }

    pub(crate) fn manifest(self) -> PathBuf {
        self.0.join(Self::MANIFEST)
    }

    /// Whether the directory holds a pack (its manifest, written last, is there).
    pub fn is_pack(self) -> bool {
        self.manifest().is_file()
    }
}

/// Why a pack could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("opening {}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("mapping {}", path.display())]
    Map { path: PathBuf, source: io::Error },
    #[error("{} is not valid JSON", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{} is not a lensfind pack manifest (format {format:?})", path.display())]
    Format { path: PathBuf, format: String },
    #[error(
        "{} is pack format version {version}; this lensfind reads versions {VERSION} and {VERSION_NOISE} only \
         (repack with this version's lens-pack)",
        path.display()
    )]
    Version { path: PathBuf, version: u64 },
    #[error("{} has missing or malformed fields", path.display())]
    Fields { path: PathBuf, source: serde_json::Error },
    #[error("{} is {len} bytes, the manifest says {expected}: the pack is damaged or incomplete", path.display())]
    Size { path: PathBuf, len: u64, expected: u64 },
    #[error(
        "{}: {len} bytes cannot hold {} rows of 5x{}x{} {:?} after a {}-byte header: the manifest is damaged",
        path.display(), manifest.count, manifest.height, manifest.width, manifest.dtype, manifest.images.data_offset
    )]
    Geometry { path: PathBuf, len: u64, manifest: Box<Manifest> },
    #[error("reading {}", path.display())]
    Npy { path: PathBuf, source: NpyError },
    #[error("{}: header says {dtype:?} {shape:?}, the manifest {expected_dtype:?} {expected_shape:?}", path.display())]
    Header { path: PathBuf, dtype: Dtype, shape: Vec<usize>, expected_dtype: Dtype, expected_shape: [usize; 4] },
    #[error("{} does not match its checksum in pack.json: it was edited or damaged", path.display())]
    MetaSum { path: PathBuf },
    #[error("{}, line {line}", path.display())]
    MetaRow { path: PathBuf, line: usize, source: csv::Error },
    #[error("{}: rows do not match the {count} images", path.display())]
    MetaRows { path: PathBuf, count: usize },
    #[error("{}: {sums} block checksums for {rows} rows", path.display())]
    BlockCount { path: PathBuf, sums: usize, rows: usize },
    #[error(
        "{}: rows {first}-{last} do not match their checksum in pack.json: the images were edited or damaged \
         (lens-pack --verify checks the whole pack)",
        path.display()
    )]
    Block { path: PathBuf, first: usize, last: usize },
    #[error("viewing {}", path.display())]
    View { path: PathBuf, source: ndarray_npy::ViewNpyError },
}

/// The format name in `pack.json`.
pub(crate) const FORMAT: &str = "lensfind-pack";
/// The format version this code writes and reads. Bump it on any change a reader could misread.
pub(crate) const VERSION: u32 = 1;
/// The version of a pack standardised [`Standardize::Noise`]: the same files, but a reader that predates that
/// scaling must refuse the pack by its version rather than fail on the mode's name.
pub(crate) const VERSION_NOISE: u32 = 2;

/// The format version of a pack standardised `mode`.
#[cfg(feature = "fits")]
pub(crate) fn version_for(mode: Standardize) -> u32 {
    if mode == Standardize::Noise {
        VERSION_NOISE
    } else {
        VERSION
    }
}
/// Rows per checksummed block of `images.npy`: `--verify` names the damaged block's rows.
#[cfg(feature = "fits")]
pub(crate) const BLOCK_ROWS: usize = 1024;

/// Size and CRC-32 of a whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    /// CRC-32 (IEEE), as 8 lowercase hex digits.
    pub crc32: String,
}

/// Where the image data lies in `images.npy` and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesSum {
    pub bytes: u64,
    /// Offset of the first pixel (the .npy header length).
    pub data_offset: u64,
    /// CRC-32 of the whole file.
    pub crc32: String,
    /// Rows per block in `block_crc32`.
    pub block_rows: usize,
    /// CRC-32 of the data of each block of `block_rows` rows (the last block may be shorter).
    pub block_crc32: Vec<String>,
}

/// How the pixels were standardised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    pub mode: Standardize,
    /// Standardisation applies only where the population std exceeds this (a flat image is left as it is).
    pub min_std: f64,
}

/// Non-finite input values, replaced by 0 before standardising.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonFinite {
    pub values_replaced: u64,
    pub objects_affected: u64,
}

/// `pack.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub count: usize,
    pub bands: Vec<String>,
    pub height: usize,
    pub width: usize,
    pub dtype: Dtype,
    pub standardization: Standardization,
    pub nonfinite: NonFinite,
    /// Objects of the index set aside (listed in rejected.csv).
    pub rejected: usize,
    /// Labelled objects: lenses and non-lenses.
    pub lenses: usize,
    pub nonlenses: usize,
    /// The tool and version that wrote the pack.
    pub tool: String,
    pub images: ImagesSum,
    pub meta: FileSum,
    pub rejected_list: FileSum,
}

fn hex(crc: u32) -> String {
    format!("{crc:08x}")
}

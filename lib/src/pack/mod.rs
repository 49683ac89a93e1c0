//! The pack: a directory `NAME.pack/` that holds a whole dataset ready for training and inference.
//!
//! - `images.npy`: float32 (or float16) `[N, 5, H, W]`, C order, bands g,r,i,z,y, cleaned and standardised;
//! - `meta.csv`: `row,id,label,source`;
//! - `rejected.csv`: `id,reason` for every object of the index that is not in the pack;
//! - `pack.json`: the [`Manifest`], with checksums.

mod object;
mod read;
mod write;

pub use object::{load_object, standardize, Standardize};
pub use read::{parse_manifest, read_manifest, verify, MetaRow, Pack};
pub use write::{write_pack, PackOptions, PackSummary};

use serde::{Deserialize, Serialize};

use crate::npy::Dtype;

/// The format name in `pack.json`.
pub const FORMAT: &str = "lensfind-pack";
/// The format version this code writes and reads. Bump it on any change a reader could misread.
pub const VERSION: u32 = 1;
/// Rows per checksummed block of `images.npy`: `--verify` names the damaged block's rows.
pub const BLOCK_ROWS: usize = 1024;

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

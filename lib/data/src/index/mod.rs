//! The index: which files make up which object, with its label and source.
//!
//! Building one ([`scan`]) scans directories (recursively), single files and glob patterns for `*_<band>.fits`,
//! groups the files into objects by id, and reports every problem instead of passing it silently. Reading one
//! ([`read_index`]) parses the CSV that `lens-index` prints: `id,label,source,g,r,i,z,y`.

mod csv;
mod scan;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

pub use self::csv::{read_index, read_index_input, write_index, write_problems};
pub use self::scan::scan;

/// Why an index could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("bad glob pattern {0:?}")]
    Pattern(String, #[source] glob::PatternError),
    #[error("glob pattern {0:?} matches nothing")]
    NoMatch(String),
    #[error("{0}: no such file or directory")]
    NoSuchRoot(String),
    #[error("opening index {}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("reading the header of {name}")]
    Header { name: String, source: ::csv::Error },
    #[error("{name} is not an index: header is {header:?}, expected {expected:?}")]
    NotAnIndex { name: String, header: String, expected: String },
    /// A row that cannot be read; `name` is the input (a path, or `<stdin>`).
    #[error("{name}, line {line}")]
    Row { name: String, line: usize, source: RowError },
}

/// What is wrong with one row of an index.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Csv(#[from] ::csv::Error),
    #[error("{got} fields, expected {expected}")]
    Fields { got: usize, expected: usize },
    #[error("empty id")]
    EmptyId,
    #[error("{what} {field:?} is not one of {allowed:?} or empty")]
    Value { what: &'static str, field: String, allowed: &'static [u8] },
    #[error("no path for band {0}")]
    NoPath(char),
}

/// The index header, in this order.
pub(crate) const HEADER: [&str; 8] = ["id", "label", "source", "g", "r", "i", "z", "y"];

/// One object of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub id: String,
    pub label: Option<u8>,
    pub source: Option<u8>,
    /// One file per band, in [`BANDS`](crate::naming::BANDS) order.
    pub paths: [PathBuf; 5],
}

/// Where a root's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRule {
    /// From the file name (`D<s>_L_...` = 1, `D<s>_N_...` = 0, `object_...` = unknown).
    FromName,
    /// Every object under this root has this label (data sorted into lens/non-lens directories).
    Fixed(u8),
}

/// Something to scan: a directory, a file, or a glob pattern; and how to label what is found there.
#[derive(Debug, Clone)]
pub struct Root {
    pub spec: String,
    pub label: LabelRule,
}

/// The kinds of problem the indexer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// An object lacks one or more bands; it is left out of the index.
    MissingBand,
    /// A second file for an id and band already seen; the first (in path order) is kept.
    Duplicate,
    /// A `.fits` file whose name fits neither naming convention; ignored.
    BadName,
    /// The name's label letter disagrees with the root's `--label`; the root's label is used.
    LabelConflict,
    /// A directory or file that could not be read, or a path that is not UTF-8; skipped.
    Unreadable,
}

impl ProblemKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MissingBand => "missing-band",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::BadName => "bad-name",
            ProblemKind::LabelConflict => "label-conflict",
            ProblemKind::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, with the path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The object id, when the name yielded one.
    pub id: String,
    pub path: PathBuf,
    pub detail: String,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub rows: Vec<IndexRow>,
    pub problems: Vec<Problem>,
    /// `.fits` files looked at.
    pub files: usize,
}

impl Scan {
    /// Problem counts by kind, in a fixed order.
    pub fn problem_counts(&self) -> Vec<(ProblemKind, usize)> {
        let mut counts: HashMap<ProblemKind, usize> = HashMap::new();
        for p in &self.problems {
            *counts.entry(p.kind).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests;

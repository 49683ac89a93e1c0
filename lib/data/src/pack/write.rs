//! Writing a pack: objects are loaded in parallel a chunk at a time and streamed to disk in index order, so memory
//! stays bounded whatever the size of the dataset; the pack is built in a temporary directory beside the target
//! and renamed into place only when complete.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::object::{load_object, Loaded, Standardize, MIN_STD};
use super::{hex, version_for, FileSum, ImagesSum, Manifest, NonFinite, PackDir, Standardization, BLOCK_ROWS, FORMAT};
use crate::index::IndexRow;
use crate::naming::BANDS;
use crate::npy::{self, Dtype};
use lensfind_core::output::{temp_beside, OutputError};
use lensfind_core::progress::Progress;
use lensfind_core::text::{csv_io_error, opt_u8};

/// Why a pack was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("image size must be positive")]
    EmptyImage,
    #[error("checking {}", path.display())]
    Check { path: PathBuf, source: io::Error },
    #[error("{} exists and is not a pack; refusing to replace it", path.display())]
    NotAPack { path: PathBuf },
    #[error("{} exists and is not a directory; refusing to replace it", path.display())]
    NotADirectory { path: PathBuf },
    #[error("creating {}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    /// An I/O failure on one of the pack's files, named as in the pack (`action`: creating, writing, syncing).
    #[error("{action} {file}")]
    File { action: &'static str, file: &'static str, source: io::Error },
    #[error("reading back {}", path.display())]
    ReadBack { path: PathBuf, source: io::Error },
    #[error("syncing {}", path.display())]
    Sync { path: PathBuf, source: io::Error },
    #[error("interrupted; no pack written")]
    Interrupted,
    #[error("{count} objects rejected, more than the {max} allowed; no pack written (first: {id}: {reason})")]
    TooManyRejected { count: usize, max: usize, id: String, reason: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// How to build a pack.
#[derive(Debug, Clone)]
pub struct PackOptions {
    pub height: usize,
    pub width: usize,
    pub dtype: Dtype,
    pub standardize: Standardize,
    /// More rejected objects than this is an error (and no pack is written).
    pub max_rejected: Option<usize>,
    /// Reject an object when more than this fraction of its values are NaN/Inf (1.0: never).
    pub max_nonfinite: f64,
    /// Objects loaded in parallel per step; bounds memory at ~chunk * 5*H*W * 8 bytes.
    pub chunk: usize,
    pub quiet: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            height: 41,
            width: 41,
            dtype: Dtype::Float32,
            standardize: Standardize::Cube,
            max_rejected: None,
            max_nonfinite: 1.0,
            chunk: 1024,
            quiet: true,
        }
    }
}

/// What a pack run did.
#[derive(Debug)]
pub struct PackSummary {
    pub manifest: Manifest,
    /// (id, reason) of each object set aside.
    pub rejected: Vec<(String, String)>,
    pub seconds: f64,
}

/// A temporary directory that is removed unless it is kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn file_error(action: &'static str, file: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::File { action, file, source }
}

/// CRC-32s of `images.npy` as it is written: of the data, and of each block of [`BLOCK_ROWS`] rows.
struct Sums {
    data: crc32fast::Hasher,
    block: crc32fast::Hasher,
    rows_in_block: usize,
    blocks: Vec<String>,
}

impl Sums {
    fn add_row(&mut self, bytes: &[u8]) {
        self.data.update(bytes);
        self.block.update(bytes);
        self.rows_in_block += 1;
        if self.rows_in_block == BLOCK_ROWS {
            let block = std::mem::replace(&mut self.block, crc32fast::Hasher::new());
            self.blocks.push(hex(block.finalize()));
            self.rows_in_block = 0;
        }
    }
}

/// `images.npy` and `meta.csv` being written in the temporary directory, and the counts for the manifest.
struct Writer {
    images: BufWriter<File>,
    meta: csv::Writer<File>,
    dtype: Dtype,
    bytes: Vec<u8>,
    sums: Sums,
    count: usize,
    lenses: usize,
    nonlenses: usize,
    nonfinite: NonFinite,
}

impl Writer {
    fn create(dir: &Path, opts: &PackOptions) -> Result<Writer, WriteError> {
        let file = File::create(PackDir(dir).images()).map_err(file_error("creating", PackDir::IMAGES))?;
        let mut images = BufWriter::with_capacity(4 << 20, file);
        let placeholder = npy::header(opts.dtype, &[0, 5, opts.height, opts.width]);
        images.write_all(&placeholder).map_err(file_error("writing", PackDir::IMAGES))?;
        let file = File::create(PackDir(dir).meta()).map_err(file_error("creating", PackDir::META))?;
        let mut meta = csv::Writer::from_writer(file);
        meta.write_record(["row", "id", "label", "source"])
            .map_err(|e| file_error("writing", PackDir::META)(csv_io_error(e)))?;
        Ok(Writer {
            images,
            meta,
            dtype: opts.dtype,
            bytes: vec![0u8; 5 * opts.height * opts.width * opts.dtype.size()],
            sums: Sums {
                data: crc32fast::Hasher::new(),
                block: crc32fast::Hasher::new(),
                rows_in_block: 0,
                blocks: vec![],
            },
            count: 0,
            lenses: 0,
            nonlenses: 0,
            nonfinite: NonFinite { values_replaced: 0, objects_affected: 0 },
        })
    }

    /// Appends one object: its pixels to `images.npy`, its row to `meta.csv`.
    fn push(&mut self, row: &IndexRow, obj: &Loaded) -> Result<(), WriteError> {
        if obj.nonfinite > 0 {
            self.nonfinite.values_replaced += obj.nonfinite;
            self.nonfinite.objects_affected += 1;
        }
        encode(&obj.pixels, self.dtype, &mut self.bytes);
        self.images.write_all(&self.bytes).map_err(file_error("writing", PackDir::IMAGES))?;
        self.sums.add_row(&self.bytes);
        self.meta
            .write_record([self.count.to_string().as_str(), &row.id, &opt_u8(row.label), &opt_u8(row.source)])
            .map_err(|e| file_error("writing", PackDir::META)(csv_io_error(e)))?;
        match row.label {
            Some(1) => self.lenses += 1,
            Some(_) => self.nonlenses += 1,
            None => {}
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the real `.npy` header, now that the row count is known (same length as the placeholder, rewritten
    /// in place), and syncs both files. Returns the sums of `images.npy` for the manifest.
    fn finish(mut self, opts: &PackOptions) -> Result<ImagesSum, WriteError> {
        if self.sums.rows_in_block > 0 {
            self.sums.blocks.push(hex(self.sums.block.clone().finalize()));
        }
        let header = npy::header(opts.dtype, &[self.count, 5, opts.height, opts.width]);
        let mut file = self.images.into_inner().map_err(|e| file_error("writing", PackDir::IMAGES)(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(file_error("writing", PackDir::IMAGES))?;
        file.write_all(&header).map_err(file_error("writing", PackDir::IMAGES))?;
        file.sync_all().map_err(file_error("syncing", PackDir::IMAGES))?;
        let mut whole = crc32fast::Hasher::new();
        whole.update(&header);
        whole.combine(&self.sums.data);
        self.meta.flush().map_err(file_error("writing", PackDir::META))?;
        Ok(ImagesSum {
            bytes: (header.len() + self.count * self.bytes.len()) as u64,
            data_offset: header.len() as u64,
            crc32: hex(whole.finalize()),
            block_rows: BLOCK_ROWS,
            block_crc32: self.sums.blocks,
        })
    }
}

/// Loads every object of `rows` (a chunk at a time, in parallel) and appends the good ones in index order.
/// Returns the (id, reason) of every object set aside.
fn load_all(
    rows: &[IndexRow],
    writer: &mut Writer,
    opts: &PackOptions,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> Result<Vec<(String, String)>, WriteError> {
    let mut rejected: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(opts.chunk.max(1)) {
        if interrupted.load(Ordering::Relaxed) {
            return Err(WriteError::Interrupted);
        }
        let loaded: Vec<_> = chunk
            .par_iter()
            .map(|row| {
                let r = load_object(row, opts.height, opts.width, opts.standardize, opts.max_nonfinite);
                progress.inc(1);
                r
            })
            .collect();
        for (row, result) in chunk.iter().zip(loaded) {
            if !seen.insert(row.id.as_str()) {
                rejected.push((row.id.clone(), "duplicate id in the index; only its first row is used".into()));
                continue;
            }
            match result {
                Ok(obj) => writer.push(row, &obj)?,
                Err(reason) => rejected.push((row.id.clone(), reason)),
            }
        }
    }
    Ok(rejected)
}

fn write_rejected(path: &Path, rejected: &[(String, String)]) -> Result<(), WriteError> {
    let csv_error = |e| file_error("writing", PackDir::REJECTED)(csv_io_error(e));
    let file = File::create(path).map_err(file_error("creating", PackDir::REJECTED))?;
    let mut rej = csv::Writer::from_writer(file);
    rej.write_record(["id", "reason"]).map_err(csv_error)?;
    for (id, reason) in rejected {
        rej.write_record([id, reason]).map_err(csv_error)?;
    }
    rej.flush().map_err(file_error("writing", PackDir::REJECTED))
}

fn csv_sum(path: &Path) -> Result<FileSum, WriteError> {
    let bytes = fs::read(path).map_err(|source| WriteError::ReadBack { path: path.into(), source })?;
    Ok(FileSum { bytes: bytes.len() as u64, crc32: hex(crc32fast::hash(&bytes)) })
}

fn sync(path: &Path) -> Result<(), WriteError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|source| WriteError::Sync { path: path.into(), source })
}

/// Builds the pack for `rows` at `out`. `interrupted` is polled between chunks (set it from a signal handler):
/// when it is set, the temporary directory is removed and an error returned.
pub fn write_pack(
    rows: &[IndexRow],
    out: &Path,
    opts: &PackOptions,
    tool: &str,
    interrupted: &AtomicBool,
) -> Result<PackSummary, WriteError> {
    if opts.height == 0 || opts.width == 0 {
        return Err(WriteError::EmptyImage);
    }
    check_target(out)?;
    let tool_name = tool.split(' ').next().unwrap_or(tool);
    lensfind_core::output::clean_stale_temps(out, tool_name);
    let mut tmp = TempDir { path: temp_beside(out, "tmp"), keep: false };
    fs::create_dir(&tmp.path).map_err(|source| WriteError::CreateDir { path: tmp.path.clone(), source })?;

    let mut writer = Writer::create(&tmp.path, opts)?;
    let progress = Progress::new(tool_name, "objects", rows.len() as u64, opts.quiet);
    let rejected = load_all(rows, &mut writer, opts, &progress, interrupted)?;
    progress.finish();
    if let Some(max) = opts.max_rejected.filter(|&max| rejected.len() > max) {
        let (id, reason) = rejected[0].clone();
        return Err(WriteError::TooManyRejected { count: rejected.len(), max, id, reason });
    }
    let (count, lenses, nonlenses) = (writer.count, writer.lenses, writer.nonlenses);
    let nonfinite = writer.nonfinite.clone();
    let images = writer.finish(opts)?;
    let rejected_path = PackDir(&tmp.path).rejected();
    write_rejected(&rejected_path, &rejected)?;

    let manifest = Manifest {
        format: FORMAT.into(),
        version: version_for(opts.standardize),
        count,
        bands: BANDS.iter().map(|b| b.to_string()).collect(),
        height: opts.height,
        width: opts.width,
        dtype: opts.dtype,
        standardization: Standardization { mode: opts.standardize, min_std: MIN_STD },
        nonfinite,
        rejected: rejected.len(),
        lenses,
        nonlenses,
        tool: tool.to_string(),
        images,
        meta: csv_sum(&PackDir(&tmp.path).meta())?,
        rejected_list: csv_sum(&rejected_path)?,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest has only string keys and finite numbers");
    fs::write(PackDir(&tmp.path).manifest(), text + "\n").map_err(file_error("writing", PackDir::MANIFEST))?;
    for f in [PackDir::META, PackDir::REJECTED, PackDir::MANIFEST] {
        sync(&tmp.path.join(f))?;
    }
    if interrupted.load(Ordering::Relaxed) {
        return Err(WriteError::Interrupted);
    }
    put_in_place(&tmp.path, out)?;
    tmp.keep = true;
    Ok(PackSummary { manifest, rejected, seconds: progress.elapsed() })
}

/// Encodes f64 pixels as little-endian f32 or f16.
fn encode(pixels: &[f64], dtype: Dtype, out: &mut [u8]) {
    match dtype {
        Dtype::Float32 => {
            for (dst, v) in out.chunks_exact_mut(4).zip(pixels) {
                dst.copy_from_slice(&(*v as f32).to_le_bytes());
            }
        }
        Dtype::Float16 => {
            for (dst, v) in out.chunks_exact_mut(2).zip(pixels) {
                dst.copy_from_slice(&half::f16::from_f64(*v).to_le_bytes());
            }
        }
    }
}

/// A target may be replaced only if it is absent, an empty directory, or a pack (it has a pack.json).
fn check_target(out: &Path) -> Result<(), WriteError> {
    let checking = |source| WriteError::Check { path: out.into(), source };
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(checking(e)),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(out).map_err(checking)?.next().is_none();
            if empty || PackDir(out).is_pack() {
                Ok(())
            } else {
                Err(WriteError::NotAPack { path: out.into() })
            }
        }
        Ok(_) => Err(WriteError::NotADirectory { path: out.into() }),
    }
}

/// Renames the finished temporary directory to `out`, replacing an existing pack there (checked again, in case
/// something else appeared at `out` while we worked).
fn put_in_place(tmp: &Path, out: &Path) -> Result<(), WriteError> {
    if fs::symlink_metadata(out).is_ok() {
        check_target(out)?;
    }
    Ok(lensfind_core::output::move_dir_into_place(tmp, out)?)
}

//! Writing a pack: objects are loaded in parallel a chunk at a time and streamed to disk in index order, so memory
//! stays bounded whatever the size of the dataset; the pack is built in a temporary directory beside the target
//! and renamed into place only when complete.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::object::{load_object, Standardize, MIN_STD};
use super::{hex, FileSum, ImagesSum, Manifest, NonFinite, Standardization, BLOCK_ROWS, FORMAT, VERSION};
use crate::index::IndexRow;
use crate::naming::BANDS;
use crate::npy::{self, Dtype};
use crate::output::temp_beside;
use crate::progress::Progress;

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

/// A CRC-32 over bytes as they are written, whole-file and per block of rows.
struct Sums {
    file: crc32fast::Hasher,
    data: crc32fast::Hasher,
    block: crc32fast::Hasher,
    rows_in_block: usize,
    blocks: Vec<String>,
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

fn csv_sum(path: &Path) -> Result<FileSum> {
    let bytes = fs::read(path).with_context(|| format!("reading back {}", path.display()))?;
    Ok(FileSum { bytes: bytes.len() as u64, crc32: hex(crc32fast::hash(&bytes)) })
}

fn sync(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", path.display()))
}

/// Builds the pack for `rows` at `out`. `interrupted` is polled between chunks (set it from a signal handler):
/// when it is set, the temporary directory is removed and an error returned.
pub fn write_pack(
    rows: &[IndexRow],
    out: &Path,
    opts: &PackOptions,
    tool: &str,
    interrupted: &AtomicBool,
) -> Result<PackSummary> {
    if opts.height == 0 || opts.width == 0 {
        bail!("image size must be positive");
    }
    check_target(out)?;
    crate::output::clean_stale_temps(out, tool.split(' ').next().unwrap_or(tool));
    let tmp = TempDir { path: temp_beside(out, "tmp"), keep: false };
    fs::create_dir(&tmp.path).with_context(|| format!("creating {}", tmp.path.display()))?;
    let npix = opts.height * opts.width;
    let row_bytes = 5 * npix * opts.dtype.size();

    let images_path = tmp.path.join("images.npy");
    let mut images = BufWriter::with_capacity(4 << 20, File::create(&images_path).context("creating images.npy")?);
    let placeholder = npy::header(opts.dtype, &[0, 5, opts.height, opts.width]);
    images.write_all(&placeholder).context("writing images.npy")?;
    let mut meta = csv::Writer::from_path(tmp.path.join("meta.csv")).context("creating meta.csv")?;
    meta.write_record(["row", "id", "label", "source"])?;

    let progress = Progress::new(tool.split(' ').next().unwrap_or(tool), "objects", rows.len() as u64, opts.quiet);
    let mut sums = Sums {
        file: crc32fast::Hasher::new(),
        data: crc32fast::Hasher::new(),
        block: crc32fast::Hasher::new(),
        rows_in_block: 0,
        blocks: Vec::new(),
    };
    let mut rejected: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
    let (mut count, mut lenses, mut nonlenses) = (0usize, 0usize, 0usize);
    let mut nonfinite = NonFinite { values_replaced: 0, objects_affected: 0 };
    let mut bytes = vec![0u8; row_bytes];

    for chunk in rows.chunks(opts.chunk.max(1)) {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted; no pack written");
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
            let obj = match result {
                Ok(obj) => obj,
                Err(reason) => {
                    rejected.push((row.id.clone(), reason));
                    continue;
                }
            };
            if obj.nonfinite > 0 {
                nonfinite.values_replaced += obj.nonfinite;
                nonfinite.objects_affected += 1;
            }
            encode(&obj.pixels, opts.dtype, &mut bytes);
            images.write_all(&bytes).context("writing images.npy")?;
            sums.data.update(&bytes);
            sums.block.update(&bytes);
            sums.rows_in_block += 1;
            if sums.rows_in_block == BLOCK_ROWS {
                let block = std::mem::replace(&mut sums.block, crc32fast::Hasher::new());
                sums.blocks.push(hex(block.finalize()));
                sums.rows_in_block = 0;
            }
            let label = row.label.map_or_else(String::new, |l| l.to_string());
            let source = row.source.map_or_else(String::new, |s| s.to_string());
            meta.write_record([count.to_string().as_str(), &row.id, &label, &source])?;
            match row.label {
                Some(1) => lenses += 1,
                Some(_) => nonlenses += 1,
                None => {}
            }
            count += 1;
        }
    }
    progress.finish();
    if sums.rows_in_block > 0 {
        sums.blocks.push(hex(sums.block.clone().finalize()));
    }
    if let Some(max) = opts.max_rejected {
        if rejected.len() > max {
            bail!(
                "{} objects rejected, more than --max-rejected {max}; no pack written (first: {}: {})",
                rejected.len(),
                rejected[0].0,
                rejected[0].1
            );
        }
    }

    // The real header, now that the row count is known: same length as the placeholder, rewritten in place.
    let header = npy::header(opts.dtype, &[count, 5, opts.height, opts.width]);
    let mut file = images.into_inner().map_err(|e| e.into_error()).context("writing images.npy")?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header).context("writing images.npy")?;
    file.sync_all().context("syncing images.npy")?;
    sums.file.update(&header);
    sums.file.combine(&sums.data);
    meta.flush().context("writing meta.csv")?;
    drop(meta);

    let rejected_path = tmp.path.join("rejected.csv");
    let mut rej = csv::Writer::from_path(&rejected_path).context("creating rejected.csv")?;
    rej.write_record(["id", "reason"])?;
    for (id, reason) in &rejected {
        rej.write_record([id, reason])?;
    }
    rej.flush().context("writing rejected.csv")?;
    drop(rej);

    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
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
        images: ImagesSum {
            bytes: (header.len() + count * row_bytes) as u64,
            data_offset: header.len() as u64,
            crc32: hex(sums.file.finalize()),
            block_rows: BLOCK_ROWS,
            block_crc32: sums.blocks,
        },
        meta: csv_sum(&tmp.path.join("meta.csv"))?,
        rejected_list: csv_sum(&rejected_path)?,
    };
    let manifest_path = tmp.path.join("pack.json");
    fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)? + "\n").context("writing pack.json")?;
    for f in ["meta.csv", "rejected.csv", "pack.json"] {
        sync(&tmp.path.join(f))?;
    }
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted; no pack written");
    }
    let mut tmp = tmp;
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
fn check_target(out: &Path) -> Result<()> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("checking {}", out.display())),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(out)?.next().is_none();
            if empty || out.join("pack.json").is_file() {
                Ok(())
            } else {
                bail!("{} exists and is not a pack; refusing to replace it", out.display())
            }
        }
        Ok(_) => bail!("{} exists and is not a directory; refusing to replace it", out.display()),
    }
}

/// Renames the finished temporary directory to `out`, replacing an existing pack there (checked again, in case
/// something else appeared at `out` while we worked).
fn put_in_place(tmp: &Path, out: &Path) -> Result<()> {
    if fs::symlink_metadata(out).is_ok() {
        check_target(out)?;
    }
    crate::output::replace_dir(tmp, out)
}

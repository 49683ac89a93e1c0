//! Opening a pack (memory-mapped, with cheap consistency checks) and verifying it against its checksums.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use ndarray::ArrayView4;
use ndarray_npy::ViewNpyExt;

use super::{hex, FileSum, Manifest, FORMAT, VERSION};
use crate::npy::{self, Dtype};

/// One row of `meta.csv`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct MetaRow {
    pub row: usize,
    pub id: String,
    pub label: Option<u8>,
    pub source: Option<u8>,
}

/// An open pack: manifest, metadata, and the memory-mapped images.
pub struct Pack {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub meta: Vec<MetaRow>,
    mmap: Mmap,
}

/// Reads and checks `pack.json`: the format and a version this code understands.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("pack.json");
    let text = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_manifest(&text, &path)
}

/// Parses and checks the text of a `pack.json`; `path` names it in errors.
pub fn parse_manifest(text: &[u8], path: &Path) -> Result<Manifest> {
    let value: serde_json::Value =
        serde_json::from_slice(text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        bail!("{} is not a lensfind pack manifest (format {format:?})", path.display());
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) {
        bail!(
            "{} is pack format version {version}; this lensfind reads version {VERSION} only (repack with this \
             version's lens-pack)",
            path.display()
        );
    }
    serde_json::from_value(value).with_context(|| format!("{} has missing or malformed fields", path.display()))
}

impl Pack {
    /// Opens a pack. Checks what is cheap to check: the manifest, the .npy header against it, the file size
    /// against the row count, and meta.csv's rows. Use [`verify`] for the checksums.
    pub fn open(dir: &Path) -> Result<Pack> {
        let manifest = read_manifest(dir)?;
        let images_path = dir.join("images.npy");
        let file = File::open(&images_path).with_context(|| format!("opening {}", images_path.display()))?;
        let len = file.metadata()?.len();
        if len != manifest.images.bytes {
            bail!(
                "{} is {len} bytes, the manifest says {}: the pack is damaged or incomplete",
                images_path.display(),
                manifest.images.bytes
            );
        }
        let data_bytes = [manifest.count, 5, manifest.height, manifest.width, manifest.dtype.size()]
            .into_iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d as u64));
        if data_bytes.and_then(|d| d.checked_add(manifest.images.data_offset)) != Some(len) {
            bail!(
                "{}: {len} bytes cannot hold {} rows of 5x{}x{} {:?} after a {}-byte header: the manifest is damaged",
                images_path.display(),
                manifest.count,
                manifest.height,
                manifest.width,
                manifest.dtype,
                manifest.images.data_offset
            );
        }
        // SAFETY: the pack is written once and renamed into place, never modified in place by lensfind; a user
        // editing it while we read is outside what any reader can guard against.
        let mmap = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", images_path.display()))?;
        let (dtype, shape, offset) =
            npy::parse_header(&mmap).with_context(|| format!("reading {}", images_path.display()))?;
        let want = [manifest.count, 5, manifest.height, manifest.width];
        if dtype != manifest.dtype || shape != want || offset as u64 != manifest.images.data_offset {
            bail!(
                "{}: header says {:?} {shape:?}, the manifest {:?} {want:?}",
                images_path.display(),
                dtype,
                manifest.dtype
            );
        }
        let meta_path = dir.join("meta.csv");
        let meta_bytes = fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?;
        if sum_mismatch(&meta_bytes, &manifest.meta).is_some() {
            bail!("{} does not match its checksum in pack.json: it was edited or damaged", meta_path.display());
        }
        let meta = read_meta_from(&meta_bytes[..], &meta_path)?;
        if meta.len() != manifest.count || meta.iter().enumerate().any(|(i, m)| m.row != i) {
            bail!("{}: rows do not match the {} images", meta_path.display(), manifest.count);
        }
        let pack = Pack { dir: dir.to_path_buf(), manifest, meta, mmap };
        // A cheap sample of the images: the first and the last checksum block (at most 2 x 1024 rows).
        let blocks = pack.manifest.images.block_crc32.len();
        pack.check_blocks((blocks > 0).then_some(0).into_iter().chain((blocks > 1).then_some(blocks - 1)))?;
        Ok(pack)
    }

    /// Checks the images of `rows` against their block checksums (each block of
    /// [`BLOCK_ROWS`](super::BLOCK_ROWS) rows once): costs one read of the blocks concerned, so a tool that is
    /// about to read those rows anyway can afford it. An error names the damaged rows.
    pub fn check_rows(&self, rows: impl IntoIterator<Item = usize>) -> Result<()> {
        let per_block = self.manifest.images.block_rows.max(1);
        let mut blocks: Vec<usize> = rows.into_iter().map(|r| r / per_block).collect();
        blocks.sort_unstable();
        blocks.dedup();
        self.check_blocks(blocks)
    }

    fn check_blocks(&self, blocks: impl IntoIterator<Item = usize>) -> Result<()> {
        let images = &self.manifest.images;
        let per_block = images.block_rows.max(1);
        let row_bytes = self.row_len() * self.manifest.dtype.size();
        let sums = &images.block_crc32;
        if sums.len() != self.len().div_ceil(per_block) {
            bail!("{}: {} block checksums for {} rows", self.dir.join("pack.json").display(), sums.len(), self.len());
        }
        for b in blocks {
            let first = b * per_block;
            let last = (first + per_block).min(self.len());
            let start = images.data_offset as usize + first * row_bytes;
            let data = &self.mmap[start..start + (last - first) * row_bytes];
            if hex(crc32fast::hash(data)) != sums[b] {
                bail!(
                    "{}: rows {first}-{} do not match their checksum in pack.json: the images were edited or \
                     damaged (lens-pack --verify checks the whole pack)",
                    self.dir.join("images.npy").display(),
                    last - 1
                );
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.manifest.count
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.count == 0
    }

    /// Values per object (5*H*W).
    pub fn row_len(&self) -> usize {
        5 * self.manifest.height * self.manifest.width
    }

    /// The whole float32 array as an `[N, 5, H, W]` view (None for a float16 pack).
    pub fn images_f32(&self) -> Result<Option<ArrayView4<'_, f32>>> {
        if self.manifest.dtype != Dtype::Float32 {
            return Ok(None);
        }
        let view = ArrayView4::<f32>::view_npy(&self.mmap)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("viewing {}", self.dir.join("images.npy").display()))?;
        Ok(Some(view))
    }

    /// Row `i` as f32 values, converting from float16 if need be.
    pub fn row_f32(&self, i: usize, out: &mut [f32]) {
        assert!(i < self.len(), "row {i} out of range");
        let n = self.row_len();
        let size = self.manifest.dtype.size();
        let start = self.manifest.images.data_offset as usize + i * n * size;
        let bytes = &self.mmap[start..start + n * size];
        match self.manifest.dtype {
            Dtype::Float32 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::Float16 => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
        }
    }
}

/// Reads `meta.csv` from any reader; `path` names it in errors.
pub fn read_meta_from<R: std::io::Read>(input: R, path: &Path) -> Result<Vec<MetaRow>> {
    let mut r = csv::Reader::from_reader(input);
    let mut rows = Vec::new();
    for (i, rec) in r.deserialize().enumerate() {
        let row: MetaRow = rec.with_context(|| format!("{}, line {}", path.display(), i + 2))?;
        rows.push(row);
    }
    Ok(rows)
}

/// How `bytes` differ from the file the manifest describes (size first, then checksum); None when they match.
fn sum_mismatch(bytes: &[u8], want: &FileSum) -> Option<String> {
    if bytes.len() as u64 != want.bytes {
        Some(format!("{} bytes, manifest says {}", bytes.len(), want.bytes))
    } else if hex(crc32fast::hash(bytes)) != want.crc32 {
        Some("checksum mismatch".into())
    } else {
        None
    }
}

fn check_sum(path: &Path, want: &FileSum, problems: &mut Vec<String>) {
    let problem = match fs::read(path) {
        Err(e) => Some(e.to_string()),
        Ok(bytes) => sum_mismatch(&bytes, want),
    };
    if let Some(p) = problem {
        problems.push(format!("{}: {p}", path.display()));
    }
}

/// Checks every file of a pack against the manifest's sizes and checksums. Returns the problems found (empty for
/// a sound pack); an error only when the manifest itself cannot be read.
pub fn verify(dir: &Path) -> Result<Vec<String>> {
    let manifest = read_manifest(dir)?;
    let mut problems = Vec::new();
    check_sum(&dir.join("meta.csv"), &manifest.meta, &mut problems);
    check_sum(&dir.join("rejected.csv"), &manifest.rejected_list, &mut problems);
    let images_path = dir.join("images.npy");
    let file = match File::open(&images_path) {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("{}: {e}", images_path.display()));
            return Ok(problems);
        }
    };
    let len = file.metadata()?.len();
    if len != manifest.images.bytes {
        problems.push(format!("{}: {len} bytes, manifest says {}", images_path.display(), manifest.images.bytes));
        return Ok(problems);
    }
    // SAFETY: read-only map of a file we only read.
    let mmap = unsafe { Mmap::map(&file) }?;
    if hex(crc32fast::hash(&mmap)) != manifest.images.crc32 {
        problems.push(format!("{}: checksum mismatch", images_path.display()));
        let offset = manifest.images.data_offset as usize;
        let row_bytes = 5 * manifest.height * manifest.width * manifest.dtype.size();
        let block_bytes = manifest.images.block_rows * row_bytes;
        let data = mmap.get(offset..).unwrap_or(&[]);
        for (k, (block, want)) in data.chunks(block_bytes.max(1)).zip(&manifest.images.block_crc32).enumerate() {
            if hex(crc32fast::hash(block)) != *want {
                let first = k * manifest.images.block_rows;
                let last = (first + block.len() / row_bytes.max(1)).saturating_sub(1);
                problems.push(format!("{}: rows {first}-{last} are damaged", images_path.display()));
            }
        }
        let header = npy::header(manifest.dtype, &[manifest.count, 5, manifest.height, manifest.width]);
        if mmap.get(..offset) != Some(&header[..]) {
            problems.push(format!("{}: the .npy header is damaged", images_path.display()));
        }
    }
    Ok(problems)
}

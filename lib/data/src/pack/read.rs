//! Opening a pack (memory-mapped, with cheap consistency checks) and verifying it against its checksums.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::ArrayView4;
use ndarray_npy::ViewNpyExt;

use super::{hex, FileSum, Manifest, PackDir, PackError, FORMAT, VERSION, VERSION_NOISE};
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
pub fn read_manifest(dir: &Path) -> Result<Manifest, PackError> {
    let path = PackDir(dir).manifest();
    let text = fs::read(&path).map_err(|source| PackError::Read { path: path.clone(), source })?;
    parse_manifest(&text, &path)
}

/// Parses and checks the text of a `pack.json`; `path` names it in errors.
pub fn parse_manifest(text: &[u8], path: &Path) -> Result<Manifest, PackError> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|source| PackError::Json { path: path.into(), source })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(PackError::Format { path: path.into(), format: format.to_string() });
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) && version != u64::from(VERSION_NOISE) {
        return Err(PackError::Version { path: path.into(), version });
    }
    serde_json::from_value(value).map_err(|source| PackError::Fields { path: path.into(), source })
}

impl Pack {
    /// Opens a pack. Checks what is cheap to check: the manifest, the .npy header against it, the file size
    /// against the row count, and meta.csv's rows. Use [`verify`] for the checksums.
    pub fn open(dir: &Path) -> Result<Pack, PackError> {
        let manifest = read_manifest(dir)?;
        let mmap = map_images(dir, &manifest)?;
        let meta = read_meta(dir, &manifest)?;
        let pack = Pack { dir: dir.to_path_buf(), manifest, meta, mmap };
        // A cheap sample of the images: the first and the last checksum block (at most 2 x 1024 rows).
        let blocks = pack.manifest.images.block_crc32.len();
        pack.check_blocks((blocks > 0).then_some(0).into_iter().chain((blocks > 1).then_some(blocks - 1)))?;
        Ok(pack)
    }

    /// Checks the images of `rows` against their block checksums (each block of
    /// `block_rows` rows of the manifest once): costs one read of the blocks concerned, so a tool that is
    /// about to read those rows anyway can afford it. An error names the damaged rows.
    pub fn check_rows(&self, rows: impl IntoIterator<Item = usize>) -> Result<(), PackError> {
        let per_block = self.manifest.images.block_rows.max(1);
        let mut blocks: Vec<usize> = rows.into_iter().map(|r| r / per_block).collect();
        blocks.sort_unstable();
        blocks.dedup();
        self.check_blocks(blocks)
    }

    fn check_blocks(&self, blocks: impl IntoIterator<Item = usize>) -> Result<(), PackError> {
        let images = &self.manifest.images;
        let per_block = images.block_rows.max(1);
        let row_bytes = self.row_len() * self.manifest.dtype.size();
        let sums = &images.block_crc32;
        if sums.len() != self.len().div_ceil(per_block) {
            let path = PackDir(&self.dir).manifest();
            return Err(PackError::BlockCount { path, sums: sums.len(), rows: self.len() });
        }
        for b in blocks {
            let first = b * per_block;
            let last = (first + per_block).min(self.len());
            let start = images.data_offset as usize + first * row_bytes;
            let data = &self.mmap[start..start + (last - first) * row_bytes];
            if hex(crc32fast::hash(data)) != sums[b] {
                return Err(PackError::Block { path: PackDir(&self.dir).images(), first, last: last - 1 });
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
    pub fn images_f32(&self) -> Result<Option<ArrayView4<'_, f32>>, PackError> {
        if self.manifest.dtype != Dtype::Float32 {
            return Ok(None);
        }
        let view = ArrayView4::<f32>::view_npy(&self.mmap)
            .map_err(|source| PackError::View { path: PackDir(&self.dir).images(), source })?;
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

/// Maps `images.npy` after checking its size and .npy header against the manifest.
fn map_images(dir: &Path, manifest: &Manifest) -> Result<Mmap, PackError> {
    let path = PackDir(dir).images();
    let file = File::open(&path).map_err(|source| PackError::Open { path: path.clone(), source })?;
    let len = file.metadata().map_err(|source| PackError::Read { path: path.clone(), source })?.len();
    if len != manifest.images.bytes {
        return Err(PackError::Size { path, len, expected: manifest.images.bytes });
    }
    let data_bytes = [manifest.count, 5, manifest.height, manifest.width, manifest.dtype.size()]
        .into_iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(d as u64));
    if data_bytes.and_then(|d| d.checked_add(manifest.images.data_offset)) != Some(len) {
        return Err(PackError::Geometry { path, len, manifest: Box::new(manifest.clone()) });
    }
    // SAFETY: the pack is written once and renamed into place, never modified in place by lensfind; a user
    // editing it while we read is outside what any reader can guard against.
    let mmap = unsafe { Mmap::map(&file) }.map_err(|source| PackError::Map { path: path.clone(), source })?;
    let (dtype, shape, offset) =
        npy::parse_header(&mmap).map_err(|source| PackError::Npy { path: path.clone(), source })?;
    let want = [manifest.count, 5, manifest.height, manifest.width];
    if dtype != manifest.dtype || shape != want || offset as u64 != manifest.images.data_offset {
        return Err(PackError::Header { path, dtype, shape, expected_dtype: manifest.dtype, expected_shape: want });
    }
    Ok(mmap)
}

/// Reads `meta.csv`, checked against its checksum and the row count.
fn read_meta(dir: &Path, manifest: &Manifest) -> Result<Vec<MetaRow>, PackError> {
    let path = PackDir(dir).meta();
    let bytes = fs::read(&path).map_err(|source| PackError::Read { path: path.clone(), source })?;
    if sum_mismatch(&bytes, &manifest.meta).is_some() {
        return Err(PackError::MetaSum { path });
    }
    let meta = read_meta_from(&bytes[..], &path)?;
    if meta.len() != manifest.count || meta.iter().enumerate().any(|(i, m)| m.row != i) {
        return Err(PackError::MetaRows { path, count: manifest.count });
    }
    Ok(meta)
}

/// Reads `meta.csv` from any reader; `path` names it in errors.
fn read_meta_from<R: std::io::Read>(input: R, path: &Path) -> Result<Vec<MetaRow>, PackError> {
    let mut r = csv::Reader::from_reader(input);
    let mut rows = Vec::new();
    for (i, rec) in r.deserialize().enumerate() {
        let row: MetaRow =
            rec.map_err(|source| PackError::MetaRow { path: path.to_path_buf(), line: i + 2, source })?;
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
pub fn verify(dir: &Path) -> Result<Vec<String>, PackError> {
    let manifest = read_manifest(dir)?;
    let mut problems = Vec::new();
    check_sum(&PackDir(dir).meta(), &manifest.meta, &mut problems);
    check_sum(&PackDir(dir).rejected(), &manifest.rejected_list, &mut problems);
    let images_path = PackDir(dir).images();
    let file = match File::open(&images_path) {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("{}: {e}", images_path.display()));
            return Ok(problems);
        }
    };
    let len = file.metadata().map_err(|source| PackError::Read { path: images_path.clone(), source })?.len();
    if len != manifest.images.bytes {
        problems.push(format!("{}: {len} bytes, manifest says {}", images_path.display(), manifest.images.bytes));
        return Ok(problems);
    }
    // SAFETY: read-only map of a file we only read.
    let mmap = unsafe { Mmap::map(&file) }.map_err(|source| PackError::Map { path: images_path.clone(), source })?;
    check_images(&mmap, &manifest, &images_path, &mut problems);
    Ok(problems)
}

/// Checks the bytes of `images.npy` against the whole-file checksum, and on a mismatch names the damaged blocks.
fn check_images(mmap: &[u8], manifest: &Manifest, images_path: &Path, problems: &mut Vec<String>) {
    if hex(crc32fast::hash(mmap)) == manifest.images.crc32 {
        return;
    }
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

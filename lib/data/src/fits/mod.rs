//! Reading one band image out of a challenge FITS file, and writing such files (for lens-synth).
//!
//! Reading goes through cfitsio's C API (`fitsio::sys`) rather than fitsio's high-level wrapper, for three reasons
//! that matter on a million real files: we open the file ourselves and hand cfitsio the bytes, so the path is taken
//! literally (no extended-filename syntax: `[`, `!` or `-` in a name mean nothing) and a file costs one read; every
//! cfitsio status becomes an error value instead of a panic; and we read exactly the header keywords we need.
//!
//! - `header`: our own checks of the header cards, before cfitsio sees them;
//! - `cfitsio`: the file in memory and the cfitsio calls;
//! - `write`: writing both challenge layouts (lens-synth, tests).

mod cfitsio;
mod header;
mod write;

use std::path::Path;

use fitsio::sys;

use crate::naming::BANDS;
use cfitsio::Fits;

pub use write::{write_image_file, write_table_file};

/// Why a band image could not be read. The `Display` text is what ends up in `rejected.csv`.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FitsError {
    #[error("cannot open: {0}")]
    Open(String),
    /// A status that cfitsio returned, with its text.
    #[error("{0}")]
    Cfitsio(String),
    #[error("cannot open: not a FITS file: it does not begin with SIMPLE =")]
    NotFits,
    /// A header byte outside printable ASCII, which some of cfitsio's fixed buffers cannot take.
    #[error("header of HDU {hdu} holds a byte 0x{byte:02x} at offset {offset}: FITS headers are printable ASCII")]
    HeaderByte { hdu: usize, byte: u8, offset: usize },
    /// An unquoted value longer than any number, which cfitsio 4.2 copies into a fixed buffer.
    #[error("header of HDU {hdu}: the value of {key} is {len} characters and not a quoted string")]
    LongValue { hdu: usize, key: String, len: usize },
    #[error("no image HDU with data and no table with a column band_{0}")]
    NoImage(char),
    #[error("shape {got} where {want} was expected")]
    Shape { got: String, want: String },
    #[error("table has {0} rows, expected exactly 1")]
    Rows(i64),
    #[error("file is truncated: {0} bytes, less than its headers declare")]
    Truncated(u64),
    #[error("column band_{0} is not numeric")]
    NotNumeric(char),
    #[error("table rows are {naxis1} bytes (NAXIS1) but its columns (TFORMn) add up to {columns}")]
    RowWidth { naxis1: i64, columns: i64 },
}

fn shape_text(dims: &[i64]) -> String {
    // FITS lists NAXIS1 (the fastest axis, width) first; people read shapes as HxW.
    dims.iter().rev().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// Reads the `height x width` image of band `band` (index into [`BANDS`]) from `path` into `out` (row-major).
///
/// Accepts the two challenge layouts: the image in the first image HDU that has data (blind test files), or a
/// one-row binary table with a vector column `band_<b>` of `height*width` numbers, with or without TDIM (training
/// files). Any numeric type is converted to f64. Values are returned as stored: NaN and Inf are not touched here.
pub fn read_band(path: &Path, band: usize, height: usize, width: usize, out: &mut [f64]) -> Result<(), FitsError> {
    let data = read_file(path)?;
    read_band_bytes(data, band, height, width, out)
}

/// Band files larger than this are refused unread: a 41x41 float64 file is 20 kB, and an index row pointing at a
/// huge file (or a device) must not make the reader allocate its size.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads a whole band file. Only regular files (or links to them) are read: opening a FIFO would block forever
/// and a device such as /dev/zero would never end.
fn read_file(path: &Path) -> Result<Vec<u8>, FitsError> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| FitsError::Open(e.to_string()))?;
    if meta.is_dir() {
        return Err(FitsError::Open("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(FitsError::Open("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FitsError::Open(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} a band file may have",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| FitsError::Open(e.to_string()))?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    // The file may have grown since the stat: read at most one byte past the limit to notice.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut data).map_err(|e| FitsError::Open(e.to_string()))?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(FitsError::Open(format!("more than the {MAX_FILE_BYTES} bytes a band file may have")));
    }
    Ok(data)
}

/// [`read_band`] on the bytes of a whole file, already in memory.
pub fn read_band_bytes(
    data: Vec<u8>,
    band: usize,
    height: usize,
    width: usize,
    out: &mut [f64],
) -> Result<(), FitsError> {
    assert_eq!(out.len(), height * width, "output buffer must hold height*width values");
    let band_letter = BANDS[band];
    let column_name = format!("band_{band_letter}");
    let mut f = Fits::from_bytes(data)?;
    let n = f.num_hdus()?;
    for hdu in 1..=n {
        match f.move_to(hdu)? as u32 {
            sys::IMAGE_HDU if read_image_hdu(&mut f, height, width, out)? => return Ok(()),
            sys::BINARY_TBL => {
                if let Some(col) = f.column(&column_name)? {
                    return read_table_hdu(&mut f, col, band_letter, (height, width), out);
                }
            }
            _ => {}
        }
    }
    // cfitsio silently drops an HDU whose header was cut off; say so rather than "no image".
    let len = f.mem.len as u64;
    if len % 2880 != 0 {
        return Err(FitsError::Truncated(len));
    }
    Err(FitsError::NoImage(band_letter))
}

/// Reads the current image HDU into `out`; `false` when it holds no data (the empty primary HDU of the training
/// files), so the search goes on.
fn read_image_hdu(f: &mut Fits, height: usize, width: usize, out: &mut [f64]) -> Result<bool, FitsError> {
    let want = [width as i64, height as i64];
    let dims = f.image_dims()?;
    if dims.is_empty() || dims.contains(&0) {
        return Ok(false);
    }
    // Trailing length-1 axes (41x41x1) are harmless; anything else must be exactly HxW.
    let significant: Vec<i64> =
        dims.iter().copied().rev().skip_while(|&d| d == 1).collect::<Vec<_>>().into_iter().rev().collect();
    if significant != want {
        return Err(FitsError::Shape { got: shape_text(&dims), want: shape_text(&want) });
    }
    let bitpix = f.key_i64(c"BITPIX")?;
    f.require_data((bitpix.abs() / 8) * (height * width) as i64)?;
    f.read_image(out)?;
    Ok(true)
}

/// Reads row 1 of column `col` (`band_<b>`) of the current binary table into `out`.
fn read_table_hdu(
    f: &mut Fits,
    col: std::ffi::c_int,
    band_letter: char,
    (height, width): (usize, usize),
    out: &mut [f64],
) -> Result<(), FitsError> {
    let want = [width as i64, height as i64];
    let rows = f.rows()?;
    if rows != 1 {
        return Err(FitsError::Rows(rows));
    }
    let (typecode, repeat) = f.column_type(col)?;
    // TSTRING=16, TBIT=1, TLOGICAL=14: not image data.
    if matches!(typecode, 1 | 14 | 16) || typecode < 0 {
        return Err(FitsError::NotNumeric(band_letter));
    }
    let dims = f.column_dims(col)?;
    let declared_ok = dims == want || dims == [(height * width) as i64];
    if repeat != (height * width) as i64 || !declared_ok {
        let got = if dims.len() > 1 { shape_text(&dims) } else { format!("{repeat} values") };
        return Err(FitsError::Shape { got, want: shape_text(&want) });
    }
    let row_bytes = f.key_i64(c"NAXIS1")?;
    // A TFORM that lies about the type (1681E over stored doubles) leaves rows wider than the columns:
    // cfitsio would read the doubles' bytes as floats. The standard makes NAXIS1 the columns' sum.
    if let Some(columns) = f.columns_width()? {
        if columns != row_bytes {
            return Err(FitsError::RowWidth { naxis1: row_bytes, columns });
        }
    }
    f.require_data(row_bytes)?;
    f.read_column_row1(col, out)
}

#[cfg(test)]
mod tests;

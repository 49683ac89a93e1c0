//! Reading one band image out of a challenge FITS file, and writing such files (for lens-synth).
//!
//! Reading goes through cfitsio's C API (`fitsio::sys`) rather than fitsio's high-level wrapper, for three reasons
//! that matter on a million real files: we open the file ourselves and hand cfitsio the bytes, so the path is taken
//! literally (no extended-filename syntax: `[`, `!` or `-` in a name mean nothing) and a file costs one read; every
//! cfitsio status becomes an error value instead of a panic; and we read exactly the header keywords we need.

use std::ffi::{c_char, c_int, c_long, CStr, CString};
use std::path::Path;
use std::ptr;

use fitsio::sys;

use crate::naming::BANDS;

/// Why a band image could not be read. The `Display` text is what ends up in `rejected.csv`.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FitsError {
    #[error("cannot open: {0}")]
    Open(String),
    #[error("{0}")]
    Cfitsio(String),
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

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 32];
    // SAFETY: ffgerr writes at most 30 chars plus NUL into the buffer.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    // SAFETY: NUL-terminated by ffgerr (buffer zeroed beforehand as a backstop).
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    format!("cfitsio status {status}: {text}")
}

/// The bytes of a file, where cfitsio's memory driver can find them. cfitsio keeps pointers to `addr` and `size`
/// for the life of the open file, so this lives in a Box that does not move.
struct MemFile {
    /// The file's bytes, zero-padded to whole 2880-byte records (see [`Fits::from_bytes`]).
    data: Vec<u8>,
    /// The file's own length, before padding.
    len: usize,
    addr: *mut std::ffi::c_void,
    size: usize,
}

/// An open FITS file, closed on drop.
///
/// The file is read whole with one `read` and parsed by cfitsio from memory: cfitsio's disk driver makes ~17
/// system calls per small file (two opens, three stats, five seeks, six reads), the memory driver none.
struct Fits {
    ptr: *mut sys::fitsfile,
    mem: Box<MemFile>,
}

impl Fits {
    /// Parses the bytes of a whole file.
    fn from_bytes(data: Vec<u8>) -> Result<Fits, FitsError> {
        check_header_text(&data)?;
        // cfitsio reads whole 2880-byte records: on a file whose last record is cut short (a file truncated inside
        // its final padding, which is otherwise readable) its memory driver read up to 2879 bytes past the end of
        // our buffer (found by fuzzing, under AddressSanitizer). Padding the copy to whole records keeps every read
        // inside it; truncation is judged on the file's own length (`len`).
        let len = data.len();
        let mut data = data;
        data.resize(len.div_ceil(2880) * 2880, 0);
        let mut mem = Box::new(MemFile { data, len, addr: ptr::null_mut(), size: 0 });
        mem.addr = mem.data.as_mut_ptr().cast();
        mem.size = mem.data.len();
        let name = c"memory";
        let mut ptr = ptr::null_mut();
        let mut status = 0;
        // SAFETY: READONLY (0) with no realloc function: cfitsio reads the buffer and never writes or frees it.
        // The buffer and the two cells it points to stay put in the Box until ffclos in Drop.
        unsafe {
            sys::ffomem(&mut ptr, name.as_ptr(), 0, &mut mem.addr, &mut mem.size, 0, None, &mut status);
        }
        if status != 0 || ptr.is_null() {
            return Err(FitsError::Open(status_text(status)));
        }
        Ok(Fits { ptr, mem })
    }

    /// Makes sure the current HDU's first `bytes` bytes of data are in the file. cfitsio reads a truncated file's
    /// missing records as the zero padding; a cut-off image must be an error, not a zero-filled one.
    fn require_data(&mut self, bytes: i64) -> Result<(), FitsError> {
        let (mut head, mut start, mut end, mut status) = (0, 0, 0, 0);
        // SAFETY: valid out-pointers on an open file.
        unsafe { sys::ffghadll(self.ptr, &mut head, &mut start, &mut end, &mut status) };
        Self::check(status)?;
        let len = self.mem.len as i64;
        if start.saturating_add(bytes) > len {
            return Err(FitsError::Truncated(len as u64));
        }
        Ok(())
    }

    fn key_i64(&mut self, name: &CStr) -> Result<i64, FitsError> {
        let (mut v, mut status) = (0, 0);
        // SAFETY: NUL-terminated key name, null comment pointer is allowed.
        unsafe { sys::ffgkyjj(self.ptr, name.as_ptr(), &mut v, ptr::null_mut(), &mut status) };
        Self::check(status).map(|_| v)
    }

    fn check(status: c_int) -> Result<(), FitsError> {
        if status == 0 {
            Ok(())
        } else {
            Err(FitsError::Cfitsio(status_text(status)))
        }
    }

    fn num_hdus(&mut self) -> Result<c_int, FitsError> {
        let (mut n, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file.
        unsafe { sys::ffthdu(self.ptr, &mut n, &mut status) };
        Self::check(status).map(|_| n)
    }

    /// Moves to HDU `n` (1-based) and returns its type (IMAGE_HDU, ASCII_TBL, BINARY_TBL).
    fn move_to(&mut self, n: c_int) -> Result<c_int, FitsError> {
        let (mut kind, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file.
        unsafe { sys::ffmahd(self.ptr, n, &mut kind, &mut status) };
        Self::check(status).map(|_| kind)
    }

    /// The dimensions of the current image HDU, NAXIS1 first.
    #[allow(clippy::useless_conversion)] // c_long is 32 bits on some platforms
    fn image_dims(&mut self) -> Result<Vec<i64>, FitsError> {
        let (mut naxis, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file positioned on an image HDU.
        unsafe { sys::ffgidm(self.ptr, &mut naxis, &mut status) };
        Self::check(status)?;
        let mut dims: Vec<c_long> = vec![0; naxis.max(0) as usize];
        if naxis > 0 {
            // SAFETY: dims has naxis elements.
            unsafe { sys::ffgisz(self.ptr, naxis, dims.as_mut_ptr(), &mut status) };
            Self::check(status)?;
        }
        Ok(dims.into_iter().map(i64::from).collect())
    }

    fn read_image(&mut self, out: &mut [f64]) -> Result<(), FitsError> {
        let (mut anynul, mut status) = (0, 0);
        // SAFETY: out has out.len() elements; nulval 0 disables null substitution (NaNs stay NaN).
        unsafe { sys::ffgpvd(self.ptr, 1, 1, out.len() as i64, 0.0, out.as_mut_ptr(), &mut anynul, &mut status) };
        Self::check(status)
    }

    /// Column number (1-based) of `name`, case-insensitive, or None.
    fn column(&mut self, name: &str) -> Result<Option<c_int>, FitsError> {
        let mut templ = CString::new(name).expect("column names have no NUL").into_bytes_with_nul();
        let mut found = [0 as c_char; 80];
        let (mut colnum, mut status) = (0, 0);
        // SAFETY: templ is NUL-terminated and writable, found has room for a column name (max 70 chars).
        unsafe {
            sys::ffgcnn(
                self.ptr,
                sys::CASEINSEN as c_int,
                templ.as_mut_ptr().cast(),
                found.as_mut_ptr(),
                &mut colnum,
                &mut status,
            )
        };
        match status {
            0 => Ok(Some(colnum)),
            219 => Ok(None), // COL_NOT_FOUND
            s => Err(FitsError::Cfitsio(status_text(s))),
        }
    }

    /// Bytes per row that the column formats add up to, or None when a column is variable-length (its
    /// descriptor size depends on P or Q, which the type code does not say).
    fn columns_width(&mut self) -> Result<Option<i64>, FitsError> {
        let (mut n, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file positioned on a table.
        unsafe { sys::ffgncl(self.ptr, &mut n, &mut status) };
        Self::check(status)?;
        let mut total: i64 = 0;
        for col in 1..=n {
            let (mut typecode, mut repeat, mut width) = (0, 0, 0);
            // SAFETY: valid out-pointers, col within 1..=ncols.
            unsafe { sys::ffgtclll(self.ptr, col, &mut typecode, &mut repeat, &mut width, &mut status) };
            Self::check(status)?;
            let bytes = match typecode {
                t if t < 0 => return Ok(None),
                1 => (repeat + 7) / 8, // TBIT: X columns pack 8 bits per byte
                16 => repeat,          // TSTRING: repeat is the number of characters
                _ => repeat.saturating_mul(width),
            };
            total = total.saturating_add(bytes);
        }
        Ok(Some(total))
    }

    fn rows(&mut self) -> Result<i64, FitsError> {
        let (mut n, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file positioned on a table.
        unsafe { sys::ffgnrwll(self.ptr, &mut n, &mut status) };
        Self::check(status).map(|_| n)
    }

    /// Type code and repeat count of a column.
    fn column_type(&mut self, col: c_int) -> Result<(c_int, i64), FitsError> {
        let (mut typecode, mut repeat, mut width, mut status) = (0, 0, 0, 0);
        // SAFETY: valid out-pointers.
        unsafe { sys::ffgtclll(self.ptr, col, &mut typecode, &mut repeat, &mut width, &mut status) };
        Self::check(status).map(|_| (typecode, repeat))
    }

    /// TDIM of a column (NAXIS1 first); cfitsio answers [repeat] when there is no TDIM keyword.
    #[allow(clippy::useless_conversion)] // c_long is 32 bits on some platforms
    fn column_dims(&mut self, col: c_int) -> Result<Vec<i64>, FitsError> {
        let (mut naxis, mut status) = (0, 0);
        let mut dims: [c_long; 8] = [0; 8];
        // SAFETY: dims has room for 8 axes, and maxdim says so.
        unsafe { sys::ffgtdm(self.ptr, col, 8, &mut naxis, dims.as_mut_ptr(), &mut status) };
        Self::check(status)?;
        Ok(dims[..(naxis.clamp(0, 8) as usize)].iter().map(|&d| i64::from(d)).collect())
    }

    fn read_column_row1(&mut self, col: c_int, out: &mut [f64]) -> Result<(), FitsError> {
        let (mut anynul, mut status) = (0, 0);
        // SAFETY: out has out.len() elements.
        unsafe { sys::ffgcvd(self.ptr, col, 1, 1, out.len() as i64, 0.0, out.as_mut_ptr(), &mut anynul, &mut status) };
        Self::check(status)
    }
}

impl Drop for Fits {
    fn drop(&mut self) {
        let mut status = 0;
        // SAFETY: self.ptr was opened by ffdkopn and is closed once.
        unsafe { sys::ffclos(self.ptr, &mut status) };
    }
}

/// Checks every header card before cfitsio sees the file: cfitsio 4.2 copies some header values with `strcpy`
/// into fixed buffers and overflows them on a long unquoted value (found by fuzzing: glibc aborts the whole
/// process). Headers must be printable ASCII (bytes 0x20-0x7E, FITS standard 4.0, section 4.1.1), an unquoted value
/// must be short, and a header must reach its END card. Walks the HDUs as cfitsio
/// will: cards up to END, then the data, whose size the header's BITPIX, NAXISn, PCOUNT and GCOUNT give. Where the
/// header does not say (a missing or malformed keyword), the walk stops and cfitsio reports the problem.
fn check_header_text(data: &[u8]) -> Result<(), FitsError> {
    const BLOCK: usize = 2880;
    /// Longest unquoted value accepted: a number in free format with room to spare.
    const MAX_UNQUOTED: usize = 40;
    if !data.is_empty() && !data.starts_with(b"SIMPLE  =") {
        return Err(FitsError::Open("not a FITS file: it does not begin with SIMPLE =".into()));
    }
    let mut pos = 0usize;
    let mut hdu = 1;
    while pos < data.len() {
        let mut keys: Vec<(&[u8], i64)> = Vec::new();
        loop {
            // A header that ends before its END card is cut off. (Said here, not left to cfitsio: the copy that
            // cfitsio reads is zero-padded to whole records, and it overflowed a buffer on such a header's
            // remains; found by fuzzing.)
            let Some(card) = data.get(pos..pos + 80) else { return Err(FitsError::Truncated(data.len() as u64)) };
            if let Some(at) = card.iter().position(|b| !(0x20..=0x7e).contains(b)) {
                return Err(FitsError::Cfitsio(format!(
                    "header of HDU {hdu} holds a byte 0x{:02x} at offset {}: FITS headers are printable ASCII",
                    card[at],
                    pos + at
                )));
            }
            pos += 80;
            let key = card[..8].trim_ascii_end();
            if key == b"END" {
                break;
            }
            if &card[8..10] == b"= " {
                let value = card[10..].split(|&b| b == b'/').next().unwrap_or(&[]).trim_ascii();
                // cfitsio 4.2 copies an unquoted TTYPEn value whole into a 70-byte field: a value that fills the
                // card overflows it (found by fuzzing). Numbers and logicals are short; only strings are long,
                // and strings are quoted.
                if value.len() > MAX_UNQUOTED && !value.starts_with(b"'") {
                    return Err(FitsError::Cfitsio(format!(
                        "header of HDU {hdu}: the value of {} is {} characters and not a quoted string",
                        String::from_utf8_lossy(key),
                        value.len()
                    )));
                }
                if let Some(v) = std::str::from_utf8(value).ok().and_then(|v| v.parse::<i64>().ok()) {
                    keys.push((key, v));
                }
            }
        }
        let get = |k: &[u8]| keys.iter().find(|(key, _)| *key == k).map(|&(_, v)| v);
        let (Some(bitpix), Some(naxis)) = (get(b"BITPIX"), get(b"NAXIS")) else { return Ok(()) };
        let mut elements: i64 = if naxis > 0 { 1 } else { 0 };
        for axis in 1..=naxis.clamp(0, 999) {
            let Some(n) = get(format!("NAXIS{axis}").as_bytes()) else { return Ok(()) };
            if n == 0 && axis == 1 && naxis > 1 {
                return Ok(()); // random groups, an old convention whose size rule differs: not walked
            }
            let Some(e) = elements.checked_mul(n).filter(|&e| e >= 0) else { return Ok(()) };
            elements = e;
        }
        let (pcount, gcount) = (get(b"PCOUNT").unwrap_or(0), get(b"GCOUNT").unwrap_or(1));
        let bytes = elements
            .checked_add(pcount)
            .and_then(|e| e.checked_mul(gcount))
            .and_then(|e| e.checked_mul(bitpix.abs() / 8))
            .and_then(|b| usize::try_from(b).ok());
        let Some(bytes) = bytes else { return Ok(()) };
        pos = pos.div_ceil(BLOCK).saturating_mul(BLOCK).saturating_add(bytes.div_ceil(BLOCK).saturating_mul(BLOCK));
        hdu += 1;
    }
    Ok(())
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
pub const MAX_FILE_BYTES: u64 = 256 << 20;

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
    let want = [width as i64, height as i64];
    let band_letter = BANDS[band];
    let column_name = format!("band_{band_letter}");
    let mut f = Fits::from_bytes(data)?;
    let n = f.num_hdus()?;
    for hdu in 1..=n {
        match f.move_to(hdu)? as u32 {
            sys::IMAGE_HDU => {
                let dims = f.image_dims()?;
                if dims.is_empty() || dims.contains(&0) {
                    continue; // an empty primary HDU, as in the training files
                }
                // Trailing length-1 axes (41x41x1) are harmless; anything else must be exactly HxW.
                let significant: Vec<i64> =
                    dims.iter().copied().rev().skip_while(|&d| d == 1).collect::<Vec<_>>().into_iter().rev().collect();
                if significant != want {
                    return Err(FitsError::Shape { got: shape_text(&dims), want: shape_text(&want) });
                }
                let bitpix = f.key_i64(c"BITPIX")?;
                f.require_data((bitpix.abs() / 8) * (height * width) as i64)?;
                return f.read_image(out);
            }
            sys::BINARY_TBL => {
                let Some(col) = f.column(&column_name)? else { continue };
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
                return f.read_column_row1(col, out);
            }
            _ => continue,
        }
    }
    // cfitsio silently drops an HDU whose header was cut off; say so rather than "no image".
    let len = f.mem.len as u64;
    if len % 2880 != 0 {
        return Err(FitsError::Truncated(len));
    }
    Err(FitsError::NoImage(band_letter))
}

/// Writes a training-layout file: an empty primary HDU, then a binary table with one row holding the object id
/// (string column `id_column`) and the image as a float64 vector column `band_<b>`; `tdim` adds a TDIM keyword.
pub fn write_table_file(
    path: &Path,
    id_column: &str,
    id: &str,
    band: usize,
    image: &[f64],
    (height, width): (usize, usize),
    tdim: bool,
) -> Result<(), fitsio::errors::Error> {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let mut f = fitsio::FitsFile::create(path).overwrite().open()?;
    let id_col =
        ColumnDescription::new(id_column).with_type(ColumnDataType::String).that_repeats(id.len().max(1)).create()?;
    let band_name = format!("band_{}", BANDS[band]);
    let img_col = ColumnDescription::new(band_name.clone())
        .with_type(ColumnDataType::Double)
        .that_repeats(image.len())
        .create()?;
    let hdu = f.create_table("", &[id_col, img_col])?;
    hdu.write_col(&mut f, id_column, &[id.to_string()])?;
    hdu.write_col(&mut f, band_name, image)?;
    if tdim {
        hdu.write_key(&mut f, "TDIM2", format!("({width},{height})"))?;
    }
    Ok(())
}

/// Writes a blind-layout file: the `height x width` float64 image in the primary HDU.
pub fn write_image_file(path: &Path, image: &[f64], height: usize, width: usize) -> Result<(), fitsio::errors::Error> {
    use fitsio::images::{ImageDescription, ImageType};
    let desc = ImageDescription { data_type: ImageType::Double, dimensions: &[height, width] };
    let mut f = fitsio::FitsFile::create(path).with_custom_primary(&desc).overwrite().open()?;
    let hdu = f.primary_hdu()?;
    hdu.write_image(&mut f, image)
}

/// Whether the linked cfitsio was built thread-safe (we open one file per thread in parallel loops).
pub fn cfitsio_is_reentrant() -> bool {
    // SAFETY: a pure query.
    unsafe { sys::fits_is_reentrant() != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64 * 0.5 - 3.0).collect()
    }

    #[test]
    fn table_and_image_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let img = ramp(41 * 41);
        for tdim in [false, true] {
            let p = dir.path().join(format!("D1_L_1_r_{tdim}.fits"));
            write_table_file(&p, "Object ID", "D1_L_1", 1, &img, (41, 41), tdim).unwrap();
            let mut out = vec![0.0; 41 * 41];
            read_band(&p, 1, 41, 41, &mut out).unwrap();
            assert_eq!(out, img);
            // The file holds band r only: asking for g finds nothing.
            assert_eq!(read_band(&p, 0, 41, 41, &mut out), Err(FitsError::NoImage('g')));
        }
        let p = dir.path().join("object_1_g.fits");
        write_image_file(&p, &img, 41, 41).unwrap();
        let mut out = vec![0.0; 41 * 41];
        read_band(&p, 0, 41, 41, &mut out).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn float32_column_is_read_too() {
        use fitsio::tables::{ColumnDataType, ColumnDescription};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f32.fits");
        let img: Vec<f32> = (0..1681).map(|i| i as f32 * 0.25).collect();
        {
            let mut f = fitsio::FitsFile::create(&p).open().unwrap();
            let col =
                ColumnDescription::new("BAND_Z").with_type(ColumnDataType::Float).that_repeats(1681).create().unwrap();
            let hdu = f.create_table("", &[col]).unwrap();
            hdu.write_col(&mut f, "BAND_Z", &img).unwrap();
        }
        let mut out = vec![0.0; 1681];
        read_band(&p, 3, 41, 41, &mut out).unwrap(); // column names match case-insensitively
        assert!(out.iter().zip(&img).all(|(a, b)| *a == f64::from(*b)));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fits");
        write_image_file(&p, &ramp(40 * 40), 40, 40).unwrap();
        let mut out = vec![0.0; 41 * 41];
        let err = read_band(&p, 0, 41, 41, &mut out).unwrap_err();
        assert_eq!(err, FitsError::Shape { got: "40x40".into(), want: "41x41".into() });
        write_table_file(&p, "Lens ID", "x", 0, &ramp(40 * 40), (40, 40), true).unwrap();
        let err = read_band(&p, 0, 41, 41, &mut out).unwrap_err();
        assert_eq!(err, FitsError::Shape { got: "40x40".into(), want: "41x41".into() });
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fits");
        write_table_file(&p, "Object ID", "x", 0, &ramp(41 * 41), (41, 41), false).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let mut out = vec![0.0; 41 * 41];
        // Truncated inside the data, inside the table header, and empty. (A file cut only in its final padding
        // still holds all its data and is read.)
        for cut in [2 * 2880 + 1000, 2880 + 100, 0] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(read_band(&p, 0, 41, 41, &mut out).is_err(), "cut at {cut}");
        }
        // An image cut inside its data: cfitsio would read the missing pixels as zeros; it must be an error.
        write_image_file(&p, &ramp(41 * 41), 41, 41).unwrap();
        let image = std::fs::read(&p).unwrap();
        for cut in [2880 + 1000, image.len() - 2880] {
            std::fs::write(&p, &image[..cut]).unwrap();
            assert_eq!(read_band(&p, 0, 41, 41, &mut out), Err(FitsError::Truncated(cut as u64)), "cut at {cut}");
        }
        let mut garbage = bytes.clone();
        garbage[..80].copy_from_slice(&[b'#'; 80]);
        std::fs::write(&p, &garbage).unwrap();
        assert!(matches!(read_band(&p, 0, 41, 41, &mut out), Err(FitsError::Open(_))));
        assert!(matches!(read_band(&dir.path().join("missing.fits"), 0, 41, 41, &mut out), Err(FitsError::Open(_))));
    }

    #[test]
    fn cfitsio_sees_whole_records_and_truncation_uses_the_real_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fits");
        write_image_file(&p, &ramp(41 * 41), 41, 41).unwrap();
        let image = std::fs::read(&p).unwrap();
        // Cut inside the final padding (the data ends at 2880 + 13448): every pixel is there, the record is not.
        let cut = 2880 + 13448 + 10;
        let f = Fits::from_bytes(image[..cut].to_vec()).unwrap();
        assert_eq!((f.mem.len, f.mem.data.len(), f.mem.size), (cut, 2 * 2880 + 4 * 2880, 6 * 2880));
        drop(f);
        let mut out = vec![0.0; 41 * 41];
        read_band_bytes(image[..cut].to_vec(), 0, 41, 41, &mut out).unwrap();
        assert_eq!(out, ramp(41 * 41));
        let cut = 2880 + 13448 - 8; // the last pixel missing
        assert_eq!(read_band_bytes(image[..cut].to_vec(), 0, 41, 41, &mut out), Err(FitsError::Truncated(cut as u64)));
    }

    #[test]
    fn literal_file_names() {
        // cfitsio's extended syntax would read "a.fits[1]" as HDU 1 of a.fits; we must open the file so named.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("odd[1] name!.fits");
        write_image_file(&dir.path().join("plain.fits"), &ramp(41 * 41), 41, 41).unwrap();
        std::fs::copy(dir.path().join("plain.fits"), &p).unwrap();
        let mut out = vec![0.0; 41 * 41];
        read_band(&p, 0, 41, 41, &mut out).unwrap();
        assert_eq!(out, ramp(41 * 41));
    }

    #[test]
    fn cfitsio_is_thread_safe() {
        assert!(cfitsio_is_reentrant(), "the linked cfitsio must be built with --enable-reentrant");
    }
}

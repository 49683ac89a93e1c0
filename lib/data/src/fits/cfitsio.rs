//! The cfitsio calls behind [`read_band`](super::read_band): a file held in memory, opened with cfitsio's memory
//! driver, and the few queries the reader needs, each cfitsio status turned into an error value.

use std::ffi::{c_char, c_int, c_long, CStr, CString};
use std::ptr;

use fitsio::sys;

use super::header::check_header_text;
use super::FitsError;

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
pub(super) struct MemFile {
    /// The file's bytes, zero-padded to whole 2880-byte records (see [`Fits::from_bytes`]).
    pub(super) data: Vec<u8>,
    /// The file's own length, before padding.
    pub(super) len: usize,
    addr: *mut std::ffi::c_void,
    pub(super) size: usize,
}

/// An open FITS file, closed on drop.
///
/// The file is read whole with one `read` and parsed by cfitsio from memory: cfitsio's disk driver makes ~17
/// system calls per small file (two opens, three stats, five seeks, six reads), the memory driver none.
pub(super) struct Fits {
    ptr: *mut sys::fitsfile,
    pub(super) mem: Box<MemFile>,
}

impl Fits {
    /// Parses the bytes of a whole file.
    pub(super) fn from_bytes(data: Vec<u8>) -> Result<Fits, FitsError> {
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
    pub(super) fn require_data(&mut self, bytes: i64) -> Result<(), FitsError> {
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

    pub(super) fn key_i64(&mut self, name: &CStr) -> Result<i64, FitsError> {
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

    pub(super) fn num_hdus(&mut self) -> Result<c_int, FitsError> {
        let (mut n, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file.
        unsafe { sys::ffthdu(self.ptr, &mut n, &mut status) };
        Self::check(status).map(|_| n)
    }

    /// Moves to HDU `n` (1-based) and returns its type (IMAGE_HDU, ASCII_TBL, BINARY_TBL).
    pub(super) fn move_to(&mut self, n: c_int) -> Result<c_int, FitsError> {
        let (mut kind, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file.
        unsafe { sys::ffmahd(self.ptr, n, &mut kind, &mut status) };
        Self::check(status).map(|_| kind)
    }

    /// The dimensions of the current image HDU, NAXIS1 first.
    #[allow(clippy::useless_conversion)] // c_long is 32 bits on some platforms
    pub(super) fn image_dims(&mut self) -> Result<Vec<i64>, FitsError> {
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

    pub(super) fn read_image(&mut self, out: &mut [f64]) -> Result<(), FitsError> {
        let (mut anynul, mut status) = (0, 0);
        // SAFETY: out has out.len() elements; nulval 0 disables null substitution (NaNs stay NaN).
        unsafe { sys::ffgpvd(self.ptr, 1, 1, out.len() as i64, 0.0, out.as_mut_ptr(), &mut anynul, &mut status) };
        Self::check(status)
    }

    /// Column number (1-based) of `name`, case-insensitive, or None.
    pub(super) fn column(&mut self, name: &str) -> Result<Option<c_int>, FitsError> {
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
    pub(super) fn columns_width(&mut self) -> Result<Option<i64>, FitsError> {
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

    pub(super) fn rows(&mut self) -> Result<i64, FitsError> {
        let (mut n, mut status) = (0, 0);
        // SAFETY: self.ptr is an open file positioned on a table.
        unsafe { sys::ffgnrwll(self.ptr, &mut n, &mut status) };
        Self::check(status).map(|_| n)
    }

    /// Type code and repeat count of a column.
    pub(super) fn column_type(&mut self, col: c_int) -> Result<(c_int, i64), FitsError> {
        let (mut typecode, mut repeat, mut width, mut status) = (0, 0, 0, 0);
        // SAFETY: valid out-pointers.
        unsafe { sys::ffgtclll(self.ptr, col, &mut typecode, &mut repeat, &mut width, &mut status) };
        Self::check(status).map(|_| (typecode, repeat))
    }

    /// TDIM of a column (NAXIS1 first); cfitsio answers [repeat] when there is no TDIM keyword.
    #[allow(clippy::useless_conversion)] // c_long is 32 bits on some platforms
    pub(super) fn column_dims(&mut self, col: c_int) -> Result<Vec<i64>, FitsError> {
        let (mut naxis, mut status) = (0, 0);
        let mut dims: [c_long; 8] = [0; 8];
        // SAFETY: dims has room for 8 axes, and maxdim says so.
        unsafe { sys::ffgtdm(self.ptr, col, 8, &mut naxis, dims.as_mut_ptr(), &mut status) };
        Self::check(status)?;
        Ok(dims[..(naxis.clamp(0, 8) as usize)].iter().map(|&d| i64::from(d)).collect())
    }

    pub(super) fn read_column_row1(&mut self, col: c_int, out: &mut [f64]) -> Result<(), FitsError> {
        let (mut anynul, mut status) = (0, 0);
        // SAFETY: out has out.len() elements.
        unsafe { sys::ffgcvd(self.ptr, col, 1, 1, out.len() as i64, 0.0, out.as_mut_ptr(), &mut anynul, &mut status) };
        Self::check(status)
    }
}

impl Drop for Fits {
    fn drop(&mut self) {
        let mut status = 0;
        // SAFETY: self.ptr was opened by ffomem (on our in-memory copy of the file) and is closed once.
        unsafe { sys::ffclos(self.ptr, &mut status) };
    }
}

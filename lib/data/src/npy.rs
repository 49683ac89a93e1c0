//! The NumPy `.npy` header, written by us so that a pack can be streamed to disk before its row count is known.
//!
//! Format 1.0: magic `\x93NUMPY`, version 1.0, a little-endian u16 header length, then a Python dict literal padded
//! with spaces and a final newline so that the data starts at a multiple of 64 bytes. We always reserve
//! `HEADER_LEN` (128) bytes, enough for any shape we write, so the header can be rewritten in place at the end.

/// Why a `.npy` header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file (bad magic)")]
    Magic,
    #[error("unsupported .npy version {0}")]
    Version(u8),
    #[error("truncated .npy header")]
    Truncated,
    #[error(".npy header is not text")]
    NotText(#[source] std::str::Utf8Error),
    #[error(".npy header has no '{0}'")]
    NoField(&'static str),
    #[error(".npy dtype {0} is not <f4 or <f2")]
    Dtype(String),
    #[error(".npy array is in Fortran order")]
    FortranOrder,
    #[error(".npy shape is not a tuple")]
    ShapeNotTuple,
    #[error("bad .npy dimension {0:?}")]
    Dimension(String, #[source] std::num::ParseIntError),
}

/// Total bytes before the data: magic, version, length field and the padded dict.
pub(crate) const HEADER_LEN: usize = 128;

/// Element types a pack stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Float32,
    Float16,
}

impl Dtype {
    pub(crate) fn descr(self) -> &'static str {
        match self {
            Dtype::Float32 => "<f4",
            Dtype::Float16 => "<f2",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::Float32 => 4,
            Dtype::Float16 => 2,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;

    /// `f32`/`float32` or `f16`/`float16`, as lens-pack's --dtype takes them.
    fn from_str(s: &str) -> Result<Dtype, String> {
        match s {
            "f32" | "float32" => Ok(Dtype::Float32),
            "f16" | "float16" => Ok(Dtype::Float16),
            _ => Err(format!("{s:?}: expected f32 or f16")),
        }
    }
}

/// The [`HEADER_LEN`] header bytes for a C-order array of `dtype` and `shape`.
pub(crate) fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}", dtype.descr());
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    let dict_len = HEADER_LEN - 10;
    assert!(dict.len() < dict_len, "shape {shape:?} too long for the reserved header");
    out.extend_from_slice(&(dict_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(HEADER_LEN - 1, b' ');
    out.push(b'\n');
    out
}

/// Parses a header we wrote (or any version-1/2 header with a plain dict): returns dtype, shape and data offset.
pub fn parse_header(bytes: &[u8]) -> Result<(Dtype, Vec<usize>, usize), NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::Magic);
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(NpyError::Version(v)),
    };
    let dict = bytes.get(start..start + len).ok_or(NpyError::Truncated)?;
    let dict = std::str::from_utf8(dict).map_err(NpyError::NotText)?;
    let field = |key: &'static str| -> Result<&str, NpyError> {
        let at = dict.find(&format!("'{key}':")).ok_or(NpyError::NoField(key))?;
        Ok(dict[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let dtype = if descr.starts_with("'<f4'") {
        Dtype::Float32
    } else if descr.starts_with("'<f2'") {
        Dtype::Float16
    } else {
        return Err(NpyError::Dtype(descr.split(',').next().unwrap_or("").to_string()));
    };
    if !field("fortran_order")?.starts_with("False") {
        return Err(NpyError::FortranOrder);
    }
    // Found by fuzzing: slicing `shape[1..close]` panicked on a shape that starts with ')' or a multi-byte char.
    let shape = field("shape")?.strip_prefix('(').ok_or(NpyError::ShapeNotTuple)?;
    let close = shape.find(')').ok_or(NpyError::ShapeNotTuple)?;
    let shape: Vec<usize> = shape[..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|e| NpyError::Dimension(s.to_string(), e)))
        .collect::<Result<_, _>>()?;
    Ok((dtype, shape, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        for (dtype, shape) in [(Dtype::Float32, vec![0, 5, 41, 41]), (Dtype::Float16, vec![123_456_789_012, 5, 64, 64])]
        {
            let h = header(dtype, &shape);
            assert_eq!(h.len(), HEADER_LEN);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(parse_header(&h).unwrap(), (dtype, shape, HEADER_LEN));
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse_header(b"PK\x03\x04 not npy").is_err());
        let mut h = header(Dtype::Float32, &[1, 5, 41, 41]);
        let at = h.windows(3).position(|w| w == b"<f4").unwrap();
        h[at + 2] = b'8';
        assert!(parse_header(&h).unwrap_err().to_string().contains("<f8"));
    }
}

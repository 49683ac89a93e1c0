//! Our own checks of a FITS file's header cards, made before cfitsio parses it.

use super::FitsError;

/// Checks every header card before cfitsio sees the file: cfitsio 4.2 copies some header values with `strcpy`
/// into fixed buffers and overflows them on a long unquoted value (found by fuzzing: glibc aborts the whole
/// process). Headers must be printable ASCII (bytes 0x20-0x7E, FITS standard 4.0, section 4.1.1), an unquoted value
/// must be short, and a header must reach its END card. Walks the HDUs as cfitsio
/// will: cards up to END, then the data, whose size the header's BITPIX, NAXISn, PCOUNT and GCOUNT give. Where the
/// header does not say (a missing or malformed keyword), the walk stops and cfitsio reports the problem.
pub(super) fn check_header_text(data: &[u8]) -> Result<(), FitsError> {
    const BLOCK: usize = 2880;
    /// Longest unquoted value accepted: a number in free format with room to spare.
    const MAX_UNQUOTED: usize = 40;
    if !data.is_empty() && !data.starts_with(b"SIMPLE  =") {
        return Err(FitsError::NotFits);
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
                return Err(FitsError::HeaderByte { hdu, byte: card[at], offset: pos + at });
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
                    return Err(FitsError::LongValue {
                        hdu,
                        key: String::from_utf8_lossy(key).into_owned(),
                        len: value.len(),
                    });
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

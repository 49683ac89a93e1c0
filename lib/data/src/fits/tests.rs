//! The reader against files written by fitsio, damaged files, and odd names.

use super::cfitsio::Fits;
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
    assert_eq!(read_band(&p, 0, 41, 41, &mut out), Err(FitsError::NotFits));
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

/// Whether the linked cfitsio was built thread-safe (we open one file per thread in parallel loops).
fn cfitsio_is_reentrant() -> bool {
    // SAFETY: a pure query.
    unsafe { fitsio::sys::fits_is_reentrant() != 0 }
}

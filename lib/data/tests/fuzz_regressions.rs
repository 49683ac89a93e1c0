//! Every input that made a fuzz target fail (fuzz/regressions/<target>/), replayed through the same library call
//! with the same expectations, so that a fixed crash stays fixed in the ordinary test run (no nightly, no
//! libFuzzer). See RELIABILITY.md for what each one was.
#![allow(clippy::unwrap_used)] // a panic is how a test fails, also in the helpers the tests call

use std::fs;
use std::path::{Path, PathBuf};

use lensfind_data::fits::read_band_bytes;
use lensfind_data::naming::BANDS;
use lensfind_data::npy;
use lensfind_data::pack::{parse_manifest, verify, Pack};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The regression inputs of `target`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("regressions").join(target);
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<_> = entries.map(|e| e.unwrap().path()).map(|p| (p.clone(), fs::read(&p).unwrap())).collect();
    out.sort();
    out
}

#[test]
fn fits_band() {
    let cases = inputs("fits_band");
    assert!(cases.len() >= 3, "the regressions found so far are in fuzz/regressions/fits_band");
    for (path, data) in cases {
        let mut out = vec![0.0f64; 41 * 41];
        let name = path.file_name().unwrap().to_string_lossy();
        for (band, letter) in BANDS.iter().enumerate() {
            // Each was a crash inside cfitsio: an abort from a buffer overflow, an impossible allocation (these
            // two are damaged files), a read past the end of our buffer (a file cut inside its final padding,
            // readable; only AddressSanitizer sees the over-read, fits::tests checks the padding that prevents it).
            let r = read_band_bytes(data.clone(), band, 41, 41, &mut out);
            if !name.starts_with("cfitsio-read-past-buffer-end") {
                assert!(r.is_err(), "{name} band {letter}: read as an image");
            }
        }
    }
}

#[test]
fn pack_manifest() {
    let cases = inputs("pack_manifest");
    assert!(!cases.is_empty(), "the regressions found so far are in fuzz/regressions/pack_manifest");
    let seed = fuzz_dir().join("seeds/pack");
    for (path, data) in cases {
        let t = tempfile::tempdir().unwrap();
        let pack = t.path().join("f.pack");
        fs::create_dir(&pack).unwrap();
        for f in ["pack.json", "meta.csv", "rejected.csv", "images.npy"] {
            fs::copy(seed.join(f), pack.join(f)).unwrap();
        }
        let Some((&which, rest)) = data.split_first() else { continue };
        if which % 2 == 0 {
            let _ = parse_manifest(rest, Path::new("pack.json"));
            fs::write(pack.join("pack.json"), rest).unwrap();
        } else {
            let _ = npy::parse_header(rest); // it panicked on a shape like ")1, 5, 41, 41)"
            let mut images = fs::read(pack.join("images.npy")).unwrap();
            let n = rest.len().min(images.len());
            images[..n].copy_from_slice(&rest[..n]);
            fs::write(pack.join("images.npy"), &images).unwrap();
        }
        // Damaged: opening or verifying says so instead of panicking.
        let opened = Pack::open(&pack);
        let problems = verify(&pack);
        assert!(
            opened.is_err() || problems.is_err() || !problems.unwrap().is_empty(),
            "{}: a damaged pack passed",
            path.display()
        );
    }
}

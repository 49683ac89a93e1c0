//! The pack manifest (pack.json) and the .npy header: parsing never panics, and opening or verifying a small
//! real pack under a hostile manifest, or with a hostile images.npy header, gives errors, never a panic.
//!
//! The first byte chooses what the rest of the input replaces: even, pack.json; odd, the start of images.npy.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lensfind_data::npy;
use lensfind_data::pack::{parse_manifest, verify, Pack};
use libfuzzer_sys::fuzz_target;

/// A real one-object pack (seeds/pack, written by lens-pack), copied to a temporary directory once per process.
struct Fixture {
    _dir: tempfile::TempDir,
    pack: PathBuf,
    images: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pack = dir.path().join("f.pack");
        std::fs::create_dir(&pack).unwrap();
        std::fs::write(pack.join("pack.json"), MANIFEST).unwrap();
        std::fs::write(pack.join("meta.csv"), include_str!("../seeds/pack/meta.csv")).unwrap();
        std::fs::write(pack.join("rejected.csv"), include_str!("../seeds/pack/rejected.csv")).unwrap();
        let images = include_bytes!("../seeds/pack/images.npy").to_vec();
        std::fs::write(pack.join("images.npy"), &images).unwrap();
        Fixture { _dir: dir, pack, images }
    })
}

const MANIFEST: &str = include_str!("../seeds/pack/pack.json");

fn exercise(pack: &Path) {
    if let Ok(p) = Pack::open(pack) {
        let mut row = vec![0.0f32; p.row_len()];
        for i in 0..p.len().min(4) {
            p.row_f32(i, &mut row);
        }
        let _ = p.images_f32();
    }
    let _ = verify(pack);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let f = fixture();
    if which % 2 == 0 {
        let _ = parse_manifest(rest, Path::new("pack.json"));
        std::fs::write(f.pack.join("pack.json"), rest).unwrap();
        exercise(&f.pack);
        std::fs::write(f.pack.join("pack.json"), MANIFEST).unwrap();
    } else {
        let _ = npy::parse_header(rest);
        let mut images = f.images.clone();
        let n = rest.len().min(images.len());
        images[..n].copy_from_slice(&rest[..n]);
        std::fs::write(f.pack.join("images.npy"), &images).unwrap();
        exercise(&f.pack);
        std::fs::write(f.pack.join("images.npy"), &f.images).unwrap();
    }
});

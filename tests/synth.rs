//! lens-synth: layout, encoding, determinism.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use lensfind_data::fits::read_band;
use lensfind_e2e::*;

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn training_layout_is_the_challenge_layout() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    synth(&d, 3, 1, &[]);
    let files = tree(&d);
    for dir in ["slsim_lenses", "slsim_nonlenses", "hsc_lenses", "hsc_nonlenses"] {
        assert_eq!(files.keys().filter(|k| k.starts_with(&format!("{dir}/"))).count(), 15, "{dir}");
    }
    assert!(files.contains_key("slsim_lenses/D1_L_00000002_y.fits"));
    assert!(files.contains_key("hsc_nonlenses/D2_N_00000000_g.fits"));
    // Encoding: an empty primary HDU, then a binary table with a 1681-element float64 column and the id.
    let f = &files["slsim_lenses/D1_L_00000001_r.fits"];
    let header = String::from_utf8_lossy(&f[2880..5760]);
    assert!(header.contains("XTENSION= 'BINTABLE'"), "{header}");
    assert!(
        header.contains("TTYPE1  = 'Object ID'") && header.contains("'band_r  '") && header.contains("'1681D   '"),
        "{header}"
    );
    assert!(!header.contains("TDIM"), "SLSim files carry no TDIM");
    let hsc = String::from_utf8_lossy(&files["hsc_lenses/D2_L_00000001_r.fits"][2880..5760]).into_owned();
    assert!(hsc.contains("TDIM2   = '(41,41) '") && hsc.contains("TTYPE1  = 'Lens ID '"), "{hsc}");
    let mut img = vec![0.0; 1681];
    read_band(&d.join("hsc_lenses/D2_L_00000001_r.fits"), 1, 41, 41, &mut img).unwrap();
    assert!(img.iter().all(|v| v.is_finite()) && img.iter().any(|v| *v != 0.0));
    let params = csv_rows(&d.join("params.csv"));
    assert_eq!(params.len(), 12);
    assert!(params.iter().all(|r| (r[1] == "1") == (r[3].parse::<f64>().unwrap() > 0.0)), "lenses have theta_E");
}

#[test]
fn blind_layout_has_labels_beside_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("blind");
    synth(&d, 4, 9, &["--blind"]);
    let labels = csv_rows(&d.join("labels.csv"));
    assert_eq!(labels.len(), 8);
    assert_eq!(labels.iter().filter(|r| r[1] == "1").count(), 4);
    for r in &labels {
        assert!(r[0].starts_with("object_"));
        let p = d.join(format!("{}_i.fits", r[0]));
        let bytes = fs::read(&p).unwrap();
        let primary = String::from_utf8_lossy(&bytes[..2880]);
        assert!(
            primary.contains("NAXIS1  =                   41") && primary.contains("BITPIX  =                  -64")
        );
    }
    // The index sees blind objects with empty label and source.
    let idx = t.path().join("i.csv");
    index(&[&d], &idx);
    let rows = csv_rows(&idx);
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r[1].is_empty() && r[2].is_empty()));
}

#[test]
fn seed_decides_the_bytes_not_the_threads() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    synth(&a, 6, 42, &["--corrupt", "3", "-j", "1"]);
    synth(&b, 6, 42, &["--corrupt", "3", "-j", "2"]);
    synth(&c, 6, 43, &["--corrupt", "3"]);
    let (ta, tb, tc) = (tree(&a), tree(&b), tree(&c));
    assert!(ta == tb, "same seed, different bytes");
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    assert!(ta["slsim_lenses/D1_L_00000000_g.fits"] != tc["slsim_lenses/D1_L_00000000_g.fits"]);
    assert_eq!(csv_rows(&a.join("corrupted.csv")).len(), 3);
}

#[test]
fn refuses_a_non_empty_directory() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("keep.txt"), "x").unwrap();
    let err = fails(tool("lens-synth").arg("--out").arg(t.path()));
    assert!(err.contains("is not empty"), "{err}");
    let err = fails(tool("lens-synth").arg("--out").arg(t.path().join("n")).args(["-n", "1", "--corrupt", "21"]));
    assert!(err.contains("--corrupt 21 is more than the 20 files to write"), "{err}");
    assert!(!t.path().join("n").exists(), "checked before writing anything");
}

/// The digest of every file under `dir` (sha256sum of each, in path order, then of that list).
fn digest(dir: &Path) -> String {
    let out = ok(std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum")
        .current_dir(dir));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn easy_data_is_byte_for_byte_what_it_always_was() {
    // Pinned from the generator before --difficulty existed: the hard benchmark must not move the default data
    // (tests and the demo are built on it).
    let t = tempfile::tempdir().unwrap();
    let (train, blind) = (t.path().join("train"), t.path().join("blind"));
    synth(&train, 3, 7, &["--corrupt", "1"]);
    synth(&blind, 3, 8, &["--blind", "--difficulty", "easy"]);
    assert_eq!(digest(&train), "249cefbdb2789db62f43f16af3f952e846ac57b80276f48a6e15e4c710067cd6");
    assert_eq!(digest(&blind), "b474b08577ba717bf54e3f5ad8dbc18a56ac9f2d7106421634a42b70d37bb3a9");
}

#[test]
fn hard_data_has_lookalikes_two_domains_and_a_shifted_blind_mix() {
    let t = tempfile::tempdir().unwrap();
    let (train, blind) = (t.path().join("train"), t.path().join("blind"));
    synth(&train, 40, 3, &["--difficulty", "hard"]);
    synth(&blind, 40, 4, &["--difficulty", "hard", "--blind"]);
    let header = fs::read_to_string(train.join("params.csv")).unwrap().lines().next().unwrap().to_string();
    assert_eq!(header, "id,label,source,theta_e_arcsec,source_flux_i,companion,domain,lookalike");
    let rows = csv_rows(&train.join("params.csv"));
    assert_eq!(rows.len(), 160);
    let (lenses, nonlenses): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r[1] == "1");
    assert!(lenses.iter().all(|r| r[7] == "none"), "look-alikes are non-lenses");
    for r in &lenses {
        let theta_e: f64 = r[3].parse().unwrap();
        assert!((0.5..1.6).contains(&theta_e), "hard Einstein radii are 0.5-1.6\": {theta_e}");
    }
    // Counts of random draws, so bounds: each is more than 4 standard deviations from the expected count (half of
    // 80 non-lenses: 40 +- 4.5; a quarter of 160 poor: 40 +- 5.5; 70% of 80 blind poor: 56 +- 4.1).
    let lookalikes = nonlenses.iter().filter(|r| r[7] == "ring" || r[7] == "spiral").count();
    assert!((20..=60).contains(&lookalikes), "{lookalikes} of 80 non-lenses have a look-alike");
    assert!(nonlenses.iter().any(|r| r[7] == "ring") && nonlenses.iter().any(|r| r[7] == "spiral"));
    let poor = |rows: &[Vec<String>]| rows.iter().filter(|r| r[6] == "poor").count();
    assert!((16..=64).contains(&poor(&rows)), "{} of 160 training objects poor", poor(&rows));
    let blind_rows = csv_rows(&blind.join("params.csv"));
    assert!(poor(&blind_rows) > 40, "{} of 80 blind objects poor: the mix is not shifted", poor(&blind_rows));
    // The hard set is other data than the easy one of the same seed.
    let easy = t.path().join("easy");
    synth(&easy, 40, 3, &[]);
    assert!(
        fs::read(easy.join("slsim_lenses/D1_L_00000000_i.fits")).unwrap()
            != fs::read(train.join("slsim_lenses/D1_L_00000000_i.fits")).unwrap()
    );
}

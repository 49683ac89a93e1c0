//! lensfind's FITS reader against astropy: lens-index and lens-pack on files written by astropy
//! (tests/fixtures/fits, made by scripts/make_fits_fixtures.py) in every layout the challenge uses must give
//! exactly the pixels astropy reads from them. Every other test reads files that lens-synth wrote with lensfind's
//! own writer, so a mistake shared by writer and reader (a transpose, a misread TDIM) would pass those.

use std::path::{Path, PathBuf};

use lensfind_e2e::*;
use ndarray::{Array4, Axis};
use ndarray_npy::read_npy;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fits")
}

/// The fixtures indexed and packed with `extra` options: (the directory, the ids in pack order, images.npy read
/// with ndarray-npy rather than lensfind's own pack reader).
fn pack(extra: &[&str]) -> (tempfile::TempDir, Vec<String>, Array4<f32>) {
    let t = tempfile::tempdir().unwrap();
    let idx = t.path().join("index.csv");
    index(&[&fixtures()], &idx);
    let out = t.path().join("fits.pack");
    ok(tool("lens-pack").arg("-q").args(extra).arg(&idx).arg("-o").arg(&out));
    let ids = csv_rows(&out.join("meta.csv")).into_iter().map(|r| r[1].clone()).collect();
    let images: Array4<f32> = read_npy(out.join("images.npy")).unwrap();
    (t, ids, images)
}

/// objects.csv: (id, layout, dtype) in the row order of pixels.npy.
fn objects() -> Vec<(String, String, String)> {
    csv_rows(&fixtures().join("objects.csv")).into_iter().map(|r| (r[1].clone(), r[2].clone(), r[3].clone())).collect()
}

#[test]
fn fixtures_cover_every_layout_of_the_challenge() {
    let objects = objects();
    for layout in ["slsim", "hsc", "blind"] {
        for dtype in ["f64", "f32"] {
            assert!(
                objects.iter().any(|(_, l, d)| l == layout && d == dtype),
                "no {layout} {dtype} object in the fixtures"
            );
        }
    }
    // The index sees them as the challenge's names say: sources 1 and 2, labels from L/N, blind ones unlabelled.
    let t = tempfile::tempdir().unwrap();
    let idx = t.path().join("index.csv");
    index(&[&fixtures()], &idx);
    let rows = csv_rows(&idx);
    let heads: Vec<String> = rows.iter().map(|r| r[..3].join(",")).collect();
    assert_eq!(
        heads,
        [
            "D1_L_00000001,1,1",
            "D1_N_00000002,0,1",
            "D2_L_00000003,1,2",
            "D2_N_00000004,0,2",
            "object_000005,,",
            "object_000006,,"
        ]
    );
}

#[test]
fn pack_without_standardisation_equals_astropy_exactly() {
    let pixels: Array4<f64> = read_npy(fixtures().join("pixels.npy")).unwrap();
    let objects = objects();
    let (_t, ids, images) = pack(&["--standardize", "none"]);
    assert_eq!(ids, objects.iter().map(|o| o.0.clone()).collect::<Vec<_>>(), "every object packed, in id order");
    assert_eq!(images.shape(), pixels.shape());
    let mut nonfinite = 0;
    for (k, (id, layout, dtype)) in objects.iter().enumerate() {
        for b in 0..5 {
            let got = images.index_axis(Axis(0), k);
            let got = got.index_axis(Axis(0), b);
            let want = pixels.index_axis(Axis(0), k);
            let want = want.index_axis(Axis(0), b);
            for ((y, x), w) in want.indexed_iter() {
                // Exact: lens-pack stores float32; a float32 file's values are float32 already, a float64 file's
                // are rounded to the nearest float32 (Rust's `as`, numpy's astype: IEEE round to nearest even).
                // NaN and Inf become 0, as the README says.
                let w = if w.is_finite() { *w as f32 } else { 0.0 };
                nonfinite += usize::from(!pixels[[k, b, y, x]].is_finite());
                assert!(
                    got[[y, x]].to_bits() == w.to_bits(),
                    "{id} ({layout}, {dtype}) band {}: pixel (y {y}, x {x}) is {} in the pack, astropy reads {}",
                    lensfind_data::naming::BANDS[b],
                    got[[y, x]],
                    pixels[[k, b, y, x]]
                );
            }
        }
    }
    assert_eq!(nonfinite, 2, "the fixtures hold one NaN and one Inf");
}

#[test]
fn pack_with_default_standardisation_matches_numpy() {
    let want: Array4<f64> = read_npy(fixtures().join("standardized.npy")).unwrap();
    let (_t, ids, images) = pack(&[]);
    assert_eq!(ids.len(), want.shape()[0]);
    for ((i, g), w) in images.indexed_iter().zip(want.iter()) {
        // 1e-6 relative (absolute below 1): the pack stores float32, which rounds a value by at most 2^-24
        // relative (6e-8); lens-pack and numpy sum the mean and variance in float64 in different orders, which
        // differs by ~1e-13. 1e-6 is 16x the float32 rounding; a wrong mean or std (per band instead of per cube, or
        // the sample std with n-1: 6e-5 relative on 8405 values) is well above it.
        assert!((f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0), "{} {i:?}: {g} vs numpy {w}", ids[i.0]);
    }
}

#[test]
fn a_table_whose_tdim_declares_another_shape_is_set_aside() {
    // Band i's 1681 values are declared a 1x1681 image (TDIM2 = '(1681,1)', written by astropy): not 41x41.
    let t = tempfile::tempdir().unwrap();
    let idx = t.path().join("index.csv");
    index(&[&fixtures().with_file_name("fits-declared")], &idx);
    let out = t.path().join("x.pack");
    ok(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&out));
    let rejected = csv_rows(&out.join("rejected.csv"));
    assert_eq!(rejected.len(), 1, "D2_L_00000007 must be set aside for the shape its TDIM declares: {rejected:?}");
    assert_eq!(rejected[0][0], "D2_L_00000007");
    assert!(rejected[0][1].starts_with("band i: shape 1x1681 where 41x41 was expected"), "{rejected:?}");
}

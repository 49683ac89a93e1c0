//! Scanning trees of band files and the index CSV.

use std::fs;
use std::path::Path;

use super::*;
use crate::naming::BANDS;

fn touch(dir: &Path, names: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    for n in names {
        fs::write(dir.join(n), b"").unwrap();
    }
}

fn all_bands(id: &str) -> Vec<String> {
    BANDS.iter().map(|b| format!("{id}_{b}.fits")).collect()
}

fn root(dir: &Path, label: LabelRule) -> Root {
    Root { spec: dir.to_str().unwrap().to_string(), label }
}

#[test]
fn groups_sorts_and_reports() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let names: Vec<String> =
        ["D1_N_00000002", "D1_L_00000001", "object_000007"].iter().flat_map(|id| all_bands(id)).collect();
    touch(&a.join("deep/er"), &names.iter().map(String::as_str).collect::<Vec<_>>());
    // An incomplete object, a bad name, a non-FITS file, and a duplicate in another directory.
    touch(&a, &["D2_L_00000003_g.fits", "D2_L_00000003_r.fits", "junk_q.fits", "notes.txt"]);
    touch(&t.path().join("b"), &["D1_L_00000001_g.fits"]);

    let scan = scan(&[root(&a, LabelRule::FromName), root(&t.path().join("b"), LabelRule::FromName)]).unwrap();
    let ids: Vec<_> = scan.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["D1_L_00000001", "D1_N_00000002", "object_000007"]);
    assert_eq!((scan.rows[0].label, scan.rows[0].source), (Some(1), Some(1)));
    assert_eq!((scan.rows[1].label, scan.rows[1].source), (Some(0), Some(1)));
    assert_eq!((scan.rows[2].label, scan.rows[2].source), (None, None));
    assert!(scan.rows[0].paths[0].starts_with(&a), "first in path order is kept");
    assert_eq!(scan.files, 15 + 3 + 1);
    let kinds: Vec<_> = scan.problems.iter().map(|p| (p.kind, p.id.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::MissingBand, "D2_L_00000003"),
            (ProblemKind::Duplicate, "D1_L_00000001"),
            (ProblemKind::BadName, ""),
        ]
    );
    assert!(scan.problems[0].detail.contains("izy"));
}

#[test]
fn label_override_and_conflicts() {
    let t = tempfile::tempdir().unwrap();
    let lenses = t.path().join("lenses");
    let names: Vec<String> = ["object_1", "D1_N_5"].iter().flat_map(|id| all_bands(id)).collect();
    touch(&lenses, &names.iter().map(String::as_str).collect::<Vec<_>>());
    let scan = scan(&[root(&lenses, LabelRule::Fixed(1))]).unwrap();
    assert_eq!(scan.rows.len(), 2);
    assert!(scan.rows.iter().all(|r| r.label == Some(1)));
    // D1_N_5 says 0 in each of its five files.
    assert_eq!(scan.problems.iter().filter(|p| p.kind == ProblemKind::LabelConflict).count(), 5);
}

#[test]
fn globs_files_and_missing_roots() {
    let t = tempfile::tempdir().unwrap();
    let names = all_bands("D2_N_9");
    touch(t.path(), &names.iter().map(String::as_str).collect::<Vec<_>>());
    let pattern = format!("{}/D2_N_9_*.fits", t.path().display());
    let s = scan(&[Root { spec: pattern, label: LabelRule::FromName }]).unwrap();
    assert_eq!(s.rows.len(), 1);
    let one = t.path().join("D2_N_9_g.fits");
    let s = scan(&[root(&one, LabelRule::FromName)]).unwrap();
    assert_eq!(s.problems[0].kind, ProblemKind::MissingBand);
    assert!(scan(&[root(&t.path().join("nope"), LabelRule::FromName)]).is_err());
    let nothing = format!("{}/zzz*.fits", t.path().display());
    assert!(scan(&[Root { spec: nothing, label: LabelRule::FromName }]).is_err());
}

#[test]
fn csv_round_trip_and_errors() {
    let rows = vec![IndexRow {
        id: "D1_L_1".into(),
        label: Some(1),
        source: Some(1),
        paths: std::array::from_fn(|b| PathBuf::from(format!("dir, with comma/D1_L_1_{}.fits", BANDS[b]))),
    }];
    let mut buf = Vec::new();
    write_index(&rows, &mut buf).unwrap();
    assert!(buf.starts_with(b"id,label,source,g,r,i,z,y\n"));
    assert_eq!(read_index(&buf[..], "x").unwrap(), rows);

    let bad = "id,label,source,g,r,i,z,y\na,1,1,p,p,p,p,p\nb,2,1,p,p,p,p,p\n";
    let err = lensfind_core::error_chain(&read_index(bad.as_bytes(), "idx.csv").unwrap_err());
    assert!(err.contains("idx.csv, line 3") && err.contains("label \"2\""), "{err}");
    let err = lensfind_core::error_chain(&read_index("id,label\n".as_bytes(), "idx.csv").unwrap_err());
    assert!(err.contains("not an index"), "{err}");
    let err = lensfind_core::error_chain(
        &read_index("id,label,source,g,r,i,z,y\na,,,p,p,,p,p\n".as_bytes(), "i").unwrap_err(),
    );
    assert!(err.contains("line 2") && err.contains("band i"), "{err}");
}

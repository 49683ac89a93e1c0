//! lens-ensemble on hand-made logits files: logit averaging, weights, thresholds, shards, and its errors.

use std::fs;

use lensfind_e2e::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&std::path::Path], extra: &[&str]) -> String {
    String::from_utf8(ok(tool("lens-ensemble").args(args).args(extra)).stdout).unwrap()
}

#[test]
fn averages_logits_not_probabilities() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.csv", "id,logit\nx,4\ny,-1\nz,0\n");
    let b = write(t.path(), "b.csv", "id,logit,logit_orig\nz,0,0\ny,3,3\nx,-2,-2\n");
    // x: mean logit 1 -> sigmoid 0.731059 (averaging probabilities would give 0.550).
    assert_eq!(run(&[&a, &b], &[]), "id,pred\nx,0.731059\ny,0.731059\nz,0.500000\n");
    // Weights 3:1 -> x: (12 - 2)/4 = 2.5.
    assert_eq!(run(&[&a, &b], &["--weights", "3,1"]), "id,pred\nx,0.924142\ny,0.500000\nz,0.500000\n");
    assert_eq!(run(&[&a, &b], &["--threshold", "0.6"]), "id,pred,label\nx,0.731059,1\ny,0.731059,1\nz,0.500000,0\n");

    // Shards of one model, given as a pattern, join before averaging.
    write(t.path(), "s.0.csv", "id,logit\nx,4\n");
    write(t.path(), "s.1.csv", "id,logit\ny,-1\nz,0\n");
    let pattern = t.path().join("s.*.csv");
    assert_eq!(run(&[&pattern, &b], &[]), run(&[&a, &b], &[]));
}

#[test]
fn different_ids_and_bad_rows_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.csv", "id,logit\nx,4\ny,-1\n");
    let b = write(t.path(), "b.csv", "id,logit\nx,2\n");
    let err = fails(tool("lens-ensemble").arg(&a).arg(&b));
    assert!(err.contains("b.csv lacks 1 id(s) that other models score: y"), "{err}");
    assert_eq!(run(&[&a, &b], &["--allow-missing"]), "id,pred\nx,0.952574\ny,0.268941\n");

    for (text, want) in [
        ("id,logit\nx,1\ny\n", "line 3: malformed row"),
        ("id,logit\nx,1\nx,2\n", "line 3: id x appears twice"),
        ("id,logit\nx,nan\n", "line 2: logit of x is NaN"),
    ] {
        let bad = write(t.path(), "bad.csv", text);
        let err = fails(tool("lens-ensemble").arg(&a).arg(&bad));
        assert!(err.contains("bad.csv") && err.contains(want), "{text:?}: {err}");
    }
    let err = fails(tool("lens-ensemble").arg(&a).arg(&b).args(["--weights", "1"]));
    assert!(err.contains("1 weights for 2 models"), "{err}");
    let err = fails(tool("lens-ensemble").arg(t.path().join("nope*.csv")));
    assert!(err.contains("no file matches"), "{err}");
}

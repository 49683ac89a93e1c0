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

/// The challenge's header as the challenge gives it (issue 15), byte for byte.
const CHALLENGE_HEADER: &str = "id,preds,ra,dec,zlens,mag_lens_g,mag_lens_r,mag_lens_i,mag_lens_z,mag_lens_y,ell_l,ell_l_PA,Rein,vel disp,sh,sh_PA,srcx,srcy,mag_src_g,mag_src_r,mag_src_i,mag_src_z,mag_src_y,zsrc,ell_s,ell_s_PA,Reff_s,n_s_sers,ell_m,ell_m_PA,Reff_l,n_l_sers,vel_disp,RA,Dec,mag_object_g,mag_object_r,mag_object_i,mag_object_z,mag_object_y,z_central";

#[test]
fn challenge_format_at_a_threshold_file() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.csv", "id,logit\nobject_3,4\nobject_1,-1\nobject_2,0.5\nobject_4,-3\n");
    let b = write(t.path(), "b.csv", "id,logit\nobject_1,-2\nobject_2,1.5\nobject_3,2\nobject_4,1\n");
    // A threshold file as lens-eval --pick-threshold writes it, on logits: mean logit >= 0.9 (object_3: 3,
    // object_2: 1; object_4: -1, object_1: -1.5).
    let val = write(t.path(), "val.csv", "id,label,source,logit\nv1,1,1,1.0\nv2,0,1,0.8\nv3,1,2,3\n");
    let out = ok(tool("lens-eval").arg("--pred").arg(&val).args(["--pick-threshold", "fpr=0"]));
    let threshold = t.path().join("threshold.json");
    fs::write(&threshold, &out.stdout).unwrap();
    let point: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(point["logit"].as_f64(), Some(0.9), "midway between 1.0 (called) and 0.8 (not)");
    let text = run(&[&a, &b], &["--format", "challenge", "--threshold", threshold.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], CHALLENGE_HEADER);
    assert_eq!(text.as_bytes()[..CHALLENGE_HEADER.len() + 1], *format!("{CHALLENGE_HEADER}\n").as_bytes());
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["object_1", "object_2", "object_3", "object_4"]);
    assert_eq!(rows.iter().map(|r| r[1]).collect::<Vec<_>>(), ["0", "1", "1", "0"]);
    assert!(rows.iter().all(|r| r.len() == 41 && r[2..].iter().all(|v| *v == "-999")));
    // A plain number is still a probability threshold.
    let text = run(&[&a, &b], &["--format", "challenge", "--threshold", "0.9"]);
    assert_eq!(text.lines().skip(1).filter(|l| l.split(',').nth(1) == Some("1")).count(), 1, "only object_3");
    // No threshold, no challenge file; a bad threshold file is named.
    let err = fails(tool("lens-ensemble").arg(&a).arg(&b).args(["--format", "challenge"]));
    assert!(err.contains("--format challenge needs --threshold"), "{err}");
    let err = fails(tool("lens-ensemble").arg(&a).args(["--threshold"]).arg(&a));
    assert!(err.contains("is neither a number nor a threshold file"), "{err}");
}

#[test]
fn validation_predictions_ensemble_with_weights_chosen_on_them() {
    let t = tempfile::tempdir().unwrap();
    // A good member, a poor one: on validation, lenses above non-lenses for the good one, mixed for the poor.
    let mut good = String::from("id,label,source,logit\n");
    let mut poor = good.clone();
    for k in 0..200 {
        let label = u8::from(k % 4 == 0);
        let base = if label == 1 { 1.0 } else { -1.0 };
        let jitter = f64::from((k * 37) % 100) / 50.0 - 1.0;
        good.push_str(&format!("v{k:03},{label},{},{:.6}\n", 1 + k % 2, base + 1.2 * jitter));
        poor.push_str(&format!("v{k:03},{label},{},{:.6}\n", 1 + k % 2, 0.2 * base + 3.0 * jitter * jitter - 1.5));
    }
    let (g, p) = (write(t.path(), "good.val.csv", &good), write(t.path(), "poor.val.csv", &poor));
    // The ensemble of validation predictions keeps labels and sources and adds the logit.
    let val = run(&[&g, &p], &[]);
    assert!(val.starts_with("id,label,source,logit,pred\nv000,1,1,"), "{val}");
    let weights_from = format!("{},{}", g.display(), p.display());
    for metric in ["auc", "log-loss"] {
        let out = ok(tool("lens-ensemble").arg(&g).arg(&p).args(["--weights-from", &weights_from, "--weights-metric", metric]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("poor.val.csv is much worse than the best member on validation"), "{err}");
        // "validation METRIC of the ensemble X with these weights, Y with equal weights": X never worse than Y.
        let line = err.lines().find(|l| l.contains("with equal weights")).unwrap();
        let numbers: Vec<f64> = line.split_whitespace().filter_map(|w| w.trim_end_matches(',').parse().ok()).collect();
        let (chosen, equal) = (numbers[0], numbers[1]);
        if metric == "auc" {
            assert!(chosen >= equal, "{line}");
        } else {
            assert!(chosen <= equal, "{line}");
        }
    }
    let err = fails(tool("lens-ensemble").arg(&g).arg(&p).args(["--weights-from"]).arg(&g));
    assert!(err.contains("1 validation files for 2 models"), "{err}");
}

//! scripts/pipeline.mk: the whole chain on a tiny synthetic set, then make's bookkeeping: a second run does
//! nothing, touching an input reruns exactly what depends on it, and a failed step leaves nothing up to date.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lensfind_e2e::*;

fn makefile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pipeline.mk")
}

/// `make -f scripts/pipeline.mk` in `dir` on a tiny set with the built tools; `extra` are more arguments.
fn make(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.current_dir(dir)
        .arg("-f")
        .arg(makefile())
        .arg(format!("BIN={}/", fresh_bin_dir().display()))
        .args(["OUT=out", "SYNTH_OBJECTS=8", "EPOCHS=1", "TRAIN_ARGS=--batch-size 16 --lr 2e-3 --threads 1"])
        .args(extra)
        // Not the jobserver or flags of a make that runs this test.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    c
}

/// The tools a dry run (make -n) would run, in order.
fn would_run(dir: &Path) -> Vec<String> {
    let out: Output = ok(&mut make(dir, &["-n"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .filter_map(|w| w.rsplit('/').next().filter(|t| t.starts_with("lens-")).map(str::to_string))
        .collect()
}

fn up_to_date(dir: &Path) -> bool {
    make(dir, &["-q"]).status().unwrap().success()
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).modified().unwrap()
}

#[test]
fn pipeline_runs_once_and_reruns_what_changed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    ok(&mut make(dir, &["-j2"]));
    let out = dir.join("out");
    for f in ["submission.csv", "metrics.json", "candidates.png", "runs/convnext_atto/model.safetensors"] {
        assert!(out.join(f).is_file(), "{f} made");
    }
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["all"]["n"], 16, "the blind set: 8 lenses and 8 non-lenses");
    assert_eq!(csv_rows(&out.join("submission.csv")).len(), 16);
    assert!(!out.join("runs/convnext_atto.partial").exists() && !out.join("metrics.json.tmp").exists());
    challenge_submission_at_the_operating_point(&out);

    // A second make does nothing.
    assert!(up_to_date(dir), "make -q: everything up to date");
    let again = ok(&mut make(dir, &[]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing to be done"), "{again:?}");

    // A changed test index: re-pack and re-score the test set; the models stay.
    let model = out.join("runs/convnext_femto/model.safetensors");
    let trained = mtime(&model);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let touch = |p: &Path| ok(Command::new("touch").arg(p));
    touch(&out.join("test.index.csv"));
    assert_eq!(
        would_run(dir),
        [
            "lens-pack",
            "lens-infer",
            "lens-infer",
            "lens-ensemble",
            "lens-ensemble",
            "lens-view",
            "lens-eval",
            "lens-eval"
        ],
        "exactly what depends on the test index"
    );
    ok(&mut make(dir, &["-j2"]));
    assert!(up_to_date(dir));
    assert_eq!(mtime(&model), trained, "the models were not retrained");

    // A changed training pack: both models retrain, and everything after them reruns.
    touch(&out.join("train.pack/pack.json"));
    let steps = would_run(dir);
    assert_eq!(steps.iter().filter(|s| *s == "lens-train").count(), 2, "{steps:?}");
    assert!(!steps.contains(&"lens-pack".to_string()) && steps.ends_with(&["lens-eval".to_string()]), "{steps:?}");
}

/// The challenge file of the pipeline: the two runs share their validation objects, the threshold was picked on
/// their ensemble at FPR 1e-2, and challenge.csv holds one row per blind object (the pack's ids) with preds 1
/// exactly where the mean logit of the two models reaches the threshold, -999 elsewhere.
fn challenge_submission_at_the_operating_point(out: &Path) {
    let val_ids = |m: &str| -> Vec<String> {
        csv_rows(&out.join(format!("runs/{m}/val_predictions.csv"))).into_iter().map(|r| r[0].clone()).collect()
    };
    assert_eq!(val_ids("convnext_atto"), val_ids("convnext_femto"), "one validation split");
    let point: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("threshold.json")).unwrap()).unwrap();
    assert_eq!((point["rule"].as_str(), point["score_column"].as_str()), (Some("fpr=0.01"), Some("logit")));
    assert!(point["fpr"].as_f64().unwrap() <= 0.01, "{point}");
    let threshold = point["logit"].as_f64().unwrap();
    let text = std::fs::read_to_string(out.join("challenge.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().split(',').count(), 41);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut pack_ids: Vec<String> =
        csv_rows(&out.join("test.pack/meta.csv")).into_iter().map(|r| r[1].clone()).collect();
    pack_ids.sort();
    assert_eq!(rows.iter().map(|r| r[0].to_string()).collect::<Vec<_>>(), pack_ids, "one row per blind object");
    let logits = |m: &str| -> std::collections::HashMap<String, f64> {
        csv_rows(&out.join(format!("{m}.logits.csv")))
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect()
    };
    let (a, f) = (logits("convnext_atto"), logits("convnext_femto"));
    for r in &rows {
        let called = (a[r[0]] + f[r[0]]) / 2.0 >= threshold;
        assert_eq!(r[1], if called { "1" } else { "0" }, "{}", r[0]);
        assert!(r.len() == 41 && r[2..].iter().all(|v| *v == "-999"));
    }
    let realised: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("challenge.metrics.json")).unwrap()).unwrap();
    let called = rows.iter().filter(|r| r[1] == "1").count() as u64;
    let at = &realised["at_threshold"];
    assert_eq!(at["tp"].as_u64().unwrap() + at["fp"].as_u64().unwrap(), called, "{realised}");
}

#[test]
fn a_failed_training_leaves_nothing_that_looks_done() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let out = make(dir, &["MODELS=no_such_model"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_model"));
    // The steps before it are done and stay done; the run and what follows it do not exist.
    assert!(dir.join("out/train.pack/pack.json").is_file());
    assert!(!dir.join("out/runs/no_such_model").exists());
    assert!(!dir.join("out/submission.csv").exists());
    assert!(!make(dir, &["MODELS=no_such_model", "-q"]).status().unwrap().success(), "still out of date");
    assert_eq!(would_run(dir).first().map(String::as_str), Some("lens-train"), "only the failed step reruns first");
}

/// SEEDS='1 2' WEIGHTS=validation: one run per seed (MODEL.sSEED) on the same data and validation split, merged
/// with the weights lens-ensemble chooses on their validation predictions; the same weights make the validation
/// ensemble (where the threshold is picked) and the test set's challenge file.
#[test]
fn a_seed_ensemble_trains_one_run_per_seed_and_merges_them_with_validation_weights() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let seeds = ["MODELS=convnext_atto", "SEEDS=1 2", "WEIGHTS=validation"];
    ok(&mut make(dir, &seeds));
    let out = dir.join("out");
    let member = |s: u64| out.join(format!("runs/convnext_atto.s{s}"));
    for s in [1, 2] {
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(member(s).join("config.json")).unwrap()).unwrap();
        assert_eq!((config["seed"].as_u64(), config["split_seed"].as_u64()), (Some(s), Some(42)), "{config}");
        assert_eq!(config["model"], "convnext_atto");
    }
    assert!(!out.join("runs/convnext_atto").exists(), "no run outside the ensemble");
    let by_id = |p: &Path, col: usize| -> Vec<(String, f64)> {
        csv_rows(p).into_iter().map(|r| (r[0].clone(), r[col].parse().unwrap())).collect()
    };
    let (v1, v2) = (by_id(&member(1).join("val_predictions.csv"), 3), by_id(&member(2).join("val_predictions.csv"), 3));
    let ids = |v: &[(String, f64)]| v.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&v1), ids(&v2), "one validation split");
    assert!(v1.iter().zip(&v2).any(|(a, b)| a.1 != b.1), "two seeds, two models");

    // The validation ensemble is w * member 1 + (1 - w) * member 2 with one w in [0, 1] for every row; find w
    // on the row where the members differ most and check it on all (every logit is written with 6 decimals, so
    // w found on that row predicts each row within a few 1e-6: 1e-4 is far from both that and a wrong w).
    let ensemble = by_id(&out.join("val.ensemble.csv"), 3);
    assert_eq!(ids(&ensemble), ids(&v1));
    let (k, _) = v1.iter().zip(&v2).enumerate().fold((0, 0.0), |(bk, bd), (k, (a, b))| {
        if (a.1 - b.1).abs() > bd {
            (k, (a.1 - b.1).abs())
        } else {
            (bk, bd)
        }
    });
    let w = (ensemble[k].1 - v2[k].1) / (v1[k].1 - v2[k].1);
    assert!((-1e-3..=1.0 + 1e-3).contains(&w), "weight {w}");
    for ((e, a), b) in ensemble.iter().zip(&v1).zip(&v2) {
        assert!((e.1 - (w * a.1 + (1.0 - w) * b.1)).abs() < 1e-4, "{}: {} vs w = {w}", e.0, e.1);
    }

    // The challenge file calls a lens exactly where the same weighted logit of the test set reaches the
    // threshold picked on the validation ensemble (objects within 1e-4 of it are not judged, as above).
    let threshold = serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("threshold.json")).unwrap())
        .unwrap()["logit"]
        .as_f64()
        .unwrap();
    let test = |s: u64| -> std::collections::HashMap<String, f64> {
        by_id(&out.join(format!("convnext_atto.s{s}.logits.csv")), 1).into_iter().collect()
    };
    let (t1, t2) = (test(1), test(2));
    let text = std::fs::read_to_string(out.join("challenge.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 16);
    for r in &rows {
        let logit = w * t1[r[0]] + (1.0 - w) * t2[r[0]];
        if (logit - threshold).abs() > 1e-4 {
            assert_eq!(r[1], if logit >= threshold { "1" } else { "0" }, "{}: {logit} vs {threshold}", r[0]);
        }
    }
    assert_eq!(csv_rows(&out.join("submission.csv")).len(), 16);
    assert!(make(dir, &["-q", seeds[0], seeds[1], seeds[2]]).status().unwrap().success(), "a second make does nothing");

    // An unknown merge is refused before anything runs.
    let bad = make(dir, &["WEIGHTS=median"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("WEIGHTS=median"), "{bad:?}");
}

//! lens-eval against sklearn and direct counts on fixed examples, ties included.

use std::fs;

use lensfind_e2e::*;

fn eval(pred: &str, truth: &str, extra: &[&str]) -> serde_json::Value {
    let t = tempfile::tempdir().unwrap();
    let (p, l) = (t.path().join("pred.csv"), t.path().join("labels.csv"));
    fs::write(&p, pred).unwrap();
    fs::write(&l, truth).unwrap();
    let out = ok(tool("lens-eval").arg("--pred").arg(&p).arg("--truth").arg(&l).args(extra));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// 6 lenses and 10 non-lenses with ties across the classes.
fn example() -> (String, String, Vec<f64>, Vec<u8>) {
    let scores = [0.9, 0.8, 0.8, 0.7, 0.7, 0.3, 0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1];
    let labels = [1u8, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut pred = String::from("id,pred\n");
    let mut truth = String::from("id,label,source\n");
    for (i, (s, l)) in scores.iter().zip(labels).enumerate() {
        pred.push_str(&format!("o{i},{s}\n"));
        truth.push_str(&format!("o{i},{l},{}\n", 1 + i % 2));
    }
    (pred, truth, scores.to_vec(), labels.to_vec())
}

#[test]
fn auc_matches_sklearn_and_counts_match_by_hand() {
    let (pred, truth, scores, labels) = example();
    let v = eval(&pred, &truth, &[]);
    let all = &v["all"];
    // By hand: pairs (lens, non-lens) = 60; wins + ties/2.
    let mut wins = 0.0;
    for (s, l) in scores.iter().zip(&labels) {
        if *l == 1 {
            for (t, m) in scores.iter().zip(&labels) {
                if *m == 0 {
                    wins += if s > t {
                        1.0
                    } else if s == t {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
    }
    assert_eq!(all["auc"].as_f64().unwrap(), wins / 60.0);
    // The top score is a non-lens: nothing before the first false positive.
    assert_eq!(all["tpr0"].as_f64().unwrap(), 0.0);
    // FPR <= 1e-2 with 10 negatives means no false positive either.
    assert_eq!(all["tpr_at_fpr_1e2"].as_f64().unwrap(), 0.0);
    // Fewer than 10 false positives: down to 0.3 (FPs 0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3 = 7): all 6 lenses.
    assert_eq!(all["tpr10"].as_f64().unwrap(), 1.0);
    // At 0.5: TP = 5 (0.9, 0.8, 0.8, 0.7, 0.7), FP = 5 (0.95, 0.8, 0.7, 0.6, 0.5).
    assert_eq!(all["precision"].as_f64().unwrap(), 0.5);
    assert!((all["recall"].as_f64().unwrap() - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(v["by_source"]["1"]["n"].as_u64().unwrap(), 8);

    let python = match python_with(&["sklearn"]) {
        Ok(p) => p,
        Err(why) => return cannot_run("auc_matches_sklearn_and_counts_match_by_hand", &why),
    };
    let script =
        format!("from sklearn.metrics import roc_auc_score\nprint(repr(roc_auc_score({labels:?}, {scores:?})))");
    let out = ok(std::process::Command::new(python).args(["-c", &script]));
    let sk: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((all["auc"].as_f64().unwrap() - sk).abs() < 1e-12, "ours {} sklearn {sk}", all["auc"]);
}

#[test]
fn logits_use_threshold_zero_and_ids_must_match() {
    let v = eval("id,logit\na,2\nb,-1\nc,0.5\n", "id,label\na,1\nb,0\nc,0\n", &[]);
    assert_eq!(v["threshold"].as_f64().unwrap(), 0.0);
    assert_eq!(v["all"]["accuracy"].as_f64().unwrap(), 2.0 / 3.0);
    let t = tempfile::tempdir().unwrap();
    let (p, l) = (t.path().join("p.csv"), t.path().join("l.csv"));
    fs::write(&p, "id,pred\na,0.9\nz,0.1\n").unwrap();
    fs::write(&l, "id,label\na,1\nb,0\n").unwrap();
    let err = fails(tool("lens-eval").arg("--pred").arg(&p).arg("--truth").arg(&l));
    assert!(err.contains("1 id(s) have no label in") && err.contains(": z"), "{err}");
    let out = ok(tool("lens-eval").arg("--pred").arg(&p).arg("--truth").arg(&l).arg("--allow-missing"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["missing_labels"].as_u64(), v["missing_scores"].as_u64(), v["all"]["n"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
}

#[test]
fn plots_the_roc_curve() {
    let (pred, truth, _, _) = example();
    let t = tempfile::tempdir().unwrap();
    let (p, l, png_path) = (t.path().join("pred.csv"), t.path().join("labels.csv"), t.path().join("roc.png"));
    fs::write(&p, pred).unwrap();
    fs::write(&l, truth).unwrap();
    ok(tool("lens-eval").arg("--pred").arg(&p).arg("--truth").arg(&l).arg("--plot").arg(&png_path));
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(&png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1800, 650), "the ROC curves and the reliability diagram");
    let px = |x: u32, y: u32| {
        let i = ((y * info.width + x) * 3) as usize;
        (buf[i], buf[i + 1], buf[i + 2])
    };
    // The curves are drawn in blue, red and green on white: count strongly coloured pixels.
    let coloured = (0..info.height)
        .flat_map(|y| (0..info.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = px(x, y);
            (b > 200 && r < 80 && g < 80) || (r > 200 && g < 80 && b < 80) || (g > 200 && r < 80 && b < 80)
        })
        .count();
    assert!(coloured > 1000, "{coloured} coloured pixels");
    // The reliability diagram on the right: its red curve and points.
    let red_right = (0..info.height)
        .flat_map(|y| (900..info.width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = px(x, y);
            r > 200 && g < 80 && b < 80
        })
        .count();
    assert!(red_right > 300, "{red_right} red pixels in the reliability diagram");
    assert_eq!(px(2, 2), (255, 255, 255), "white background");
}

/// Validation predictions (id,label,source,logit) of 1000 non-lenses and 100 lenses, every score distinct: an
/// over-confident model (its logits are 5 times what its evidence supports) when `scale` is 5.
fn validation(scale: f64) -> String {
    let mut text = String::from("id,label,source,logit\n");
    for k in 0..1100u32 {
        let label = u8::from(k >= 1000);
        // A deterministic spread: non-lenses around -2, lenses around +2, overlapping; distinct values.
        let u = f64::from(k * 7919 % 1000) / 1000.0 + f64::from(k) * 1e-7;
        let evidence = if label == 1 { 2.0 + 3.0 * (u - 0.5) * 2.0 } else { -2.0 + 3.0 * (u - 0.5) * 2.0 };
        text.push_str(&format!("v{k:05},{label},{},{:.6}\n", 1 + k % 2, scale * evidence));
    }
    text
}

#[test]
fn a_threshold_picked_at_fpr_1e2_gives_that_rate_on_validation() {
    let t = tempfile::tempdir().unwrap();
    let val = t.path().join("val.csv");
    fs::write(&val, validation(1.0)).unwrap();
    let out = ok(tool("lens-eval").arg("--pred").arg(&val).args(["--pick-threshold", "fpr=1e-2"]));
    let point: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 1000 non-lenses and distinct scores: a cut falls at exactly 10 false positives.
    assert_eq!((point["fp"].as_u64(), point["fpr"].as_f64()), (Some(10), Some(0.01)), "{point}");
    assert_eq!((point["format"].as_str(), point["score_column"].as_str()), (Some("lensfind-threshold"), Some("logit")));
    let logit = point["logit"].as_f64().unwrap();
    let prob = point["probability"].as_f64().unwrap();
    assert!((prob - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-15);
    // lens-eval at that threshold counts the same, with the labels given apart as --truth.
    let truth = t.path().join("truth.csv");
    let labels: String = validation(1.0).lines().map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n").collect();
    fs::write(&truth, labels).unwrap();
    let v = ok(tool("lens-eval").arg("--pred").arg(&val).arg("--truth").arg(&truth).arg("--threshold").arg(logit.to_string()));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let tp = point["tp"].as_f64().unwrap();
    assert_eq!(v["all"]["recall"].as_f64(), Some(tp / 100.0));
    assert_eq!(v["all"]["precision"].as_f64(), Some(tp / (tp + 10.0)));
    // Other rules, and a fraction without labels.
    for (rule, check) in [("tpr=0.9", "tpr"), ("f1", "f1"), ("fraction=0.05", "fraction")] {
        let out = ok(tool("lens-eval").arg("--pred").arg(&val).args(["--pick-threshold", rule]));
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(p[check].as_f64().is_some(), "{rule}: {p}");
    }
    assert_eq!(ok_json(&val, &["--pick-threshold", "fraction=0.05"])["called"].as_u64(), Some(55));
    assert!(fails(tool("lens-eval").arg("--pred").arg(&val).args(["--pick-threshold", "fpr=2"])).contains("is not a rule"));
}

fn ok_json(pred: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&ok(tool("lens-eval").arg("--pred").arg(pred).args(extra)).stdout).unwrap()
}

#[test]
fn calibration_lowers_the_log_loss_of_an_over_confident_model_and_keeps_auc() {
    let t = tempfile::tempdir().unwrap();
    let val = t.path().join("val.csv");
    fs::write(&val, validation(5.0)).unwrap();
    let cal = t.path().join("calibration.json");
    let before = ok_json(&val, &["--fit-calibration", cal.to_str().unwrap()]);
    let c: serde_json::Value = serde_json::from_slice(&fs::read(&cal).unwrap()).unwrap();
    assert_eq!((c["format"].as_str(), c["method"].as_str()), (Some("lensfind-calibration"), Some("temperature")));
    assert!(c["temperature"].as_f64().unwrap() > 2.0, "{c}");
    // The calibrated validation ensemble (one member): id,label,source,logit,pred with calibrated values.
    let calibrated = t.path().join("val.calibrated.csv");
    ok(tool("lens-ensemble").arg(&val).arg("--calibration").arg(&cal).arg("-o").arg(&calibrated));
    let after = ok_json(&calibrated, &[]);
    assert_eq!(before["calibration"]["probabilities"], "sigmoid(logit)");
    assert_eq!(after["calibration"]["probabilities"], "pred");
    let (b, a) = (&before["calibration"], &after["calibration"]);
    assert!(a["log_loss"].as_f64() < Some(b["log_loss"].as_f64().unwrap() - 0.05), "before {b}, after {a}");
    // Brier and ECE are reported (whether they fall depends on the data; the library's test checks them on a
    // model whose probabilities are known).
    assert!(a["brier"].as_f64().is_some() && a["ece"].as_f64().is_some() && a["reliability"].as_array().unwrap().len() == 10);
    // AUC from the calibrated logits is the uncalibrated one exactly: the ranking did not change.
    assert_eq!(after["all"]["auc"], before["all"]["auc"]);
    assert_eq!(after["all"]["tpr_at_fpr_1e2"], before["all"]["tpr_at_fpr_1e2"]);
    // Platt fits a bias as well; a file of probabilities cannot be fitted.
    ok_json(&val, &["--fit-calibration", cal.to_str().unwrap(), "--platt"]);
    let c: serde_json::Value = serde_json::from_slice(&fs::read(&cal).unwrap()).unwrap();
    assert_eq!(c["method"].as_str(), Some("platt"));
    let probs = t.path().join("p.csv");
    fs::write(&probs, "id,label,pred\na,1,0.9\nb,0,0.2\n").unwrap();
    let err = fails(tool("lens-eval").arg("--pred").arg(&probs).arg("--fit-calibration").arg(&cal));
    assert!(err.contains("fits on logits"), "{err}");
}

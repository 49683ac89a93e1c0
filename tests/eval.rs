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
    assert_eq!((info.width, info.height), (900, 650));
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
    assert_eq!(px(2, 2), (255, 255, 255), "white background");
}

//! lens-infer end to end: the same logits as the model called in training's validation, views averaged, shards
//! that add up, clear errors.

use std::collections::HashMap;
use std::fs;

use lensfind_e2e::*;

fn read_logits(text: &str) -> Vec<(String, Vec<f64>)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let id = f.next().unwrap().to_string();
            (id, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

/// Fixed settings, so that the outputs compared here come from the same arithmetic.
const FIXED: [&str; 4] = ["--precision", "fp32", "--memory-format", "channels-last"];

#[test]
fn infer_matches_validation_and_shards_add_up() {
    let (t, p) = packed_dataset(20, 8);
    let run = t.path().join("run");
    ok(tool("lens-train")
        .args(["-q", "--model", "convnext_atto", "--epochs", "1", "--batch-size", "16"])
        .args(["--precision", "fp32", "--memory-format", "contiguous", "--pack"])
        .arg(&p)
        .arg("--out")
        .arg(&run));

    // Without TTA and in fp32, lens-infer gives the logits that training's validation computed in-process.
    let out = ok(tool("lens-infer")
        .args(["-q", "--tta", "none", "--precision", "fp32", "--memory-format", "contiguous", "--run"])
        .arg(&run)
        .arg("--pack")
        .arg(&p));
    let logits: HashMap<String, f64> =
        read_logits(&String::from_utf8(out.stdout).unwrap()).into_iter().map(|(id, v)| (id, v[0])).collect();
    assert_eq!(logits.len(), 80);
    let val = csv_rows(&run.join("val_predictions.csv"));
    assert_eq!(val.len(), 16);
    for row in &val {
        let want: f64 = row[3].parse().unwrap();
        assert!((logits[&row[0]] - want).abs() <= 2e-6, "{}: {} vs {want}", row[0], logits[&row[0]]);
    }

    // flips: the mean column is the mean of the three view columns; d4, the default, has 8 views.
    let out = ok(tool("lens-infer")
        .args(["-q", "--per-view", "--tta", "flips"])
        .args(FIXED)
        .arg("--run")
        .arg(&run)
        .arg("--pack")
        .arg(&p));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("id,logit,logit_orig,logit_hflip,logit_vflip\n"), "{}", &text[..60]);
    for (_, v) in read_logits(&text) {
        assert!((v[0] - (v[1] + v[2] + v[3]) / 3.0).abs() < 2e-6);
    }
    let out =
        ok(tool("lens-infer").args(["-q", "--per-view"]).args(FIXED).arg("--run").arg(&run).arg("--pack").arg(&p));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next().unwrap().split(',').count(), 2 + 8, "d4 by default");
    for (_, v) in read_logits(&text) {
        assert!((v[0] - v[1..].iter().sum::<f64>() / 8.0).abs() < 2e-6);
    }

    // Shards: disjoint, and together the whole pack.
    let mut ids = Vec::new();
    for k in 0..3 {
        let out = ok(tool("lens-infer")
            .args(["-q", "--shard", &format!("{k}/3")])
            .args(FIXED)
            .arg("--run")
            .arg(&run)
            .arg("--pack")
            .arg(&p));
        ids.extend(read_logits(&String::from_utf8(out.stdout).unwrap()).into_iter().map(|(id, _)| id));
    }
    ids.sort();
    let mut all: Vec<String> = logits.keys().cloned().collect();
    all.sort();
    assert_eq!(ids, all);

    // Weights that do not fit the config: a clear error naming the file.
    let cfg = fs::read_to_string(run.join("config.json")).unwrap().replace("convnext_atto\"", "convnext_femto\"");
    let cfg = cfg
        .replace("[40, 80, 160, 320]", "[48, 96, 192, 384]")
        .replace("40,\n      80,\n      160,\n      320", "48,\n      96,\n      192,\n      384");
    fs::write(run.join("config.json"), cfg).unwrap();
    let err = fails(tool("lens-infer").arg("--run").arg(&run).arg("--pack").arg(&p));
    assert!(err.contains("model.safetensors into a convnext_femto") && err.contains("do not match"), "{err}");
    let err = fails(tool("lens-infer").args(["--shard", "3/3", "--run"]).arg(&run).arg("--pack").arg(&p));
    assert!(err.contains("0 <= K < N"), "{err}");
}

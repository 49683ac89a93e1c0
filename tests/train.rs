//! lens-train end to end: it learns the synthetic task, is reproducible, resumes exactly after SIGKILL and SIGTERM,
//! and refuses bad arguments clearly.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lensfind_e2e::*;

fn train_cmd(pack: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = tool("lens-train");
    c.args(["-q", "-j", "2", "--model", "convnext_atto", "--batch-size", "32", "--lr", "2e-3"])
        .args(["--precision", "fp32", "--memory-format", "contiguous"])
        .arg("--pack")
        .arg(pack)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

fn last_metrics(run: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let last: Vec<String> = lines.last().unwrap().split(',').map(String::from).collect();
    header.into_iter().zip(last).collect()
}

fn metric(run: &Path, name: &str) -> f64 {
    last_metrics(run).into_iter().find(|(k, _)| k == name).unwrap().1.parse().unwrap()
}

#[test]
fn learns_the_synthetic_task_reproducibly() {
    let (t, p) = packed_dataset(100, 21);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    ok(&mut train_cmd(&p, &a, &["--epochs", "3"]));
    let auc = metric(&a, "val_auc");
    assert!(auc > 0.8, "validation AUC after 3 epochs: {auc}");
    for f in ["config.json", "metrics.csv", "model.safetensors", "val_predictions.csv", "timing.csv"] {
        assert!(a.join(f).exists(), "{f}");
    }
    let preds = csv_rows(&a.join("val_predictions.csv"));
    assert_eq!(preds.len(), 80, "20% of each (label, source) group of 400 objects");
    // timing.csv: a row per epoch whose parts add up to the whole epoch and whose speeds are its images over them.
    let timing = fs::read_to_string(a.join("timing.csv")).unwrap();
    let mut lines = timing.lines();
    let header =
        "epoch,train_seconds,train_images_per_s,validation_seconds,save_seconds,epoch_seconds,epoch_images_per_s";
    assert_eq!(lines.next(), Some(header));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
    for r in &rows {
        let (train, rate, val, save, whole, whole_rate) = (r[1], r[2], r[3], r[4], r[5], r[6]);
        assert!(train > 0.0 && val > 0.0 && save > 0.0, "{r:?}");
        // Each value is printed rounded (seconds to 1 ms, speeds to 0.1 image/s): compared within that rounding.
        assert!((whole - (train + val + save)).abs() <= 0.002, "{r:?}");
        assert!((rate * train - 320.0).abs() <= 0.05 * train + 0.0005 * rate + 1.0, "320 images trained: {r:?}");
        assert!((whole_rate * whole - 320.0).abs() <= 0.05 * whole + 0.0005 * whole_rate + 1.0, "{r:?}");
    }
    ok(&mut train_cmd(&p, &b, &["--epochs", "3"]));
    assert_eq!(fs::read(a.join("metrics.csv")).unwrap(), fs::read(b.join("metrics.csv")).unwrap());
    assert_eq!(fs::read(a.join("model.safetensors")).unwrap(), fs::read(b.join("model.safetensors")).unwrap());
    // The whole pack on the device (here the CPU) instead of batches gathered from the mapped file: same run.
    let c = t.path().join("c");
    ok(&mut train_cmd(&p, &c, &["--epochs", "3", "--data-on-device"]));
    assert_eq!(fs::read(a.join("metrics.csv")).unwrap(), fs::read(c.join("metrics.csv")).unwrap());
    // A run directory is never overwritten.
    let err = fails(&mut train_cmd(&p, &a, &["--epochs", "3"]));
    assert!(err.contains(": already holds a run: resume it, or choose another directory"), "{err}");
}

/// Waits until the run has a mid-epoch checkpoint, then sends `signal`.
fn interrupt(cmd: &mut Command, run: &Path, signal: &str) -> std::process::ExitStatus {
    let mut child = cmd.stderr(Stdio::null()).spawn().unwrap();
    let state = run.join("checkpoint/state.json");
    let start = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(&state) {
            if text.contains("\"batch_in_epoch\": 2") || text.contains("\"batch_in_epoch\": 4") {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        std::thread::sleep(Duration::from_millis(5));
    }
    Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap()
}

#[test]
fn resumes_bit_identically_after_sigkill_and_sigterm() {
    let (t, p) = packed_dataset(40, 5);
    let extra = ["--epochs", "2", "--checkpoint-every", "2"];
    let reference = t.path().join("ref");
    ok(&mut train_cmd(&p, &reference, &extra));

    for (signal, code) in [("KILL", None), ("TERM", Some(143))] {
        let run = t.path().join(format!("run-{signal}"));
        let status = interrupt(&mut train_cmd(&p, &run, &extra), &run, signal);
        assert_eq!(status.code(), code, "exit status after SIG{signal}");
        let out = ok(tool("lens-train").args(["-j", "2", "--resume", "--out"]).arg(&run));
        assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&out.stderr));
        for f in ["checkpoint/state.safetensors", "model.safetensors", "metrics.csv", "val_predictions.csv"] {
            assert!(
                fs::read(reference.join(f)).unwrap() == fs::read(run.join(f)).unwrap(),
                "{f} differs from the uninterrupted run after SIG{signal} and --resume"
            );
        }
    }
}

#[test]
fn auto_resume_starts_a_run_continues_it_and_refuses_other_settings() {
    let (t, p) = packed_dataset(40, 6);
    let same = ["--epochs", "2", "--checkpoint-every", "2", "--auto-resume"];
    let files = ["model.safetensors", "metrics.csv", "val_predictions.csv", "checkpoint/state.safetensors"];
    let read = |run: &Path| files.map(|f| fs::read(run.join(f)).unwrap());
    // No run yet: a new one. Again: it is complete, and stays as it was.
    let whole = t.path().join("whole");
    ok(&mut train_cmd(&p, &whole, &same));
    let before = read(&whole);
    let out = ok(&mut train_cmd(&p, &whole, &same));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already complete"));
    assert!(read(&whole) == before, "a complete run is left as it was");

    // Other settings: an error that names them (--checkpoint-every and --device may change); the recipe's warm-up,
    // a tenth of the run's steps here, follows the epochs.
    let other = ["--epochs", "3", "--weight-decay", "0.05", "--auto-resume", "--device", "cpu"];
    let err = fails(&mut train_cmd(&p, &whole, &other));
    assert!(
        err.contains(
            "holds a run with other settings (epochs: 2 in config.json, 3 on the command line; warmup_steps: 0 in \
             config.json, 1 on the command line; weight_decay: 0.01 in config.json, 0.05 on the command line)"
        ),
        "{err}"
    );

    // Killed outright: the same command continues from the last checkpoint, to the same run.
    let killed = t.path().join("killed");
    let status = interrupt(&mut train_cmd(&p, &killed, &same), &killed, "KILL");
    assert_eq!(status.code(), None);
    ok(&mut train_cmd(&p, &killed, &same));
    assert!(read(&killed) == before, "killed, then continued with --auto-resume: not the uninterrupted run");

    // Killed before its first checkpoint (only config.json written): the same command trains it from the first
    // step, in place, to the same run.
    let early = t.path().join("early");
    fs::create_dir(&early).unwrap();
    fs::copy(whole.join("config.json"), early.join("config.json")).unwrap();
    let mut loud = tool("lens-train"); // train_cmd's settings without -q
    loud.args(["-j", "2", "--model", "convnext_atto", "--batch-size", "32", "--lr", "2e-3", "--precision", "fp32"])
        .args(["--memory-format", "contiguous", "--pack"])
        .arg(&p)
        .arg("--out")
        .arg(&early)
        .args(same);
    let out = ok(&mut loud);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no checkpoint yet: starting it from the first step"));
    assert!(read(&early) == before, "trained again from config.json: not the same run");
}

#[test]
fn bad_arguments_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("run");
    let err = fails(tool("lens-train").arg("--pack").arg(t.path().join("nope.pack")).arg("--out").arg(&out));
    assert!(err.contains("is not a pack (no pack.json)"), "{err}");

    let (t2, p) = packed_dataset(1, 3); // 4 objects: 2 lenses, 2 non-lenses, one per (label, source) group
    let err = fails(
        tool("lens-train").args(["--model", "resnet50", "--pack"]).arg(&p).arg("--out").arg(t2.path().join("r1")),
    );
    assert!(err.contains("unknown model \"resnet50\"; known: convnext_atto"), "{err}");
    let err = fails(&mut train_cmd(&p, &t2.path().join("r2"), &["--epochs", "1"]));
    assert!(err.contains("validation set has 0 lenses among 0 objects: both classes are needed"), "{err}");
    let err = fails(tool("lens-train").arg("--resume").arg("--out").arg(t.path().join("none")));
    assert!(err.contains("a lens-train run?)") && err.contains("No such file"), "{err}");
    let err = fails(tool("lens-train").args(["--resume", "--lr", "1", "--out"]).arg(t2.path().join("r2")));
    assert!(err.contains("drop --lr"), "{err}");

    let out = ok(tool("lens-train").arg("--list-models"));
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("convnext_tiny") && listing.contains("27.82M") && listing.contains("224x224"),
        "{listing}"
    );
}

#[test]
fn a_pretrained_checkpoint_that_does_not_fit_is_a_clear_error() {
    let (t, p) = packed_dataset(5, 27);
    // A safetensors file holding one tensor, the first convolution of 2-D shape: not a convnext_atto checkpoint.
    let ckpt = t.path().join("odd.safetensors");
    let header = br#"{"stem.0.weight":{"dtype":"F32","shape":[40,3],"data_offsets":[0,480]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 480]);
    fs::write(&ckpt, bytes).unwrap();
    let run = t.path().join("run");
    let err = fails(&mut train_cmd(&p, &run, &["--epochs", "1", "--pretrained", ckpt.to_str().unwrap()]));
    // (After the note that batch 32 is more than the 16 training objects.)
    assert!(err.lines().any(|l| l.starts_with("lens-train: error: ")), "{err}");
    assert!(err.contains("odd.safetensors does not fit this convnext model: it lacks"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// lens-train on `pack` into `out` with a recipe's values left to it (no --lr, unlike train_cmd).
fn recipe_cmd(pack: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = tool("lens-train");
    c.args(["-j", "2", "--model", "convnext_atto", "--batch-size", "8", "--precision", "fp32"])
        .args(["--memory-format", "contiguous", "--pack"])
        .arg(pack)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

fn config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

#[test]
fn a_recipe_sets_its_values_and_an_explicit_option_wins() {
    // 40 objects: 32 train, 4 steps of 8 per epoch.
    let (t, p) = packed_dataset(10, 8);
    let default = t.path().join("default");
    let out = ok(&mut recipe_cmd(&p, &default, &["--epochs", "1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lens-train: recipe scratch (lr 2e-3 x global batch / 256, global batch 8)"), "{stderr}");
    let c = config(&default);
    // scratch: 2e-3 x 8 / 256; its 200 warm-up steps capped at a tenth of the run's 4 steps.
    assert_eq!(c["lr"], 6.25e-5);
    assert_eq!((c["warmup_steps"].as_u64(), c["no_decay_norm_bias"].as_bool()), (Some(0), Some(true)));
    assert_eq!((c["weight_decay"].as_f64(), c["epochs"].as_u64()), (Some(1e-2), Some(1)));
    assert_eq!(c["model_config"]["drop_path_rate"], 0.1);
    assert_eq!(c["recipe"]["name"], "scratch");
    assert_eq!(c["recipe"]["preset"]["epochs"], 50);
    assert_eq!(c["recipe"]["overridden"], serde_json::json!(["epochs"]));

    let reference = t.path().join("reference");
    ok(&mut recipe_cmd(&p, &reference, &["--recipe", "reference", "--epochs", "1"]));
    let c = config(&reference);
    assert_eq!((c["lr"].as_f64(), c["warmup_steps"].as_u64()), (Some(1e-4), Some(0)), "1e-4 at any batch");
    assert_eq!(
        (c["no_decay_norm_bias"].as_bool(), c["model_config"]["drop_path_rate"].as_f64()),
        (Some(false), Some(0.0))
    );

    let given = t.path().join("given");
    let extra = ["--recipe", "scratch", "--epochs", "1", "--lr", "5e-4", "--decay-norm-bias", "--drop-path", "0"];
    ok(&mut recipe_cmd(&p, &given, &[&extra[..], &["--warmup-steps", "3"]].concat()));
    let c = config(&given);
    assert_eq!((c["lr"].as_f64(), c["warmup_steps"].as_u64()), (Some(5e-4), Some(3)), "explicit, uncapped");
    assert_eq!(
        (c["no_decay_norm_bias"].as_bool(), c["model_config"]["drop_path_rate"].as_f64()),
        (Some(false), Some(0.0))
    );
    assert_eq!(c["recipe"]["preset"]["lr"], 6.25e-5, "the preset's own value stays on record");
    assert_eq!(
        c["recipe"]["overridden"],
        serde_json::json!(["lr", "warmup-steps", "no-decay-norm-bias", "drop-path", "epochs"])
    );
    let err = fails(&mut recipe_cmd(&p, &t.path().join("both"), &["--no-decay-norm-bias", "--decay-norm-bias"]));
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn time_limit_stops_at_an_epoch_and_resume_keeps_the_recipe() {
    let (t, p) = packed_dataset(10, 9);
    let whole = t.path().join("whole");
    ok(&mut recipe_cmd(&p, &whole, &["-q", "--recipe", "scratch", "--epochs", "3"]));

    // A limit shorter than any epoch: the run stops after the first, with its checkpoint, and exits 0.
    let limited = t.path().join("limited");
    let out = ok(&mut recipe_cmd(&p, &limited, &["--recipe", "scratch", "--epochs", "3", "--time-limit", "0.001"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("time limit: stopped after epoch 1 of 3"), "{stderr}");
    assert_eq!(csv_rows(&limited.join("metrics.csv")).len(), 1);
    let written = fs::read(limited.join("config.json")).unwrap();

    let err = fails(tool("lens-train").args(["--resume", "--recipe", "reference", "--out"]).arg(&limited));
    assert!(err.contains("drop --recipe"), "{err}");
    // --resume keeps config.json, recipe and all, and continues to the run that was never stopped.
    ok(tool("lens-train").args(["-q", "-j", "2", "--resume", "--out"]).arg(&limited));
    assert_eq!(fs::read(limited.join("config.json")).unwrap(), written, "--resume rewrote config.json");
    assert_eq!(config(&limited)["recipe"], config(&whole)["recipe"]);
    for f in ["model.safetensors", "metrics.csv"] {
        assert!(fs::read(whole.join(f)).unwrap() == fs::read(limited.join(f)).unwrap(), "{f} differs");
    }
}

#[test]
fn runs_with_different_seeds_and_the_same_split_seed_hold_out_the_same_ids() {
    let (t, p) = packed_dataset(20, 23);
    let val_ids = |name: &str, seed: &str, split: &str| -> Vec<String> {
        let out = t.path().join(name);
        ok(&mut train_cmd(&p, &out, &["--epochs", "1", "--seed", seed, "--split-seed", split]));
        let config: serde_json::Value = serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["split_seed"].as_u64(), Some(split.parse().unwrap()), "recorded in config.json");
        csv_rows(&out.join("val_predictions.csv")).into_iter().map(|r| r[0].clone()).collect()
    };
    let a = val_ids("a", "1", "5");
    assert_eq!(a, val_ids("b", "2", "5"), "another --seed, the same --split-seed: the same validation objects");
    assert_ne!(a, val_ids("c", "1", "6"), "another --split-seed: another split");
}

#[test]
fn trains_channels_last_in_every_precision_and_resumes_in_the_other_layout() {
    // CUDA's fused AdamW refuses a parameter whose moments have other strides (lens-train crashed at its first step
    // on a GPU in channels-last: the moments were made before the weights took that layout); the CPU's kernel ran
    // it, pairing them by memory position. The shim now checks what CUDA checks on every device, so this fails on a
    // CPU wherever a GPU would. convnext_atto has 4-D weights in the decayed group and 1-D ones in the other.
    let (t, p) = packed_dataset(20, 5);
    for precision in ["fp32", "bf16", "fp16"] {
        let run = t.path().join(precision);
        let mut c = tool("lens-train");
        c.args([
            "-j",
            "2",
            "--model",
            "convnext_atto",
            "--batch-size",
            "32",
            "--epochs",
            "2",
            "--precision",
            precision,
        ])
        .args(["--memory-format", "channels-last", "--time-limit", "0.001", "--pack"])
        .arg(&p)
        .arg("--out")
        .arg(&run);
        let out = ok(&mut c);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("stopped after epoch 1 of 2"), "{stderr}");
        // Nothing but lens-train's own lines: no libtorch warnings (a deprecated pin_memory argument printed three
        // times on a GPU).
        assert!(stderr.lines().all(|l| l.starts_with("lens-train: ")), "{precision}: {stderr}");
        // The checkpoint of a channels-last run resumed contiguous: each moment loaded onto its element.
        let out = ok(tool("lens-train").args(["--resume", "--memory-format", "contiguous", "--out"]).arg(&run));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("resuming") && stderr.contains("epoch 2/2"), "{precision}: {stderr}");
        assert_eq!(csv_rows(&run.join("metrics.csv")).len(), 2, "{precision}");
        let state = fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
        assert!(state.contains("\"moments_by_element\": true"), "{state}");
    }
}

#[test]
fn a_missing_gpu_and_a_batch_that_cannot_fit_are_one_line_errors_and_a_batch_past_the_data_is_clamped() {
    let (t, p) = packed_dataset(20, 6);
    let one_line_error = |stderr: &str, start: &str| {
        assert!(stderr.starts_with(start), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line, no backtrace: {stderr}");
    };
    // No machine has 64 GPUs: with none, or with fewer, the error says what there is and what to pass.
    let run = t.path().join("gpu");
    let e = fails(
        tool("lens-train")
            .args(["--device", "cuda:64", "--model", "convnext_atto", "--pack"])
            .arg(&p)
            .arg("--out")
            .arg(&run),
    );
    one_line_error(&e, "lens-train: error: --device cuda:64");
    assert!(e.contains("--device cuda") && (e.contains("use cpu") || e.contains("use one of those")), "{e}");
    assert!(!run.exists(), "nothing written");
    let e = fails(tool("lens-infer").args(["--device", "cuda:64", "--run"]).arg(&run).arg("--pack").arg(&p));
    one_line_error(&e, "lens-infer: error: --device cuda:64");
    // ViT at 1024x1024 keeps ~10 GiB of activations an image for its backward pass: 64 of them fit on no machine
    // this runs on. Refused before anything is built, with the estimate and a batch to try.
    let run = t.path().join("vit");
    let e = fails(
        tool("lens-train")
            .args(["--model", "vit_small_patch16_224", "--input-size", "1024", "--batch-size", "64", "--pack"])
            .arg(&p)
            .arg("--out")
            .arg(&run),
    );
    one_line_error(&e, "lens-train: error: --batch-size 64: needs about");
    assert!(e.contains("GiB an image") || e.contains("MiB an image"), "{e}");
    assert!(!run.exists(), "nothing written");
    // A batch larger than the training set (64 of the 80 objects) trains on the whole set, and says so.
    let run = t.path().join("clamped");
    let out = ok(tool("lens-train")
        .args(["-j", "2", "--model", "convnext_atto", "--epochs", "1", "--batch-size", "100000"])
        .args(["--precision", "fp32", "--memory-format", "contiguous", "--pack"])
        .arg(&p)
        .arg("--out")
        .arg(&run));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: a batch size of 100000 is larger than the training set: training with batches of 64"),
        "{stderr}"
    );
    assert_eq!(config(&run)["batch_size"], 64);
}

#[test]
fn non_finite_gradients_end_the_run_with_a_clear_error() {
    // A learning rate that overflows the weights within a few steps: the steps with non-finite gradients are skipped
    // on the device, and the run ends at the next read of the loss (every 25 steps, and each epoch's end).
    let (t, p) = packed_dataset(20, 8);
    let run = t.path().join("nan");
    let e = fails(recipe_cmd(&p, &run, &["--epochs", "2", "--lr", "1e38"]).arg("-q"));
    assert!(e.contains("non-finite gradients in") && e.contains("try a lower learning rate, or clip"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_moving_average_of_the_weights_changes_nothing_of_training_is_chosen_on_validation_and_resumes_exactly() {
    let (t, p) = packed_dataset(40, 8);
    let plain = t.path().join("plain");
    ok(&mut train_cmd(&p, &plain, &["--epochs", "2"]));
    let extra = ["--epochs", "2", "--checkpoint-every", "2", "--ema-half-life", "0.5"];
    let ema = t.path().join("ema");
    ok(&mut train_cmd(&p, &ema, &extra));
    assert_eq!(config(&ema)["ema_half_life"], 0.5);
    assert!(config(&plain).get("ema_half_life").is_none(), "a run without one records none");

    // The raw weights' columns are the plain run's, bit for bit: the average only watches.
    let (a, b) = (csv_rows(&plain.join("metrics.csv")), csv_rows(&ema.join("metrics.csv")));
    let ema_columns = ["ema_val_loss", "ema_val_auc", "ema_val_tpr_at_fpr_1e2", "ema_val_tpr_at_fpr_1e3"];
    let header = fs::read_to_string(ema.join("metrics.csv")).unwrap().lines().next().unwrap().to_string();
    assert!(header.ends_with(&ema_columns.join(",")), "{header}");
    for (row_a, row_b) in a.iter().zip(&b) {
        let raw = row_a.len() - ema_columns.len();
        assert_eq!(row_a[..raw], row_b[..raw]);
        assert!(row_a[raw..].iter().all(String::is_empty), "no average, empty columns: {row_a:?}");
        assert!(row_b[raw..].iter().all(|v| v.parse::<f64>().is_ok()), "{row_b:?}");
    }

    // model.safetensors holds the better of the two at the best epoch, and state.json says which.
    let columns: Vec<String> = header.split(',').map(String::from).collect();
    let col = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let score = |row: &Vec<String>| {
        let (raw, avg): (f64, f64) = (row[col("val_auc")].parse().unwrap(), row[col("ema_val_auc")].parse().unwrap());
        (raw.max(avg), avg > raw)
    };
    let best = b.iter().map(score).fold((f64::NEG_INFINITY, false), |best, s| if s.0 > best.0 { s } else { best });
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(ema.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["best_is_ema"], best.1, "{state}");
    assert_eq!(state["best_auc"], best.0);
    if !best.1 {
        // The raw weights won at their best epoch: the plain run's weights.
        let best_epoch = state["best_epoch"].as_u64().unwrap();
        let plain_state: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(plain.join("checkpoint/state.json")).unwrap()).unwrap();
        if plain_state["best_epoch"].as_u64() == Some(best_epoch) {
            assert_eq!(
                fs::read(plain.join("model.safetensors")).unwrap(),
                fs::read(ema.join("model.safetensors")).unwrap()
            );
        }
    }

    // Killed mid-epoch and resumed: the same files as the run that was not (the average is in the checkpoint).
    let killed = t.path().join("killed");
    interrupt(&mut train_cmd(&p, &killed, &extra), &killed, "KILL");
    ok(tool("lens-train").args(["-j", "2", "--resume", "--out"]).arg(&killed));
    for f in ["checkpoint/state.safetensors", "model.safetensors", "metrics.csv", "val_predictions.csv"] {
        assert!(fs::read(ema.join(f)).unwrap() == fs::read(killed.join(f)).unwrap(), "{f} differs after --resume");
    }

    for bad in ["--ema-half-life=-1", "--ema-half-life=nan"] {
        let err = fails(&mut train_cmd(&p, &t.path().join("bad"), &["--epochs", "1", bad]));
        assert!(err.contains("--ema-half-life") && err.contains(": a number of epochs"), "{bad}: {err}");
    }
}

/// A setting of the loss given as `--FLAG VALUE` to one-epoch runs: recorded in config.json under its name, 0
/// recorded as none and training exactly as without it, VALUE changing what is learnt, refused on --resume, and
/// each of `bad` refused with `problem`. Returns the data's directory and the run trained with VALUE.
fn check_loss_setting(
    flag: &str,
    value: &str,
    value_recorded: f64,
    bad: &[&str],
    problem: &str,
) -> (tempfile::TempDir, PathBuf) {
    let (t, p) = packed_dataset(40, 8);
    let field = flag.replace('-', "_");
    let (plain, given, zero) = (t.path().join("plain"), t.path().join("given"), t.path().join("zero"));
    ok(&mut train_cmd(&p, &plain, &["--epochs", "1"]));
    ok(&mut train_cmd(&p, &given, &["--epochs", "1", &format!("--{flag}"), value]));
    ok(&mut train_cmd(&p, &zero, &["--epochs", "1", &format!("--{flag}"), "0"]));
    assert_eq!(config(&given)[&field], value_recorded);
    assert!(config(&plain).get(&field).is_none(), "a run without --{flag} records none");
    assert!(config(&zero).get(&field).is_none(), "--{flag} 0 records none");
    let weights = |d: &Path| fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(weights(&plain), weights(&zero), "--{flag} 0 trains exactly as without");
    assert_ne!(weights(&plain), weights(&given), "--{flag} {value} changes what is learned");
    // Continuing a run may not change its loss.
    let err = fails(tool("lens-train").args(["--resume", &format!("--{flag}"), "0.5", "--out"]).arg(&given));
    assert!(err.contains(flag), "{err}");
    for bad in bad {
        let err = fails(&mut train_cmd(&p, &t.path().join("bad"), &["--epochs", "1", bad]));
        assert!(err.contains(&format!("--{flag}")) && err.contains(problem), "{bad}: {err}");
    }
    (t, given)
}

#[test]
fn focal_loss_is_recorded_changes_training_and_is_refused_when_not_an_exponent() {
    let bad = ["--focal-gamma=-1", "--focal-gamma=nan", "--focal-gamma=inf"];
    check_loss_setting("focal-gamma", "2", 2.0, &bad, ": an exponent >= 0");
}

#[test]
fn worse_conditions_are_recorded_change_training_resume_exactly_and_bad_values_are_refused() {
    let (t, p) = packed_dataset(40, 8);
    let (plain, worse, zero) = (t.path().join("plain"), t.path().join("worse"), t.path().join("zero"));
    let extra = ["--epochs", "2", "--checkpoint-every", "2", "--degrade", "0.5"];
    ok(&mut train_cmd(&p, &plain, &["--epochs", "2"]));
    ok(&mut train_cmd(&p, &worse, &extra));
    ok(&mut train_cmd(&p, &zero, &["--epochs", "2", "--degrade", "0"]));
    assert_eq!(config(&worse)["degrade"], 0.5);
    assert_eq!(config(&worse)["recipe"]["overridden"], serde_json::json!(["lr", "epochs", "degrade"]));
    assert!(config(&plain).get("degrade").is_none(), "a run without records none");
    assert!(config(&zero).get("degrade").is_none(), "0 is none");
    let weights = |d: &Path| fs::read(d.join("checkpoint/state.safetensors")).unwrap();
    assert_eq!(weights(&plain), weights(&zero), "--degrade 0 trains exactly as without");
    assert_ne!(weights(&plain), weights(&worse), "worse conditions change what is learned");
    // Killed mid-epoch and resumed: the same files as the run that was not (the conditions follow the seed).
    let killed = t.path().join("killed");
    interrupt(&mut train_cmd(&p, &killed, &extra), &killed, "KILL");
    ok(tool("lens-train").args(["-j", "2", "--resume", "--out"]).arg(&killed));
    for f in ["checkpoint/state.safetensors", "model.safetensors", "metrics.csv", "val_predictions.csv"] {
        assert!(fs::read(worse.join(f)).unwrap() == fs::read(killed.join(f)).unwrap(), "{f} differs after --resume");
    }
    // The robust recipe is scratch with worse conditions on half the images (and smoothed labels).
    let robust = t.path().join("robust");
    ok(&mut train_cmd(&p, &robust, &["--epochs", "1", "--recipe", "robust"]));
    assert_eq!(
        (config(&robust)["degrade"].clone(), config(&robust)["recipe"]["name"].clone()),
        (0.5.into(), "robust".into())
    );
    assert_eq!(config(&robust)["label_smoothing"], 0.2, "and labels smoothed by 0.2");
    // Continuing a run may not change them.
    let err = fails(tool("lens-train").args(["--resume", "--degrade", "0.2", "--out"]).arg(&worse));
    assert!(err.contains("degrade"), "{err}");
    // They are drawn on the host, where batches are gathered.
    let err =
        fails(&mut train_cmd(&p, &t.path().join("dev"), &["--epochs", "1", "--degrade", "1", "--data-on-device"]));
    assert!(err.contains("--data-on-device always: cannot go with worse conditions"), "{err}");
    for bad in ["--degrade=-0.1", "--degrade=1.5", "--degrade=nan"] {
        let err = fails(&mut train_cmd(&p, &t.path().join("bad"), &["--epochs", "1", bad]));
        assert!(err.contains("--degrade") && err.contains(": a chance between 0 and 1"), "{bad}: {err}");
    }
}

#[test]
fn smoothed_labels_are_recorded_change_training_and_bad_values_are_refused() {
    let bad = ["--label-smoothing=-0.1", "--label-smoothing=1", "--label-smoothing=nan"];
    let (_t, smooth) = check_loss_setting("label-smoothing", "0.2", 0.2, &bad, ": an epsilon from 0 to below 1");
    assert_eq!(config(&smooth)["recipe"]["overridden"], serde_json::json!(["lr", "epochs", "label-smoothing"]));
}

#[test]
fn a_run_and_its_packs_must_be_scaled_alike() {
    let (t, cube) = packed_dataset(20, 9);
    let idx = t.path().join("index.csv"); // packed_dataset's index
    let noise = t.path().join("noise.pack");
    ok(tool("lens-pack").args(["-q", "--standardize", "noise"]).arg(&idx).arg("-o").arg(&noise));
    let run = t.path().join("run");
    ok(&mut train_cmd(&noise, &run, &["--epochs", "1"]));
    assert_eq!(config(&run)["standardize"], "noise");
    // Validation on a pack scaled otherwise.
    let err = fails(train_cmd(&noise, &t.path().join("mixed"), &["--epochs", "1", "--val-pack"]).arg(&cube));
    assert!(err.contains("standardised cube and the training pack noise"), "{err}");
    assert!(err.contains("repack one with lens-pack --standardize"), "{err}");
    // Scoring a pack scaled otherwise, whether or not the training pack is still there.
    for gone in [false, true] {
        if gone {
            fs::remove_dir_all(&noise).unwrap();
        }
        let err = fails(tool("lens-infer").args(["-q", "--run"]).arg(&run).arg("--pack").arg(&cube));
        assert!(err.contains("trained on noise images: the model would see other numbers than it learnt: repack it with lens-pack --standardize noise"), "{err}");
    }
}

//! --precision auto and --memory-format auto: measured on the machine at hand, recorded in config.json, cached,
//! kept by --resume, bypassed by explicit settings.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lensfind_e2e::*;
use serde_json::Value;

/// lens-train on `pack` into `out` with the autotune cache under `cache` (XDG_CACHE_HOME).
fn train(pack: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Command {
    let mut c = tool("lens-train");
    c.env("XDG_CACHE_HOME", cache)
        .args(["-j", "2", "--model", "convnext_atto", "--batch-size", "8", "--pack"])
        .arg(pack)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn cache_file(cache: &Path) -> PathBuf {
    cache.join("lensfind/autotune.json")
}

/// (precision, memory format) as config.json's autotune record or the cache name them.
fn setting(v: &Value) -> (String, String) {
    (v["precision"].as_str().unwrap().to_string(), v["memory_format"].as_str().unwrap().to_string())
}

/// Replaces the cached choice of every entry by `to`.
fn tamper_cache(cache: &Path, to: (&str, &str)) {
    let mut file = json(&cache_file(cache));
    for entry in file["entries"].as_object_mut().unwrap().values_mut() {
        entry["chosen"] = serde_json::json!({"precision": to.0, "memory_format": to.1});
    }
    fs::write(cache_file(cache), serde_json::to_string(&file).unwrap()).unwrap();
}

#[test]
fn auto_measures_records_and_caches_its_choice() {
    let (t, p) = packed_dataset(10, 41);
    let cache = t.path().join("cache");
    let one = t.path().join("one");
    let out = ok(&mut train(&p, &one, &cache, &["--epochs", "1"]));
    let err = stderr(&out);
    assert!(err.contains("auto settings [train | cpu ") && err.contains(" -> "), "{err}");
    assert!(!err.contains("from the cache"), "{err}");

    // config.json: every candidate timed, the fastest chosen, and the run's settings are the choice.
    let cfg = json(&one.join("config.json"));
    let record = &cfg["autotune"];
    let timings = record["timings"].as_array().unwrap();
    let names: Vec<(String, String)> = timings.iter().map(setting).collect();
    for want in [("fp32", "contiguous"), ("fp32", "channels-last"), ("bf16", "contiguous"), ("bf16", "channels-last")] {
        assert!(names.contains(&(want.0.into(), want.1.into())), "{want:?} among the candidates: {names:?}");
    }
    let speed = |v: &Value| v["images_per_s"].as_f64().unwrap();
    assert!(timings.iter().all(|t| speed(t) > 0.0));
    assert!(timings.windows(2).all(|w| speed(&w[0]) >= speed(&w[1])), "fastest first");
    let chosen = setting(&record["chosen"]);
    assert_eq!(chosen, setting(&timings[0]), "the fastest is chosen");
    assert_eq!(cfg["precision"].as_str().unwrap(), chosen.0);
    assert_eq!(cfg["channels_last"].as_bool().unwrap(), chosen.1 == "channels-last");
    assert_eq!(record["from_cache"], false);

    // The cache holds the choice under config.json's key; the next run reads it instead of measuring.
    let file = json(&cache_file(&cache));
    let key = record["key"].as_str().unwrap();
    // The key tells CPUs of one model name apart by the vector instructions that pick oneDNN's kernels, and builds
    // of lensfind apart (a rebuilt lensfind measures again).
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags")).unwrap().to_string();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    for feature in ["avx2", "avx512f", "avx512_bf16", "amx_bf16"] {
        assert_eq!(key.contains(feature), has(feature), "{feature} in {key}");
    }
    assert!(key.contains("| build "), "{key}");
    assert_eq!(setting(&file["entries"][key]["chosen"]), chosen);
    let two = t.path().join("two");
    let err = stderr(&ok(&mut train(&p, &two, &cache, &["--epochs", "1"])));
    assert!(err.contains("from the cache"), "{err}");
    let cfg2 = json(&two.join("config.json"));
    assert_eq!(cfg2["autotune"]["from_cache"], true);
    assert_eq!(setting(&cfg2["autotune"]["chosen"]), chosen);

    // What the cache says is what runs: told another choice, the next run takes it without measuring.
    let other = if chosen.0 == "fp32" { ("bf16", "contiguous") } else { ("fp32", "contiguous") };
    tamper_cache(&cache, other);
    let three = t.path().join("three");
    ok(&mut train(&p, &three, &cache, &["--epochs", "1"]));
    let cfg3 = json(&three.join("config.json"));
    assert_eq!(setting(&cfg3["autotune"]["chosen"]), (other.0.to_string(), other.1.to_string()));
    assert_eq!(cfg3["precision"].as_str().unwrap(), other.0);

    // A corrupt cache is ignored with a warning, the settings are measured again and the file rewritten whole.
    fs::write(cache_file(&cache), "{\"version\": 1, \"entries\": {").unwrap();
    let four = t.path().join("four");
    let err = stderr(&ok(&mut train(&p, &four, &cache, &["--epochs", "1"])));
    assert!(err.contains("ignoring the autotune cache") && err.contains("not valid"), "{err}");
    assert_eq!(json(&four.join("config.json"))["autotune"]["from_cache"], false);
    assert!(json(&cache_file(&cache))["entries"][key].is_object(), "rewritten with the new measurement");
    let leftovers: Vec<_> = fs::read_dir(cache.join("lensfind")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files beside the cache: {leftovers:?}");

    // --no-autotune-cache measures and leaves no cache behind.
    fs::remove_file(cache_file(&cache)).unwrap();
    let five = t.path().join("five");
    let err = stderr(&ok(&mut train(&p, &five, &cache, &["--epochs", "1", "--no-autotune-cache"])));
    assert!(err.contains("auto settings") && !err.contains("from the cache"), "{err}");
    assert!(!cache_file(&cache).exists());

    // Explicit settings: nothing measured, nothing recorded, the cache untouched.
    let six = t.path().join("six");
    let fixed = ["--epochs", "1", "--precision", "bf16", "--memory-format", "channels-last"];
    let err = stderr(&ok(&mut train(&p, &six, &cache, &fixed)));
    assert!(!err.contains("auto settings"), "{err}");
    let cfg6 = json(&six.join("config.json"));
    assert!(cfg6.get("autotune").is_none(), "{cfg6}");
    assert_eq!((cfg6["precision"].as_str(), cfg6["channels_last"].as_bool()), (Some("bf16"), Some(true)));
    assert!(!cache_file(&cache).exists());
    // One of the two given: only the other is measured.
    let seven = t.path().join("seven");
    ok(&mut train(&p, &seven, &cache, &["--epochs", "1", "--precision", "fp32"]));
    let names: Vec<(String, String)> =
        json(&seven.join("config.json"))["autotune"]["timings"].as_array().unwrap().iter().map(setting).collect();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|(p, _)| p == "fp32"), "{names:?}");
}

#[test]
fn a_resume_keeps_the_recorded_choice_whatever_the_cache_says() {
    let (t, p) = packed_dataset(10, 42);
    let cache = t.path().join("cache");
    let run = t.path().join("run");
    let mut child = train(&p, &run, &cache, &["-q", "--epochs", "30", "--checkpoint-every", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !run.join("checkpoint/state.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let before = fs::read(run.join("config.json")).unwrap();
    let chosen = setting(&json(&run.join("config.json"))["autotune"]["chosen"]);
    let other = if chosen.0 == "fp32" { ("bf16", "channels-last") } else { ("fp32", "contiguous") };
    tamper_cache(&cache, other);
    // Resumed, it trains on with config.json's settings: nothing is measured or read from the cache, config.json
    // stays as it was. (SIGTERM again after one more checkpoint: 30 epochs are not needed.)
    let resumed = tool("lens-train")
        .env("XDG_CACHE_HOME", &cache)
        .args(["-j", "2", "--resume", "--out"])
        .arg(&run)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let step_of = |run: &Path| json(&run.join("checkpoint/state.json"))["global_step"].as_u64().unwrap_or(0);
    let first = step_of(&run);
    let start = Instant::now();
    while step_of(&run) <= first {
        assert!(start.elapsed() < Duration::from_secs(120), "the resumed run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-TERM", &resumed.id().to_string()]).status().unwrap();
    let out = resumed.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("resuming"), "{err}");
    assert!(!err.contains("auto settings"), "a resume neither measures nor reads the cache: {err}");
    assert_eq!(fs::read(run.join("config.json")).unwrap(), before);
    // And --resume refuses the settings that config.json fixes.
    let err = fails(tool("lens-train").args(["--resume", "--precision", "fp32", "--out"]).arg(&run));
    assert!(err.contains("drop --precision"), "{err}");
}

#[test]
fn lens_infer_auto_chooses_caches_and_scores_as_the_chosen_setting_does() {
    let (t, p) = packed_dataset(10, 43);
    let cache = t.path().join("cache");
    let run = t.path().join("run");
    ok(&mut train(&p, &run, &cache, &["-q", "--epochs", "1", "--precision", "fp32", "--memory-format", "contiguous"]));
    let infer = |extra: &[&str]| {
        let mut c = tool("lens-infer");
        c.env("XDG_CACHE_HOME", &cache).args(["--tta", "none", "--batch-size", "16"]).args(extra);
        c.arg("--run").arg(&run).arg("--pack").arg(&p);
        ok(&mut c)
    };
    let auto = infer(&[]);
    let err = stderr(&auto);
    assert!(err.contains("auto settings [infer | cpu "), "{err}");
    let chosen = err.lines().find(|l| l.contains("auto settings")).unwrap().rsplit(" -> ").next().unwrap().to_string();
    let mut parts = chosen.split_whitespace();
    let (precision, format) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(["fp32", "bf16"].contains(&precision) && ["contiguous", "channels-last"].contains(&format), "{chosen}");
    // Cached: the second run reads it.
    assert!(stderr(&infer(&[])).contains("from the cache"));
    // The auto run scored exactly as the chosen setting given explicitly does.
    let fixed = infer(&["--precision", precision, "--memory-format", format]);
    assert!(!stderr(&fixed).contains("auto settings"));
    assert_eq!(auto.stdout, fixed.stdout);
}

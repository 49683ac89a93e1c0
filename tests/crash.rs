//! Crashes, full disks and races: SIGKILL at seeded random moments never leaves an output that looks complete and
//! is not, a rerun completes (and removes what the killed run left); a full disk is a clear error with nothing
//! left behind; two lens-pack runs racing for one output leave one whole pack.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lensfind::index::{read_index, write_index, IndexRow};
use lensfind::pack::{verify, Pack};
use lensfind_e2e::*;

/// Seeded moments (the same on every run of the test), as fractions of a run's duration.
struct Lcg(u64);

impl Lcg {
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `cmd` to the end and returns how long it took.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    ok(cmd);
    start.elapsed()
}

/// Starts `cmd`, SIGKILLs it after `after` (if it is still running); returns whether it was killed.
fn kill_after(cmd: &mut Command, after: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// Hidden entries beside `target` (temporary files and directories of killed runs).
fn leftovers(target: &Path) -> Vec<String> {
    let name = format!(".{}.", target.file_name().unwrap().to_string_lossy());
    let mut v: Vec<String> = fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect();
    v.sort();
    v
}

/// An index of `n` rows that reuses the files of a small dataset under fresh ids, for a run long enough to kill.
fn long_index(rows: &[IndexRow], n: usize, prefix: &str, path: &Path) {
    let long: Vec<IndexRow> =
        (0..n).map(|k| IndexRow { id: format!("{prefix}{k:06}"), ..rows[k % rows.len()].clone() }).collect();
    write_index(&long, fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn sigkilled_lens_pack_leaves_no_pack_that_looks_complete_and_the_rerun_cleans_up() {
    let (t, _, idx) = indexed_dataset(5, 31, &[]);
    let rows = read_index(fs::File::open(&idx).unwrap(), "i").unwrap();
    let long = t.path().join("long.csv");
    long_index(&rows, 3000, "obj", &long);
    let pack = |out: &Path| {
        let mut c = tool("lens-pack");
        c.args(["-q", "-j", "1", "--chunk", "64"]).arg(&long).arg("-o").arg(out);
        c
    };
    let reference = t.path().join("ref.pack");
    let full = timed(&mut pack(&reference));
    let want = fs::read(reference.join("images.npy")).unwrap();

    let out = t.path().join("x.pack");
    let mut rng = Lcg(2026);
    let mut killed = 0;
    for _ in 0..6 {
        let at = full.mul_f64(rng.fraction());
        killed += usize::from(kill_after(&mut pack(&out), at));
        // Either no pack, or a whole one (an earlier run's, or this one's if it had just finished).
        if out.exists() {
            let p = Pack::open(&out).unwrap_or_else(|e| panic!("killed at {at:?}: a broken pack: {e:#}"));
            assert!(verify(&out).unwrap().is_empty(), "killed at {at:?}: the pack fails verification");
            assert_eq!(p.len(), 3000);
            assert!(fs::read(out.join("images.npy")).unwrap() == want);
        }
        for l in leftovers(&out) {
            assert!(l.starts_with(".x.pack.tmp-") || l.starts_with(".x.pack.old-"), "{l}");
        }
    }
    assert!(killed >= 3, "only {killed} of 6 runs were still going when killed");
    let stale = leftovers(&out);
    assert!(!stale.is_empty(), "SIGKILL gives no chance to clean up: temporary directories are expected");

    // The rerun completes, removes what the killed runs left, and says so.
    let o = ok(&mut pack(&out));
    let stderr = String::from_utf8_lossy(&o.stderr);
    for l in &stale {
        assert!(stderr.contains(&format!("removed {}", t.path().join(l).display())), "{l}: {stderr}");
    }
    assert!(stderr.contains("which is no longer running"), "{stderr}");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    assert!(fs::read(out.join("images.npy")).unwrap() == want);
}

#[test]
fn sigkilled_lens_ensemble_leaves_no_partial_submission() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a.csv"), t.path().join("b.csv"));
    let mut ta = String::from("id,logit\n");
    let mut tb = String::from("id,logit\n");
    for k in 0..200_000 {
        ta.push_str(&format!("object_{k:07},{}\n", (k % 97) as f64 / 10.0 - 4.0));
        tb.push_str(&format!("object_{k:07},{}\n", (k % 89) as f64 / 9.0 - 5.0));
    }
    fs::write(&a, ta).unwrap();
    fs::write(&b, tb).unwrap();
    let ensemble = |out: &Path| {
        let mut c = tool("lens-ensemble");
        c.arg(&a).arg(&b).arg("-o").arg(out);
        c
    };
    let reference = t.path().join("ref.csv");
    let full = timed(&mut ensemble(&reference));
    let want = fs::read(&reference).unwrap();
    let out = t.path().join("submission.csv");
    let mut rng = Lcg(7);
    for _ in 0..5 {
        let at = full.mul_f64(rng.fraction());
        kill_after(&mut ensemble(&out), at);
        if out.exists() {
            assert!(fs::read(&out).unwrap() == want, "killed at {at:?}: {} is not whole", out.display());
        }
    }
    ok(&mut ensemble(&out));
    assert!(fs::read(&out).unwrap() == want);
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

#[test]
fn sigkilled_lens_train_and_lens_infer_leave_whole_files_and_rerun() {
    let (t, p) = packed_dataset(10, 33);
    let run = t.path().join("run");
    let train = |out: &Path| {
        let mut c = tool("lens-train");
        c.args(["-q", "-j", "2", "--model", "convnext_atto", "--epochs", "2", "--batch-size", "16"])
            .args(["--precision", "fp32", "--memory-format", "contiguous", "--checkpoint-every", "1", "--pack"])
            .arg(&p)
            .arg("--out")
            .arg(out);
        c
    };
    let reference = t.path().join("ref");
    let full = timed(&mut train(&reference));
    let mut rng = Lcg(99);
    // The first kill comes early (maybe before anything was written), the second later; each time what exists
    // must be whole; --resume then finishes with the uninterrupted run's weights.
    for k in 0..2 {
        let at = full.mul_f64(0.5 * k as f64 + 0.5 * rng.fraction());
        let mut c = if run.join("checkpoint/state.json").exists() {
            let mut r = tool("lens-train");
            r.args(["-q", "-j", "2", "--resume", "--out"]).arg(&run);
            r
        } else {
            let _ = fs::remove_dir_all(&run);
            train(&run)
        };
        kill_after(&mut c, at);
        check_run_files(&run);
    }
    if run.join("checkpoint/state.json").exists() {
        ok(tool("lens-train").args(["-q", "-j", "2", "--resume", "--out"]).arg(&run));
    } else {
        let _ = fs::remove_dir_all(&run);
        ok(&mut train(&run));
    }
    assert!(fs::read(run.join("model.safetensors")).unwrap() == fs::read(reference.join("model.safetensors")).unwrap());
    check_run_files(&run);
    let stale: Vec<_> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".checkpoint."))
        .collect();
    assert!(stale.is_empty(), "the finished run still holds {stale:?}");

    // lens-infer over a longer pack, killed at seeded moments: no logits file, or the whole one.
    let (_data, _, idx) = indexed_dataset(5, 34, &[]);
    let rows = read_index(fs::File::open(&idx).unwrap(), "i").unwrap();
    let long = t.path().join("long.csv");
    long_index(&rows, 600, "obj", &long);
    let big = t.path().join("big.pack");
    ok(tool("lens-pack").arg("-q").arg(&long).arg("-o").arg(&big));
    let infer = |out: &Path| {
        let mut c = tool("lens-infer");
        c.args(["-q", "-j", "2", "--tta", "d4", "--precision", "fp32", "--memory-format", "contiguous", "--run"])
            .arg(&run)
            .arg("--pack")
            .arg(&big)
            .arg("-o")
            .arg(out);
        c
    };
    let reference = t.path().join("ref.logits.csv");
    let full = timed(&mut infer(&reference));
    let want = fs::read(&reference).unwrap();
    let out = t.path().join("x.logits.csv");
    for _ in 0..3 {
        let at = full.mul_f64(rng.fraction());
        kill_after(&mut infer(&out), at);
        if out.exists() {
            assert!(fs::read(&out).unwrap() == want, "killed at {at:?}: {} is not whole", out.display());
        }
    }
    ok(&mut infer(&out));
    assert!(fs::read(&out).unwrap() == want);
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

/// What a killed lens-train leaves must be whole where it exists: JSON that parses, CSVs whose rows all have the
/// header's fields, weights whose safetensors header covers the file.
fn check_run_files(run: &Path) {
    for json in [run.join("config.json"), run.join("checkpoint/state.json")] {
        if let Ok(text) = fs::read_to_string(&json) {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} is not whole: {e}", json.display()));
        }
    }
    for csv_path in ["metrics.csv", "val_predictions.csv", "timing.csv"].map(|f| run.join(f)) {
        if let Ok(text) = fs::read_to_string(&csv_path) {
            assert!(text.ends_with('\n'), "{} ends mid-line", csv_path.display());
            let fields = text.lines().next().unwrap().split(',').count();
            for line in text.lines() {
                assert_eq!(line.split(',').count(), fields, "{}: {line:?}", csv_path.display());
            }
        }
    }
    for st in [run.join("model.safetensors"), run.join("checkpoint/state.safetensors")] {
        if let Ok(bytes) = fs::read(&st) {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
            let end = header
                .as_object()
                .unwrap()
                .values()
                .filter_map(|v| v.get("data_offsets"))
                .map(|o| o[1].as_u64().unwrap() as usize)
                .max()
                .unwrap_or(0);
            assert_eq!(bytes.len(), 8 + n + end, "{} is cut short", st.display());
        }
    }
}

/// A small tmpfs, unmounted on drop; None where mounting is not permitted (not root, or a container without
/// CAP_SYS_ADMIN).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status();
        status.is_ok_and(|s| s.success()).then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_a_clear_error_and_leaves_nothing() {
    let (t, _, idx) = indexed_dataset(20, 35, &[]); // 80 objects: 2.7 MB of images
    let mnt = t.path().join("small");
    let Some(disk) = Tmpfs::mount(&mnt, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    };
    let out = disk.0.join("x.pack");
    let err = fails(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&out));
    assert!(err.contains("lens-pack: error: ") && err.contains("No space left on device"), "{err}");
    assert!(err.contains(&out.display().to_string()), "the error names the pack: {err}");
    assert_eq!(fs::read_dir(&disk.0).unwrap().count(), 0, "something was left on the full disk");

    // A CSV output on a disk that fills up: the same.
    fs::write(disk.0.join("filler"), vec![0u8; 2 * 1024 * 1024 - 64 * 1024]).unwrap_or(());
    let logits = t.path().join("a.csv");
    let mut text = String::from("id,logit\n");
    for k in 0..50_000 {
        text.push_str(&format!("object_{k:07},{}\n", k % 7));
    }
    fs::write(&logits, text).unwrap();
    let sub = disk.0.join("submission.csv");
    let err = fails(tool("lens-ensemble").arg(&logits).arg("-o").arg(&sub));
    assert!(err.contains("No space left on device") && err.contains("submission.csv"), "{err}");
    let names: Vec<_> = fs::read_dir(&disk.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["filler"], "a partial submission was left");
}

#[test]
fn racing_lens_pack_runs_leave_one_whole_pack() {
    let (t, _, idx) = indexed_dataset(5, 36, &[]);
    let rows = read_index(fs::File::open(&idx).unwrap(), "i").unwrap();
    let (ia, ib) = (t.path().join("a.csv"), t.path().join("b.csv"));
    long_index(&rows, 400, "a", &ia);
    long_index(&rows[1..], 300, "b", &ib);
    let (ra, rb) = (t.path().join("a.pack"), t.path().join("b.pack"));
    ok(tool("lens-pack").arg("-q").arg(&ia).arg("-o").arg(&ra));
    ok(tool("lens-pack").arg("-q").arg(&ib).arg("-o").arg(&rb));
    let (want_a, want_b) = (fs::read(ra.join("images.npy")).unwrap(), fs::read(rb.join("images.npy")).unwrap());

    let out = t.path().join("x.pack");
    for round in 0..4 {
        let start = |i: &Path| {
            tool("lens-pack").args(["-q", "-j", "1"]).arg(i).arg("-o").arg(&out).stderr(Stdio::piped()).spawn().unwrap()
        };
        let (a, b) = (start(&ia), start(&ib));
        let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for o in [&oa, &ob] {
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.code() == Some(0) || o.status.code() == Some(2), "round {round}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        assert!(oa.status.success() || ob.status.success(), "round {round}: both runs failed");
        let p = Pack::open(&out).unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        assert!(verify(&out).unwrap().is_empty(), "round {round}");
        let images = fs::read(out.join("images.npy")).unwrap();
        let ids: Vec<&str> = p.meta.iter().map(|m| m.id.as_str()).collect();
        if images == want_a {
            assert!(ids.iter().all(|i| i.starts_with('a')) && ids.len() == 400, "round {round}: a mixture");
        } else {
            assert!(images == want_b, "round {round}: the pack is neither run's");
            assert!(ids.iter().all(|i| i.starts_with('b')) && ids.len() == 300, "round {round}: a mixture");
        }
    }
}

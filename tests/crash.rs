//! Crashes, full disks and races: SIGKILL at seeded random moments never leaves an output that looks complete and
//! is not, a rerun completes (and removes what the killed run left); a full disk is a clear error with nothing
//! left behind; two lens-pack runs racing for one output leave one whole pack.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lensfind_data::index::{read_index, write_index, IndexRow};
use lensfind_data::pack::{verify, Pack};
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

/// The temporary file that process `pid` writes beside `target` (`.NAME.tmp-HOST-PID`), if there is one.
fn temp_of(target: &Path, pid: u32) -> Option<PathBuf> {
    let (prefix, suffix) = (format!(".{}.tmp-", target.file_name().unwrap().to_string_lossy()), format!("-{pid}"));
    fs::read_dir(target.parent().unwrap()).unwrap().map(|e| e.unwrap()).find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        (name.starts_with(&prefix) && name.ends_with(&suffix)).then(|| e.path())
    })
}

/// Starts `cmd`, which writes `target` through a temporary file beside it, and waits (polling without sleep, so
/// that a short write is not missed) for the temporary file to appear. Returns the child, running or not, and
/// whether the temporary was seen.
fn start_and_wait_for_temp(cmd: &mut Command, target: &Path) -> (std::process::Child, bool) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    loop {
        if temp_of(target, child.id()).is_some() {
            return (child, true);
        }
        if child.try_wait().unwrap().is_some() {
            return (child, false);
        }
        std::hint::spin_loop();
    }
}

/// How long `cmd` spends writing `target`: from the moment its temporary file appears to the moment it is renamed
/// into place. A write of a few kilobytes can come and go between two looks at the directory on a loaded machine,
/// so the run is repeated until one is seen (up to `ATTEMPTS` times).
fn write_window(cmd: &mut Command, target: &Path) -> Duration {
    for _ in 0..ATTEMPTS {
        let _ = fs::remove_file(target);
        let (mut child, seen) = start_and_wait_for_temp(cmd, target);
        let start = Instant::now();
        while seen && temp_of(target, child.id()).is_some() {
            std::hint::spin_loop();
        }
        let window = start.elapsed();
        assert!(child.wait().unwrap().success());
        if seen {
            return window;
        }
    }
    panic!("{cmd:?}: no temporary file seen beside {} in {ATTEMPTS} runs", target.display());
}

/// Runs of a short write tried before a test gives up seeing it.
const ATTEMPTS: usize = 20;

/// What a kill aimed into the write did.
#[derive(Debug, Default)]
struct MidWrite {
    /// Kills that found the temporary file still there, not yet renamed: the process died while writing.
    landed: usize,
    /// Of those, the ones whose temporary already held some bytes (a part of the output on disk).
    with_bytes: usize,
}

/// Starts `cmd` with no `target` in place, stops it (SIGSTOP) `fraction` of `window` after its temporary output
/// appears, then SIGKILLs it, and checks what it left: never `target` (the output appears whole or not at all); a
/// temporary file, if the kill landed while it was being written, that holds the start of the whole output `want`
/// and nothing else. (Stopping first freezes the process at one moment: a kill sent straight away can arrive after
/// a short write has finished, when the moment it was aimed at was inside it.)
fn kill_mid_write(
    cmd: &mut Command,
    target: &Path,
    window: Duration,
    fraction: f64,
    want: &[u8],
    tally: &mut MidWrite,
) {
    let _ = fs::remove_file(target);
    let (mut child, seen) = start_and_wait_for_temp(cmd, target);
    let deadline = Instant::now() + window.mul_f64(fraction);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::hint::spin_loop();
    }
    let pid = child.id();
    // SAFETY: kill(2) on our own child, which has not been waited for, so its PID is still its own.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let _ = child.kill(); // SIGKILL, which a stopped process receives too; an error means it had already ended
    child.wait().unwrap();
    if let Some(temp) = temp_of(target, pid) {
        assert!(seen);
        assert!(!target.exists(), "killed while writing, yet {} exists", target.display());
        let part = fs::read(&temp).unwrap();
        assert!(want.starts_with(&part), "{}: not a start of the whole output", temp.display());
        tally.landed += 1;
        tally.with_bytes += usize::from(!part.is_empty());
    } else if target.exists() {
        assert!(fs::read(target).unwrap() == want, "{} is not whole", target.display());
    }
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
    // Kills aimed into the write itself (the moments above mostly land while the inputs are read): at seeded
    // moments between the temporary file's appearance and the end of the process.
    let window = write_window(&mut ensemble(&out), &out);
    let mut tally = MidWrite::default();
    let mut kills = 0;
    // At least 6, and more (up to ATTEMPTS) until one has landed with part of the output on disk.
    while kills < 6 || (tally.with_bytes == 0 && kills < ATTEMPTS) {
        kill_mid_write(&mut ensemble(&out), &out, window, 0.9 * rng.fraction(), &want, &mut tally);
        kills += 1;
    }
    eprintln!(
        "lens-ensemble: {} of {kills} kills landed mid-write, {} with part of the output on disk",
        tally.landed, tally.with_bytes
    );
    assert!(tally.landed >= 1 && tally.with_bytes >= 1, "no kill landed while the output was being written: {tally:?}");
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
    // lens-infer writes its output at the end, in a window of a few milliseconds: kills aimed into it (without
    // test-time views, so that the runs up to the write are short).
    let quick = |out: &Path| {
        let mut c = tool("lens-infer");
        c.args(["-q", "-j", "2", "--tta", "none", "--precision", "fp32", "--memory-format", "contiguous", "--run"]);
        c.arg(&run).arg("--pack").arg(&big).arg("-o").arg(out);
        c
    };
    let quick_ref = t.path().join("quick.logits.csv");
    ok(&mut quick(&quick_ref));
    let quick_want = fs::read(&quick_ref).unwrap();
    let window = write_window(&mut quick(&out), &out);
    let mut tally = MidWrite::default();
    let mut kills = 0;
    // At least 4 kills, and more (up to ATTEMPTS) until one lands in the write, which a loaded machine can let pass
    // unseen: the first of each four at once, the others at seeded moments in the first half of the measured
    // window (the write's length varies from run to run with the load, and aiming early keeps most kills inside).
    while kills < 4 || (tally.landed == 0 && kills < ATTEMPTS) {
        let fraction = if kills % 4 == 0 { 0.0 } else { 0.5 * rng.fraction() };
        kill_mid_write(&mut quick(&out), &out, window, fraction, &quick_want, &mut tally);
        kills += 1;
    }
    eprintln!("lens-infer: {} of {kills} kills landed mid-write ({window:?} window)", tally.landed);
    assert!(tally.landed >= 1, "no kill landed while the logits were being written: {tally:?}");
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

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `at`, or says why it cannot (not root, or no CAP_SYS_ADMIN in a container).
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Makes `cmd` run under RLIMIT_FSIZE = `bytes`: a write that would make a file larger fails. Past the limit the
/// kernel sends SIGXFSZ, whose default action kills the process; with it ignored (an ignored signal stays ignored
/// across exec) the write fails with EFBIG instead, the way a write to a full disk fails with ENOSPC. Needs no
/// privilege, so it runs anywhere.
fn limit_file_size(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal), no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// lens-pack and then lens-ensemble writing into `dir` where writes fail (a full disk, or the file size limit that
/// `limit` applies to a command; `before_csv` runs between the two, to fill the disk up again): each exits 2 with
/// `lens-xxx: error:`, the OS's reason `cause` and the output's name, and leaves nothing in `dir`.
fn writes_fail_cleanly(
    t: &Path,
    idx: &Path,
    dir: &Path,
    cause: &str,
    limit: &dyn Fn(&mut Command) -> &mut Command,
    before_csv: &dyn Fn(),
) {
    let out = dir.join("x.pack");
    let err = fails(limit(tool("lens-pack").arg("-q").arg(idx).arg("-o").arg(&out)));
    assert!(err.contains("lens-pack: error: ") && err.contains(cause), "{err}");
    assert!(err.contains(&out.display().to_string()), "the error names the pack: {err}");
    let left: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "lens-pack left {left:?}");

    // A CSV output (1 MB) that does not fit: the same.
    before_csv();
    let before: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let logits = t.join("a.csv");
    let mut text = String::from("id,logit\n");
    for k in 0..50_000 {
        text.push_str(&format!("object_{k:07},{}\n", k % 7));
    }
    fs::write(&logits, text).unwrap();
    let sub = dir.join("submission.csv");
    let err = fails(limit(tool("lens-ensemble").arg(&logits).arg("-o").arg(&sub)));
    assert!(err.contains("lens-ensemble: error: ") && err.contains(cause) && err.contains("submission.csv"), "{err}");
    let left: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, before, "a partial submission was left");
}

#[test]
fn full_disk_is_a_clear_error_and_leaves_nothing() {
    let (t, _, idx) = indexed_dataset(20, 35, &[]); // 80 objects: 2.7 MB of images
    let disk = match Tmpfs::mount(&t.path().join("small"), "2m") {
        Ok(d) => d,
        Err(why) => return cannot_run("full_disk_is_a_clear_error_and_leaves_nothing", &why),
    };
    // The pack does not fit in 2 MB; the submission does not fit beside a filler of 1.94 MB.
    let fill = || fs::write(disk.0.join("filler"), vec![0u8; 2 * 1024 * 1024 - 64 * 1024]).unwrap_or(());
    writes_fail_cleanly(t.path(), &idx, &disk.0, "No space left on device", &|c| c, &fill);
}

#[test]
fn file_size_limit_is_a_clear_error_and_leaves_nothing() {
    // The same faults without mount, as any user: files may not grow past 512 kB (images.npy would be 2.7 MB,
    // the submission 1 MB).
    let (t, _, idx) = indexed_dataset(20, 35, &[]);
    let dir = t.path().join("out");
    fs::create_dir(&dir).unwrap();
    writes_fail_cleanly(t.path(), &idx, &dir, "File too large", &|c| limit_file_size(c, 512 * 1024), &|| {});
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

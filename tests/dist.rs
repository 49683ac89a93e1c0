//! lens-train with several processes on c10d's Gloo over loopback: two ranks with batch B train like one with 2B,
//! a killed, stalled or failing rank stops the others with an error that names it, and a run stopped at two
//! processes resumes at one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lensfind_e2e::{csv_rows, ok, packed_dataset, tool};

/// A port nobody listens on now; the OS hands out ephemeral ports in turn, so parallel tests get different ones.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Auto settings (rank 0 measures and every rank takes its choice) unless a test asks for fixed ones (EXACT).
// --split-seed 3: the split these tests were written on (drawn from --seed before --split-seed existed); the check
// that training moved the weights by more than 1e-3 depends on which epoch validates best.
const COMMON: [&str; 9] = ["--model", "convnext_atto", "--seed", "3", "--split-seed", "3", "-q", "-j", "1"];

/// Fixed settings, and no drop path: its masks are drawn per process (from the seed, step and rank), so with drop
/// path two ranks train like one process in distribution but not to the same weights.
const EXACT: [&str; 6] = ["--precision", "fp32", "--memory-format", "contiguous", "--drop-path", "0"];

/// lens-train as rank `rank` of `world` (torchrun's variables) with `args`.
fn rank_cmd(rank: usize, world: usize, port: u16, args: &[&str]) -> Command {
    let mut c = tool("lens-train");
    c.env_remove("SLURM_PROCID")
        .env_remove("SLURM_NTASKS")
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .args(COMMON)
        .args(args);
    c
}

fn spawn_ranks(world: usize, args: &[&str]) -> Vec<Child> {
    let port = free_port();
    (0..world)
        .map(|r| rank_cmd(r, world, port, args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
        .collect()
}

/// Waits for every rank: (exit code, stderr) each, and the seconds until the last ended.
fn wait_all(children: Vec<Child>) -> Vec<(Option<i32>, String)> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
        })
        .collect()
}

fn weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    // safetensors: u64 header length, JSON header, data; all our tensors are F32.
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            assert_eq!(v["dtype"], "F32");
            let o = v["data_offsets"].as_array().unwrap();
            let (a, b) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
            (k.clone(), data[a..b].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        })
        .collect()
}

fn run_args<'a>(pack: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--pack", pack.to_str().unwrap(), "--out", out.to_str().unwrap()];
    v.extend_from_slice(extra);
    v
}

#[test]
fn two_ranks_with_batch_b_train_like_one_rank_with_2b() {
    // 200 objects, 160 for training: 10 steps of 16 per epoch, no padding.
    let (t, p) = packed_dataset(50, 1);
    let one = t.path().join("one");
    ok(tool("lens-train").args(COMMON).args(EXACT).args(run_args(&p, &one, &["--epochs", "2", "--batch-size", "16"])));
    let two = t.path().join("two");
    let mut args = run_args(&p, &two, &["--epochs", "2", "--batch-size", "8"]);
    args.extend(EXACT);
    let results = wait_all(spawn_ranks(2, &args));
    for (r, (code, err)) in results.iter().enumerate() {
        assert_eq!(*code, Some(0), "rank {r}:\n{err}");
    }
    assert!(results[1].1.is_empty(), "rank 1 is silent: {}", results[1].1);

    let (a, b) = (weights(&one.join("model.safetensors")), weights(&two.join("model.safetensors")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0.0f32, String::new());
    for (k, va) in &a {
        for (x, y) in va.iter().zip(&b[k]) {
            if (x - y).abs() > worst.0 {
                worst = ((x - y).abs(), k.clone());
            }
        }
    }
    assert!(worst.0 < 1e-4, "weights differ by {} in {}", worst.0, worst.1);
    // The ranks moved the weights: the comparison is not between two untrained models.
    let init = t.path().join("init");
    ok(tool("lens-train").args(COMMON).args(EXACT).args(run_args(
        &p,
        &init,
        &["--epochs", "1", "--batch-size", "160"],
    )));
    let moved = weights(&init.join("model.safetensors"));
    assert!(a.iter().any(|(k, v)| v.iter().zip(&moved[k]).any(|(x, y)| (x - y).abs() > 1e-3)));

    // Validation was gathered over the whole set exactly once: same predictions, same metrics.
    let (pa, pb) = (csv_rows(&one.join("val_predictions.csv")), csv_rows(&two.join("val_predictions.csv")));
    assert_eq!(pa.len(), 40);
    assert_eq!(pa.iter().map(|r| &r[0]).collect::<Vec<_>>(), pb.iter().map(|r| &r[0]).collect::<Vec<_>>());
    for (x, y) in pa.iter().zip(&pb) {
        let (x, y): (f64, f64) = (x[3].parse().unwrap(), y[3].parse().unwrap());
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    let (ma, mb) = (csv_rows(&one.join("metrics.csv")), csv_rows(&two.join("metrics.csv")));
    assert_eq!(ma.len(), 2);
    for (ra, rb) in ma.iter().zip(&mb) {
        assert_eq!(ra[..3], rb[..3], "epoch, step, lr");
        let (la, lb): (f64, f64) = (ra[3].parse().unwrap(), rb[3].parse().unwrap());
        assert!((la - lb).abs() < 1e-5, "training loss over all ranks: {la} vs {lb}");
        assert_eq!(ra[5], rb[5], "validation AUC");
    }
    let state = fs::read_to_string(two.join("checkpoint/state.json")).unwrap();
    assert!(state.contains("\"world_size\": 2"), "{state}");
}

/// Starts a long two-rank run and waits until rank 0 has written a checkpoint (training is under way).
fn start_long_run(t: &Path, timeout: &str) -> (Vec<Child>, PathBuf) {
    let p = t.join("train.pack");
    let run = t.join("run");
    let children = spawn_ranks(
        2,
        &run_args(
            &p,
            &run,
            &["--epochs", "50", "--batch-size", "8", "--checkpoint-every", "2", "--dist-timeout", timeout],
        ),
    );
    let start = Instant::now();
    while !run.join("checkpoint/state.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    (children, run)
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
}

#[test]
fn a_killed_or_stalled_rank_stops_the_others_with_its_name() {
    let (t, _) = packed_dataset(50, 2);

    // Rank 1 killed: rank 0 stops at once, naming it.
    let (mut children, _) = start_long_run(t.path(), "60");
    let started = Instant::now();
    signal(&children[1], "KILL");
    let rank1 = children.pop().unwrap();
    let (code, err) = wait_all(vec![children.pop().unwrap()]).pop().unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("rank 0 of 2") && err.contains("rank 1 stopped responding"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    drop(rank1);

    // Rank 0 (which serves the store) killed: rank 1 stops, naming it.
    fs::remove_dir_all(t.path().join("run")).unwrap();
    let (children, _) = start_long_run(t.path(), "60");
    let started = Instant::now();
    signal(&children[0], "KILL");
    let results = wait_all(children);
    let (code, err) = &results[1];
    assert_eq!(*code, Some(2), "{err}");
    assert!(err.contains("rank 1 of 2") && err.contains("rank 0"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());

    // Rank 1 stalled (SIGSTOP): rank 0 gives up after --dist-timeout, naming it.
    fs::remove_dir_all(t.path().join("run")).unwrap();
    let (mut children, _) = start_long_run(t.path(), "4");
    let started = Instant::now();
    signal(&children[1], "STOP");
    let rank1 = children.pop().unwrap();
    let (code, err) = wait_all(vec![children.pop().unwrap()]).pop().unwrap();
    let took = started.elapsed();
    signal(&rank1, "KILL");
    signal(&rank1, "CONT");
    let _ = wait_all(vec![rank1]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("rank 1 stopped responding"), "{err}");
    assert!(took < Duration::from_secs(25), "a 4-s timeout took {took:?}");
}

#[test]
fn a_failing_rank_reports_its_error_to_the_others() {
    let (t, p) = packed_dataset(10, 3);
    let port = free_port();
    let run = t.path().join("run");
    let good = run_args(&p, &run, &["--epochs", "1", "--batch-size", "8", "--dist-timeout", "60"]);
    let missing = t.path().join("missing.pack");
    let bad = run_args(&missing, &run, &["--epochs", "1", "--batch-size", "8", "--dist-timeout", "60"]);
    let r0 = rank_cmd(0, 2, port, &good).stderr(Stdio::piped()).spawn().unwrap();
    let r1 = rank_cmd(1, 2, port, &bad).stderr(Stdio::piped()).spawn().unwrap();
    let results = wait_all(vec![r0, r1]);
    assert_eq!(results[1].0, Some(2));
    assert!(results[1].1.contains("rank 1 of 2") && results[1].1.contains("is not a pack"), "{}", results[1].1);
    assert_eq!(results[0].0, Some(2), "{}", results[0].1);
    assert!(results[0].1.contains("rank 1 failed") && results[0].1.contains("is not a pack"), "{}", results[0].1);
}

#[test]
fn a_run_stopped_at_two_ranks_resumes_at_one() {
    let (t, _) = packed_dataset(50, 4);
    let (children, run) = start_long_run(t.path(), "60");
    // SIGTERM to rank 1 only: both stop after the same step, rank 0 saves the checkpoint.
    signal(&children[1], "TERM");
    let results = wait_all(children);
    for (r, (code, err)) in results.iter().enumerate() {
        assert_eq!(*code, Some(143), "rank {r}: {err}");
    }
    assert!(results[0].1.contains("checkpoint saved"), "{}", results[0].1);
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["world_size"], 2);
    let (epoch, batch) = (state["epoch"].as_u64().unwrap(), state["batch_in_epoch"].as_u64().unwrap());
    // One process, and only 3 epochs (the config's 50 are fixed, so stop it with SIGTERM after resuming).
    let mut resumed = tool("lens-train")
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .args(["-j", "2", "--resume", "--out"])
        .arg(&run)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let s: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(run.join("checkpoint/state.json")).unwrap_or_default())
                .unwrap_or_default();
        if s["world_size"] == 1 && s["epoch"].as_u64() > Some(epoch) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the resumed run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&resumed, "TERM");
    let status = resumed.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(resumed.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains(&format!("resuming {} at epoch {}", run.display(), epoch + 1)), "{err}");
    // 16 per step at two ranks = 2 steps of 8 at one: the position carries over exactly.
    assert!(err.contains(&format!("batch {}", batch * 2)), "{err}");
    let metrics = csv_rows(&run.join("metrics.csv"));
    assert!(metrics.len() as u64 > epoch, "epochs after the resume were recorded");
}

//! The batch scripts of scripts/slurm/ under a real Slurm: a one-machine cluster (scripts/slurm/local-cluster.sh:
//! munged, slurmctld and slurmd, each test starting its own and stopping it, also when it fails), jobs submitted
//! with sbatch exactly as the README's Slurm section shows, on CPU nodes. And lens-train under torchrun beyond
//! --standalone: the c10d rendezvous, and a group restarted after one of its ranks was killed.
//!
//! Needs root (slurmd starts the jobs' processes) and what scripts/setup.sh installs (munge, slurmctld, slurmd,
//! slurm-client; torchrun in .venv). The tests run one at a time: each uses both cores of a small machine.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lensfind_e2e::{bin_dir, csv_rows, ok, packed_dataset, tool};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One test at a time: a cluster's jobs or a torchrun group take the machine's cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The built tools first on PATH: the jobs inherit sbatch's environment, as on a real cluster.
fn path_with_tools() -> String {
    format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default())
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The settings of the runs that 2 processes at batch 8 must train like 1 process at batch 16. No drop path: its
/// masks are drawn per process, so with it two tasks would not reach one process's weights.
const EXACT: [&str; 11] = [
    "--model",
    "convnext_atto",
    "--seed",
    "3",
    "--precision",
    "fp32",
    "--no-channels-last",
    "--epochs",
    "2",
    "--drop-path",
    "0",
];

/// The reference of those comparisons: one process at batch 16 on `pack`, into `out`, which it returns.
fn train_one_process(pack: &str, out: &Path) -> PathBuf {
    ok(tool("lens-train")
        .args(["-q", "-j", "2", "--pack", pack, "--out"])
        .arg(out)
        .args(EXACT)
        .args(["--batch-size", "16"]));
    out.to_path_buf()
}

/// The CPU node's layout, as in the README: no GPUs, 2 tasks of 1 core (the command line wins over #SBATCH).
const CPU_TRAIN: [&str; 3] = ["--gpus-per-node=0", "--ntasks-per-node=2", "--cpus-per-task=1"];
const CPU_INFER: [&str; 2] = ["--gpus-per-node=0", "--cpus-per-task=1"];

/// How a job ended, from `scontrol show job` (a job array: one per task).
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobEnd {
    state: String,
    exit_code: String,
    restarts: String,
    reason: String,
}

/// A Slurm cluster on this machine in a temporary directory; dropping it stops it and checks that no daemon and
/// no process of a job is left.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::with_nodes(1)
    }

    /// The machine as `nodes` nodes (LENSFIND_SLURM_NODES), each with its share of the cores.
    fn with_nodes(nodes: usize) -> Cluster {
        // A short path: munge's and slurmd's Unix sockets live in it (at most 107 bytes).
        let dir = tempfile::Builder::new().prefix("lf-slurm").tempdir().unwrap();
        let out = Command::new(root().join("scripts/slurm/local-cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .env("LENSFIND_SLURM_NODES", nodes.to_string())
            .output()
            .expect("running scripts/slurm/local-cluster.sh");
        let cluster = Cluster { dir }; // from here on, Drop stops whatever started
        assert!(
            out.status.success(),
            "local-cluster.sh start failed (needs root and scripts/setup.sh):\n{}",
            text(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("export SLURM_CONF={}", cluster.conf().display())
        );
        cluster
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm command (sbatch, scancel, ...) for this cluster, run in `cwd`.
    fn cmd(&self, program: &str, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(cwd).env("SLURM_CONF", self.conf()).env("PATH", path_with_tools());
        c
    }

    /// sbatch --parsable ARGS in `cwd`: the job id. The job's autotune cache is `cwd`'s (the job inherits sbatch's
    /// environment): runs of one test that leave --precision and --memory-format to auto choose alike (the first
    /// measures, the others read its choice), apart from the user's cache and from other tests.
    fn sbatch(&self, cwd: &Path, args: &[&str]) -> String {
        let mut sbatch = self.cmd("sbatch", cwd);
        sbatch.env("XDG_CACHE_HOME", cwd.join("autotune-cache"));
        let out = ok(sbatch.arg("--parsable").args(args));
        let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string();
        assert!(id.parse::<u64>().is_ok(), "sbatch printed {id:?}");
        id
    }

    fn scontrol(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&ok(self.cmd("scontrol", self.dir.path()).args(args)).stdout).into_owned()
    }

    /// Whether job `id` (or a task of array `id`) is pending, running or completing.
    fn queued(&self, id: &str) -> bool {
        let out = ok(self.cmd("squeue", self.dir.path()).args(["-h", "-o", "%i", "-j", id]));
        !out.stdout.is_empty()
    }

    /// Waits until job `id` (every task of array `id`) has ended, at most `limit`; how each task ended.
    fn wait(&self, id: &str, limit: Duration) -> Vec<JobEnd> {
        let start = Instant::now();
        while self.queued(id) {
            assert!(
                start.elapsed() < limit,
                "job {id} still queued after {limit:?}:\n{}",
                self.scontrol(&["show", "job", id])
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        self.ended(id)
    }

    /// How job `id` (each task of array `id`) ended, by array task id order.
    fn ended(&self, id: &str) -> Vec<JobEnd> {
        let mut jobs: Vec<(i64, JobEnd)> = self
            .scontrol(&["show", "job", "-o", id])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let field = |k: &str| {
                    line.split_whitespace().find_map(|f| f.strip_prefix(&format!("{k}="))).unwrap_or("").to_string()
                };
                let task = field("ArrayTaskId").parse().unwrap_or(-1);
                let end = JobEnd {
                    state: field("JobState"),
                    exit_code: field("ExitCode"),
                    restarts: field("Restarts"),
                    reason: field("Reason"),
                };
                (task, end)
            })
            .collect();
        jobs.sort_by_key(|j| j.0);
        jobs.into_iter().map(|j| j.1).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = root().join("scripts/slurm/local-cluster.sh");
        let stop = Command::new(&script).arg("stop").arg(self.dir.path()).output().expect("local-cluster.sh stop");
        let status =
            Command::new(&script).arg("status").arg(self.dir.path()).output().expect("local-cluster.sh status");
        // Exit 3: nothing runs; and no leftover process of a job.
        let clean = stop.status.success() && status.status.code() == Some(3) && !text(&status).contains("leftover");
        let report = format!("stop:\n{}\nstatus:\n{}", text(&stop), text(&status));
        if std::thread::panicking() {
            if !clean {
                eprintln!("the cluster did not stop cleanly after the failure:\n{report}");
            }
        } else {
            assert!(clean, "the cluster did not stop cleanly:\n{report}");
        }
    }
}

/// The job log of a train-1node job (its --output).
fn train_log(cwd: &Path, id: &str) -> String {
    fs::read_to_string(cwd.join(format!("logs/lens-train-{id}.out"))).unwrap_or_default()
}

/// safetensors weights by name (all ours are F32).
fn weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

/// The largest difference between two sets of weights with the same names.
fn max_difference(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> (f32, String) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0.0f32, String::new());
    for (k, va) in a {
        for (x, y) in va.iter().zip(&b[k]) {
            if (x - y).abs() > worst.0 {
                worst = ((x - y).abs(), k.clone());
            }
        }
    }
    worst
}

/// Two runs of the same steps ended alike: the same weights, byte for byte, and the same metrics.csv except the
/// training loss, a float sum whose order a resume changes (to the last bit or so).
fn assert_same_run(a: &Path, b: &Path) {
    let (wa, wb) = (fs::read(a.join("model.safetensors")).unwrap(), fs::read(b.join("model.safetensors")).unwrap());
    assert!(wa == wb, "{} and {} differ", a.join("model.safetensors").display(), b.join("model.safetensors").display());
    let (ma, mb) = (csv_rows(&a.join("metrics.csv")), csv_rows(&b.join("metrics.csv")));
    assert_eq!(ma.len(), mb.len());
    for (ra, rb) in ma.iter().zip(&mb) {
        assert_eq!(ra[..3], rb[..3], "epoch, step, lr");
        let (la, lb): (f64, f64) = (ra[3].parse().unwrap(), rb[3].parse().unwrap());
        assert!((la - lb).abs() < 1e-12, "training loss {la} vs {lb}");
        assert_eq!(ra[4..], rb[4..], "validation metrics");
    }
}

fn state_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(run.join("checkpoint/state.json")).unwrap()).unwrap()
}

/// Waits until `run` has a checkpoint (training is under way), at most `limit`.
fn wait_for_checkpoint(run: &Path, limit: Duration, what: impl Fn() -> String) {
    let start = Instant::now();
    while !run.join("checkpoint/state.json").exists() {
        assert!(start.elapsed() < limit, "no checkpoint in {} after {limit:?}:\n{}", run.display(), what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn train_1node_with_two_tasks_trains_like_one_process_with_twice_the_batch() {
    let _serial = serial();
    let (t, pack) = packed_dataset(50, 1); // 160 training objects: 10 steps of 16 per epoch
    let p = pack.to_str().unwrap();
    let one = train_one_process(p, &t.path().join("one"));

    let cluster = Cluster::start();
    fs::create_dir(t.path().join("logs")).unwrap();
    let script = root().join("scripts/slurm/train-1node.sbatch");
    let mut args = CPU_TRAIN.to_vec();
    args.extend([script.to_str().unwrap(), p, "runs/two"]);
    args.extend(EXACT);
    args.extend(["--batch-size", "8"]);
    let started = Instant::now();
    let id = cluster.sbatch(t.path(), &args);
    let end = cluster.wait(&id, LIMIT);
    let log = train_log(t.path(), &id);
    eprintln!("train-1node, 2 tasks, 2 epochs: {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!(end[0].state, "COMPLETED", "{end:?}\n{log}");
    assert_eq!(end[0].exit_code, "0:0");
    assert!(log.contains("0: lens-train: 2 processes (slurm, gloo); batch 8 per process, 16 per step"), "{log}");
    // Rank 0 alone writes and reports (srun --label puts the task number before each line).
    assert!(log.lines().all(|l| !l.starts_with("1: ")), "rank 1 is silent:\n{log}");
    assert_eq!(log.matches("epoch 2/2").count(), 1, "{log}");
    let two = t.path().join("runs/two");
    let mut files: Vec<String> =
        fs::read_dir(&two).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(
        files,
        ["checkpoint", "config.json", "metrics.csv", "model.safetensors", "timing.csv", "val_predictions.csv"],
        "one run directory, nothing else"
    );
    assert_eq!(state_json(&two)["world_size"], 2);

    // The data-parallel equivalence, now through srun: same weights (1e-4: the gradient of 16 images is summed in
    // another order), validation and metrics.
    let (worst, name) =
        max_difference(&weights(&one.join("model.safetensors")), &weights(&two.join("model.safetensors")));
    assert!(worst < 1e-4, "weights differ by {worst} in {name}");
    let (pa, pb) = (csv_rows(&one.join("val_predictions.csv")), csv_rows(&two.join("val_predictions.csv")));
    assert_eq!(pa.len(), 40);
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(x[0], y[0]);
        let (x, y): (f64, f64) = (x[3].parse().unwrap(), y[3].parse().unwrap());
        assert!((x - y).abs() < 1e-4, "validation logit {x} vs {y}");
    }
    let (ma, mb) = (csv_rows(&one.join("metrics.csv")), csv_rows(&two.join("metrics.csv")));
    assert_eq!(ma.len(), 2);
    for (ra, rb) in ma.iter().zip(&mb) {
        assert_eq!(ra[..3], rb[..3], "epoch, step, lr");
        let (la, lb): (f64, f64) = (ra[3].parse().unwrap(), rb[3].parse().unwrap());
        assert!((la - lb).abs() < 1e-5, "training loss over both ranks: {la} vs {lb}");
        assert_eq!(ra[5], rb[5], "validation AUC");
    }
}

#[test]
fn train_multinode_on_two_nodes_trains_like_one_process_with_twice_the_batch() {
    let _serial = serial();
    let (t, pack) = packed_dataset(50, 7);
    let p = pack.to_str().unwrap();
    let one = train_one_process(p, &t.path().join("one"));

    // Two nodes of one core, one task each: rank 1 reaches rank 0's store at the first node's NodeAddr.
    let cluster = Cluster::with_nodes(2);
    fs::create_dir(t.path().join("logs")).unwrap();
    let script = root().join("scripts/slurm/train-multinode.sbatch");
    let mut args = vec!["--gpus-per-node=0", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1"];
    args.extend([script.to_str().unwrap(), p, "runs/two"]);
    args.extend(EXACT);
    args.extend(["--batch-size", "8"]);
    let started = Instant::now();
    let id = cluster.sbatch(t.path(), &args);
    let end = cluster.wait(&id, LIMIT);
    let log = train_log(t.path(), &id);
    eprintln!("train-multinode, 2 nodes x 1 task, 2 epochs: {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!(end[0].state, "COMPLETED", "{end:?}\n{log}");
    assert!(log.contains("0: lens-train: 2 processes (slurm, gloo); batch 8 per process, 16 per step"), "{log}");
    let two = t.path().join("runs/two");
    let (worst, name) =
        max_difference(&weights(&one.join("model.safetensors")), &weights(&two.join("model.safetensors")));
    assert!(worst < 1e-4, "weights differ by {worst} in {name}");
}

#[test]
fn a_preempted_job_saves_a_checkpoint_and_continues_when_submitted_again_or_requeued() {
    let _serial = serial();
    let (t, pack) = packed_dataset(50, 2);
    let cluster = Cluster::start();
    fs::create_dir(t.path().join("logs")).unwrap();
    let script = root().join("scripts/slurm/train-1node.sbatch");
    // The same command every time: the script resumes RUN by itself once it holds a checkpoint.
    let submit = |run: &str| {
        let mut args = CPU_TRAIN.to_vec();
        args.extend([script.to_str().unwrap(), pack.to_str().unwrap(), run]);
        args.extend(["--model", "convnext_atto", "--seed", "3", "--epochs", "4", "--batch-size", "8"]);
        args.extend(["--checkpoint-every", "3"]);
        cluster.sbatch(t.path(), &args)
    };

    let started = Instant::now();
    let id = submit("runs/whole");
    let end = cluster.wait(&id, LIMIT);
    assert_eq!(end[0].state, "COMPLETED", "{end:?}\n{}", train_log(t.path(), &id));
    eprintln!("uninterrupted, 4 epochs: {:.0} s", started.elapsed().as_secs_f64());

    // Preemption: SIGTERM to the job's tasks, as --signal=TERM@300 sends it before the time limit.
    let started = Instant::now();
    let run = t.path().join("runs/stopped");
    let id = submit("runs/stopped");
    wait_for_checkpoint(&run, LIMIT, || train_log(t.path(), &id));
    ok(cluster.cmd("scancel", t.path()).args(["--signal=TERM", &id]));
    let end = cluster.wait(&id, LIMIT);
    let log = train_log(t.path(), &id);
    assert_eq!((end[0].state.as_str(), end[0].exit_code.as_str()), ("FAILED", "143:0"), "{end:?}\n{log}");
    // Both ranks stopped by the signal (not killed), after the step of the checkpoint rank 0 saved.
    // srun reports tasks that end together on one line ("tasks 0-1: ...") and otherwise one line each.
    let exited = |tasks: &str| log.contains(&format!("{tasks}: Exited with exit code 143"));
    assert!(exited("tasks 0-1") || (exited("task 0") && exited("task 1")), "{log}");
    let state = state_json(&run);
    let [epoch, batch, step] = ["epoch", "batch_in_epoch", "global_step"].map(|k| state[k].as_u64().unwrap());
    assert!(
        log.contains(&format!("stopped by a signal at epoch {}, step {step}; checkpoint saved", epoch + 1)),
        "{log}"
    );
    assert_eq!(state["world_size"], 2);
    eprintln!("preempted at step {step}: {:.0} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let id = submit("runs/stopped");
    let end = cluster.wait(&id, LIMIT);
    let log = train_log(t.path(), &id);
    assert_eq!(end[0].state, "COMPLETED", "{end:?}\n{log}");
    assert!(
        log.contains(&format!("resuming runs/stopped at epoch {}, batch {batch} (step {step})", epoch + 1)),
        "{log}"
    );
    assert_same_run(&t.path().join("runs/whole"), &run);
    eprintln!("resubmitted and finished: {:.0} s", started.elapsed().as_secs_f64());

    // Slurm's own requeue (preemption with PreemptMode=REQUEUE, a node failure, scontrol requeue): the job is
    // stopped (SIGTERM, a checkpoint), queued again and resumes by itself; its log keeps both attempts.
    let started = Instant::now();
    let run = t.path().join("runs/requeued");
    let id = submit("runs/requeued");
    wait_for_checkpoint(&run, LIMIT, || train_log(t.path(), &id));
    cluster.scontrol(&["requeue", &id]);
    let end = cluster.wait(&id, LIMIT);
    let log = train_log(t.path(), &id);
    assert_eq!((end[0].state.as_str(), end[0].restarts.as_str()), ("COMPLETED", "1"), "{end:?}\n{log}");
    assert!(log.contains("checkpoint saved") && log.contains("resuming runs/requeued"), "{log}");
    assert_same_run(&t.path().join("runs/whole"), &run);
    eprintln!("requeued and finished: {:.0} s", started.elapsed().as_secs_f64());
}

/// A trained run and a blind pack to score: (the directory, the run, the pack).
fn run_and_blind_pack() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (t, pack) = packed_dataset(10, 3);
    let run = t.path().join("atto");
    ok(tool("lens-train")
        .args(["-q", "-j", "2", "--model", "convnext_atto", "--epochs", "1", "--batch-size", "32"])
        .args(["--pack", pack.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    let blind = t.path().join("blind");
    ok(tool("lens-synth").args(["-q", "--objects", "10", "--seed", "4", "--blind", "--out"]).arg(&blind));
    let index = t.path().join("blind.index.csv");
    ok(tool("lens-index").arg(&blind).arg("-o").arg(&index));
    let blind_pack = t.path().join("blind.pack");
    ok(tool("lens-pack").arg("-q").arg(&index).arg("-o").arg(&blind_pack));
    (t, run, blind_pack)
}

#[test]
fn infer_array_of_three_tasks_and_the_join_equal_the_unsharded_submission() {
    let _serial = serial();
    let (t, run, blind) = run_and_blind_pack();
    let cluster = Cluster::start();
    fs::create_dir(t.path().join("logs")).unwrap();
    let script = root().join("scripts/slurm/infer-array.sbatch");
    let started = Instant::now();
    let mut args = CPU_INFER.to_vec();
    args.extend(["--array=0-2", script.to_str().unwrap(), "atto", "blind.pack", "shards"]);
    let array = cluster.sbatch(t.path(), &args);
    let join = cluster.sbatch(
        t.path(),
        &[
            &format!("--dependency=afterok:{array}"),
            "--kill-on-invalid-dep=yes",
            "--output=logs/join-%j.out",
            "--wrap",
            "lens-ensemble 'shards/atto.*.logits.csv' -o shards/submission.csv",
        ],
    );
    let end = cluster.wait(&join, LIMIT);
    eprintln!("array of 3 and the join: {:.0} s", started.elapsed().as_secs_f64());
    let tasks = cluster.ended(&array);
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(tasks.iter().all(|e| e.state == "COMPLETED"), "{tasks:?}");
    assert_eq!(end[0].state, "COMPLETED", "{end:?}");
    for k in 0..3 {
        let log = fs::read_to_string(t.path().join(format!("logs/lens-infer-{array}_{k}.out"))).unwrap();
        assert!(log.contains("lens-infer: scored"), "{log}");
        assert_eq!(
            csv_rows(&t.path().join(format!("shards/atto.{k}.logits.csv"))).len(),
            [7, 7, 6][k],
            "20 rows, 3 shards"
        );
    }

    let whole = t.path().join("whole.logits.csv");
    ok(tool("lens-infer").args(["-q", "-j", "2", "--run"]).arg(&run).arg("--pack").arg(&blind).arg("-o").arg(&whole));
    let submission = t.path().join("whole.csv");
    ok(tool("lens-ensemble").arg(&whole).arg("-o").arg(&submission));
    assert_eq!(fs::read(&submission).unwrap(), fs::read(t.path().join("shards/submission.csv")).unwrap());
}

/// A copy of `pack` whose images.npy lost its second half (a transfer cut short).
fn truncated_copy(pack: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for e in fs::read_dir(pack).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let images = to.join("images.npy");
    let len = fs::metadata(&images).unwrap().len();
    fs::OpenOptions::new().write(true).open(&images).unwrap().set_len(len / 2).unwrap();
}

#[test]
fn a_bad_pack_fails_the_jobs_with_the_ranks_error_in_the_log() {
    let _serial = serial();
    let (t, _, blind) = run_and_blind_pack();
    let (bad_train, bad_blind) = (t.path().join("bad-train.pack"), t.path().join("bad-blind.pack"));
    truncated_copy(&t.path().join("train.pack"), &bad_train);
    truncated_copy(&blind, &bad_blind);
    let cluster = Cluster::start();
    fs::create_dir(t.path().join("logs")).unwrap();

    let started = Instant::now();
    let mut args = CPU_TRAIN.to_vec();
    let script = root().join("scripts/slurm/train-1node.sbatch");
    args.extend([script.to_str().unwrap(), "bad-train.pack", "runs/bad", "--model", "convnext_atto"]);
    let id = cluster.sbatch(t.path(), &args);
    // Not a hang: the job ends in seconds, not at --dist-timeout (600 s in the script) or the time limit.
    let end = cluster.wait(&id, Duration::from_secs(120));
    let log = train_log(t.path(), &id);
    eprintln!("train-1node on a bad pack: {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!((end[0].state.as_str(), end[0].exit_code.as_str()), ("FAILED", "2:0"), "{end:?}\n{log}");
    for rank in 0..2 {
        assert!(log.contains(&format!("{rank}: lens-train: error: rank {rank} of 2")), "{log}");
    }
    assert!(log.contains("opening the training pack") && log.contains("images.npy"), "the cause is in the log:\n{log}");

    let started = Instant::now();
    let script = root().join("scripts/slurm/infer-array.sbatch");
    let mut args = CPU_INFER.to_vec();
    args.extend(["--array=0-2", script.to_str().unwrap(), "atto", "bad-blind.pack", "shards"]);
    let array = cluster.sbatch(t.path(), &args);
    let join = cluster.sbatch(
        t.path(),
        &[
            &format!("--dependency=afterok:{array}"),
            "--kill-on-invalid-dep=yes",
            "--output=logs/join-%j.out",
            "--wrap",
            "lens-ensemble 'shards/atto.*.logits.csv' -o shards/submission.csv",
        ],
    );
    // The join never runs: it is cancelled, not left pending forever.
    let end = cluster.wait(&join, Duration::from_secs(120));
    eprintln!("infer-array on a bad pack: {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!((end[0].state.as_str(), end[0].reason.as_str()), ("CANCELLED", "DependencyNeverSatisfied"), "{end:?}");
    let tasks = cluster.ended(&array);
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    for (k, task) in tasks.iter().enumerate() {
        let log = fs::read_to_string(t.path().join(format!("logs/lens-infer-{array}_{k}.out"))).unwrap();
        assert_eq!((task.state.as_str(), task.exit_code.as_str()), ("FAILED", "2:0"), "{task:?}\n{log}");
        assert!(log.contains("lens-infer: error:") && log.contains("images.npy"), "{log}");
    }
    assert!(!t.path().join("shards/submission.csv").exists());
}

// --- torchrun -----------------------------------------------------------------------------------------------------

fn torchrun() -> PathBuf {
    let p = root().join(".venv/bin/torchrun");
    assert!(p.exists(), "{} not found: run scripts/setup.sh (torch in .venv)", p.display());
    p
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            v.push(p);
        }
    }
    v
}

fn environ(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|b| b.split(|&c| c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        .unwrap_or_default()
}

/// A torchrun agent; dropping it ends it and its workers (torchrun starts each in a session of its own, so they
/// are not in its process group).
struct Agent {
    child: Child,
}

impl Agent {
    /// torchrun with the c10d rendezvous at 127.0.0.1:`port`, `nnodes` agents of `nproc` workers, running
    /// lens-train with `args`. The autotune cache is beside `log`, as in Cluster::sbatch.
    fn start(port: u16, nnodes: usize, nproc: usize, extra: &[&str], args: &[&str], log: &Path) -> Agent {
        let cache = log.parent().unwrap().join("autotune-cache");
        let log = fs::File::create(log).unwrap();
        let child = Command::new(torchrun())
            .args(["--nnodes", &nnodes.to_string(), "--nproc-per-node", &nproc.to_string()])
            .args(["--rdzv-backend", "c10d", "--rdzv-endpoint", &format!("127.0.0.1:{port}"), "--rdzv-id", "lensfind"])
            .args(extra)
            .arg("--no-python")
            .arg(bin_dir().join("lens-train"))
            .args(args)
            .env_remove("SLURM_PROCID")
            .env_remove("SLURM_NTASKS")
            .env("XDG_CACHE_HOME", cache)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting torchrun");
        Agent { child }
    }

    fn workers(&self) -> Vec<u32> {
        children(self.child.id())
    }

    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(start.elapsed() < limit, "torchrun still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        let workers = self.workers();
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            let _ = Command::new("kill").arg("-KILL").arg(w.to_string()).status();
        }
    }
}

/// Settings of the torchrun runs: default precision, 4 epochs of 10 steps, a checkpoint every 3 steps.
fn torchrun_args<'a>(pack: &'a str, run: &'a str) -> Vec<&'a str> {
    let mut v = vec!["--pack", pack, "--out", run, "--model", "convnext_atto", "--seed", "3", "-j", "1"];
    v.extend(["--epochs", "4", "--batch-size", "8", "--checkpoint-every", "3"]);
    v
}

#[test]
fn torchrun_c10d_rendezvous_between_two_agents_trains_like_one_process() {
    let _serial = serial();
    let (t, pack) = packed_dataset(50, 5);
    let p = pack.to_str().unwrap();
    let one = train_one_process(p, &t.path().join("one"));

    // Two agents (two "nodes" of one worker each) meet at the c10d rendezvous endpoint; the first to bind it
    // serves the store.
    let started = Instant::now();
    let port = free_port();
    let two = t.path().join("two");
    let mut args = vec!["--pack", p, "--out", two.to_str().unwrap(), "-j", "1", "--batch-size", "8"];
    args.extend(EXACT);
    let mut agents: Vec<Agent> =
        (0..2).map(|k| Agent::start(port, 2, 1, &[], &args, &t.path().join(format!("agent{k}.log")))).collect();
    for (k, a) in agents.iter_mut().enumerate() {
        let code = a.wait(LIMIT);
        let log = fs::read_to_string(t.path().join(format!("agent{k}.log"))).unwrap();
        assert_eq!(code, Some(0), "agent {k}:\n{log}");
    }
    eprintln!("torchrun c10d, 2 agents x 1 worker, 2 epochs: {:.0} s", started.elapsed().as_secs_f64());
    let logs: String = (0..2).map(|k| fs::read_to_string(t.path().join(format!("agent{k}.log"))).unwrap()).collect();
    assert!(logs.contains("lens-train: 2 processes (torchrun, gloo); batch 8 per process, 16 per step"), "{logs}");
    let (worst, name) =
        max_difference(&weights(&one.join("model.safetensors")), &weights(&two.join("model.safetensors")));
    assert!(worst < 1e-4, "weights differ by {worst} in {name}");
}

/// torchrun --max-restarts 1 and lens-train --auto-resume, as scripts/torchrun-train.sh runs it: a rank killed
/// outright (SIGKILL: no checkpoint of its own) ends the group; torchrun starts it again with the same command line,
/// and the new group continues from the last periodic checkpoint to the weights of a run never interrupted. The
/// precision and memory format are left to auto: the restarted group takes what config.json recorded.
#[test]
fn torchrun_max_restarts_resumes_a_group_whose_rank_was_killed_from_its_checkpoint() {
    let _serial = serial();
    let (t, pack) = packed_dataset(50, 6);
    let p = pack.to_str().unwrap();
    let auto = ["--auto-resume"];

    let started = Instant::now();
    let whole = t.path().join("whole");
    let mut args = torchrun_args(p, whole.to_str().unwrap());
    args.extend(auto);
    let mut agent = Agent::start(free_port(), 1, 2, &[], &args, &t.path().join("whole.log"));
    let code = agent.wait(LIMIT);
    assert_eq!(code, Some(0), "{}", fs::read_to_string(t.path().join("whole.log")).unwrap());
    eprintln!("torchrun, 2 workers, 4 epochs: {:.0} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let run = t.path().join("restarted");
    let mut args = torchrun_args(p, run.to_str().unwrap());
    args.extend(auto);
    let log = t.path().join("restarted.log");
    let mut agent = Agent::start(free_port(), 1, 2, &["--max-restarts", "1"], &args, &log);
    let read_log = || fs::read_to_string(&log).unwrap_or_default();
    wait_for_checkpoint(&run, LIMIT, read_log);
    let rank1 = agent.workers().into_iter().find(|&w| environ(w).iter().any(|v| v == "RANK=1"));
    let rank1 = rank1.unwrap_or_else(|| panic!("no worker with RANK=1 under torchrun:\n{}", read_log()));
    Command::new("kill").args(["-KILL", &rank1.to_string()]).status().unwrap();
    let code = agent.wait(LIMIT);
    let text = read_log();
    eprintln!("killed rank 1, restarted, finished: {:.0} s", started.elapsed().as_secs_f64());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("rank 1 stopped responding"), "rank 0 named the killed rank:\n{text}");
    // From a checkpoint: a periodic one (every 3 steps) or an epoch's end (10 steps each), not from the start.
    let step: usize = text
        .split_once("lens-train: resuming")
        .and_then(|(_, rest)| rest.split_once("(step ")?.1.split_once(')')?.0.parse().ok())
        .unwrap_or_else(|| panic!("the restarted group did not resume from a checkpoint:\n{text}"));
    assert!(step > 0 && (step.is_multiple_of(3) || step.is_multiple_of(10)), "resumed at step {step}:\n{text}");
    eprintln!("the restarted group resumed at step {step}");
    assert_same_run(&whole, &run);
}

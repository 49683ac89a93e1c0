//! Helpers for the end-to-end tests: find and run the built tools, make datasets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding the built binaries (target/debug when the tests run from target/debug/deps).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LENSFIND_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// A command for tool `name`, failing clearly when the tools were not built.
pub fn tool(name: &str) -> Command {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} not found: build the tools first (cargo build --bins, or make test)", path.display());
    let mut cmd = Command::new(path);
    // The autotune cache of the tests, apart from the user's (~/.cache/lensfind): tests that compare runs give
    // --precision and --memory-format, the others may share measured choices.
    cmd.env("XDG_CACHE_HOME", bin_dir().join("test-cache"));
    cmd
}

/// Runs a command and returns its output, panicking with stderr if it fails.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawning the tool");
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs a command expected to fail with exit status 2; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawning the tool");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{cmd:?} should exit 2; stderr:\n{stderr}");
    stderr
}

/// Writes a training-layout dataset with `n` objects per class.
pub fn synth(dir: &Path, n: usize, seed: u64, extra: &[&str]) {
    ok(tool("lens-synth")
        .args(["-q", "--objects", &n.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(dir)
        .args(extra));
}

/// Indexes `roots` into `index` (a file).
pub fn index(roots: &[&Path], index: &Path) -> Output {
    ok(tool("lens-index").args(roots).arg("-o").arg(index))
}

/// Reads a CSV into rows of strings (header excluded).
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect()
}

/// The project's Python (.venv at the workspace root), if set up.
pub fn venv_python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    p.exists().then_some(p)
}

/// A synthetic training set in a fresh temporary directory, indexed: (the directory, data dir, index file).
pub fn indexed_dataset(n: usize, seed: u64, extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    synth(&data, n, seed, extra);
    let idx = t.path().join("index.csv");
    index(&[&data], &idx);
    (t, data, idx)
}

/// A packed synthetic training set: (the directory, the pack).
pub fn packed_dataset(n: usize, seed: u64) -> (tempfile::TempDir, PathBuf) {
    let (t, _, idx) = indexed_dataset(n, seed, &[]);
    let p = t.path().join("train.pack");
    ok(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&p));
    (t, p)
}

//! Helpers for the end-to-end tests: find and run the built tools, make datasets.
#![allow(clippy::unwrap_used)] // test helpers: a panic is how a test fails

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

/// A command for tool `name`, failing clearly when the tools were not built or are older than their sources.
pub fn tool(name: &str) -> Command {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} not found: build the tools first (cargo build --bins, or make test)", path.display());
    assert_fresh(name, &path);
    let mut cmd = Command::new(path);
    // The autotune cache of the tests, apart from the user's (~/.cache/lensfind): tests that compare runs give
    // --precision and --memory-format, the others may share measured choices.
    cmd.env("XDG_CACHE_HOME", bin_dir().join("test-cache"));
    cmd
}

/// The tools, one per crate in tools/ (the one list: the Makefile and xtask's test read the same directory).
pub fn tool_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("tools"))
        .expect("tools/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lens-"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    names
}

/// Whether tool `name` links libtorch (its crate depends on lensfind-nn).
pub fn links_libtorch(name: &str) -> bool {
    let manifest = std::fs::read_to_string(workspace().join("tools").join(name).join("Cargo.toml")).unwrap();
    manifest.contains("lensfind-nn")
}

/// [`bin_dir`], after checking that every tool in it is built and not older than its sources (for tests that put
/// the directory on PATH or hand it to make).
pub fn fresh_bin_dir() -> PathBuf {
    let dir = bin_dir();
    for name in tool_names() {
        let path = dir.join(&name);
        assert!(
            path.exists(),
            "{} not found: build the tools first (cargo build --bins, or make test)",
            path.display()
        );
        assert_fresh(&name, &path);
    }
    dir
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// Fails when the built tool `name` is older than a source it is built from, so that tests cannot pass on a stale
/// target/ (`cargo test` builds the tests, not the binaries they run). The sources: the tool's crate, the library
/// crates it links, and for the tools that link libtorch the nn crate with its C++ shim. Checked once per tool and test process.
pub fn assert_fresh(name: &str, binary: &Path) {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if CHECKED.lock().unwrap().iter().any(|n| n == name) {
        return;
    }
    let root = workspace();
    let crate_dir = root.join("tools").join(name);
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    let mut sources = vec![crate_dir.join("src")];
    // The library crates it depends on (lib/NAME is the crate lensfind-NAME); nn depends on core, data and eval.
    for part in ["core", "data", "eval", "synth", "view"] {
        let linked = manifest.contains("lensfind-nn") && ["core", "data", "eval"].contains(&part);
        if linked || manifest.contains(&format!("lensfind-{part}")) {
            sources.push(root.join("lib").join(part).join("src"));
        }
    }
    if manifest.contains("lensfind-nn") {
        sources.extend([root.join("nn/src"), root.join("nn/csrc"), root.join("nn/build.rs")]);
    }
    let built = modified(binary).expect("the binary's modification time");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for s in &sources {
        newest_file(s, &mut newest);
    }
    if let Some((time, source)) = newest {
        assert!(
            time <= built,
            "{} is older than {}: rebuild the tools (cargo build --bins, or make test) before testing them",
            binary.display(),
            source.display()
        );
    }
    CHECKED.lock().unwrap().push(name.to_string());
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The most recently modified file under `path` (a file or a directory tree), into `newest`.
fn newest_file(path: &Path, newest: &mut Option<(std::time::SystemTime, PathBuf)>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest_file(&entry.path(), newest);
        }
    } else if let Some(time) = modified(path) {
        if newest.as_ref().is_none_or(|(t, _)| time > *t) {
            *newest = Some((time, path.to_path_buf()));
        }
    }
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

/// The project's Python when it can import every one of `modules`; else why not.
pub fn python_with(modules: &[&str]) -> Result<PathBuf, String> {
    let python = venv_python().ok_or("no .venv/bin/python (scripts/setup.sh makes it)")?;
    let out = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} cannot import {}: {} (scripts/setup.sh installs them)",
            python.display(),
            modules.join(", "),
            stderr.trim().lines().last().unwrap_or_default()
        ));
    }
    Ok(python)
}

/// The environment variable that names the tests allowed to skip their check (comma-separated test names).
pub const SKIP_VAR: &str = "LENSFIND_SKIP";

/// Whether `LENSFIND_SKIP` names `test`.
pub fn skip_requested(test: &str) -> bool {
    std::env::var(SKIP_VAR).is_ok_and(|v| v.split(',').any(|name| name.trim() == test))
}

/// Called by a test that cannot run its check here (a package or program missing, no permission): fails the test,
/// unless `LENSFIND_SKIP` names it, and then says so on stderr and returns. A test never skips on its own: a
/// check that did not run must not look like one that passed. Use as `return cannot_run("test_name", why)`.
pub fn cannot_run(test: &str, why: &str) {
    // The name must be the calling test's own, or LENSFIND_SKIP=<its name> would not reach it.
    if let Some(thread) = std::thread::current().name().filter(|n| *n != "main") {
        assert_eq!(thread.rsplit("::").next(), Some(test), "cannot_run called with another test's name");
    }
    if skip_requested(test) {
        eprintln!("{test}: check not run, as {SKIP_VAR} asks: {why}");
    } else {
        panic!("{test} cannot run its check: {why}; fix that, or skip it on purpose with {SKIP_VAR}={test}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cannot_run_fails_unless_lensfind_skip_names_the_test() {
        // One test touches the variable, so no other test of this binary sees it change.
        std::env::remove_var(SKIP_VAR);
        let name = "cannot_run_fails_unless_lensfind_skip_names_the_test";
        assert!(std::panic::catch_unwind(|| cannot_run(name, "no reason")).is_err(), "not named: fails");
        std::env::set_var(SKIP_VAR, "another_test");
        assert!(std::panic::catch_unwind(|| cannot_run(name, "no reason")).is_err(), "another named: fails");
        std::env::set_var(SKIP_VAR, format!("another_test, {name}"));
        cannot_run(name, "no reason"); // named: returns
        assert!(std::panic::catch_unwind(|| cannot_run("some_test", "no reason")).is_err(), "a wrong name is caught");
        std::env::remove_var(SKIP_VAR);
    }
}

//! What `--version` of the torch tools prints: the tool's version, the libtorch it runs on, and whether CUDA is
//! usable.
//!
//! The libtorch version is read at run time from the library actually loaded (found in /proc/self/maps): the
//! wheel's `torch/version.py` beside its `lib/`, or a libtorch archive's `build-version`. That is the version in
//! use, which a build-time constant would not be if the rpath or LD_LIBRARY_PATH pointed elsewhere.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The version string for clap's `version` attribute: `tool_version` alone, unless this process was asked for its
/// version (`-V`/`--version` among the arguments), then with the libtorch and CUDA lines. clap builds the string
/// whenever it builds the command (every run, and the man pages), so probing CUDA only when asked keeps other runs
/// from initialising the driver and the generated man pages the same on every machine.
pub fn version(tool_version: &'static str) -> &'static str {
    let asked = std::env::args_os().skip(1).any(|a| a == "--version" || a == "-V");
    if !asked {
        return tool_version;
    }
    static FULL: OnceLock<String> = OnceLock::new();
    FULL.get_or_init(|| format!("{tool_version}\n{}\n{}", libtorch_line(), cuda_line()))
}

/// `libtorch 2.13.0+cu130 (/path/to/torch/lib)`.
fn libtorch_line() -> String {
    match loaded_libtorch_dir() {
        Some(dir) => {
            let version = libtorch_version(&dir).unwrap_or_else(|| "(version unknown)".into());
            format!("libtorch {version} ({})", dir.display())
        }
        None => "libtorch (version unknown: not found among the loaded libraries)".into(),
    }
}

/// `CUDA: available, 2 devices` or `CUDA: not available`.
fn cuda_line() -> String {
    if tch::Cuda::is_available() {
        let n = tch::Cuda::device_count();
        format!("CUDA: available, {n} device{}", if n == 1 { "" } else { "s" })
    } else {
        "CUDA: not available".into()
    }
}

/// The version of the libtorch this process runs on (`2.13.0+cu130`), or "unknown".
pub(crate) fn loaded_libtorch_version() -> String {
    loaded_libtorch_dir().and_then(|d| libtorch_version(&d)).unwrap_or_else(|| "unknown".into())
}

/// The directory of the loaded libtorch_cpu.so.
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so") || p.ends_with("/libtorch.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

/// The version of the libtorch in `lib_dir`: `__version__` of the wheel's torch/version.py, or the first line of
/// a libtorch archive's build-version.
fn libtorch_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    text.lines().next().map(|l| l.trim().to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wheels_version_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("lib")).unwrap();
        std::fs::write(t.path().join("version.py"), "x = 1\n__version__ = '2.13.0+cu130'\n").unwrap();
        assert_eq!(libtorch_version(&t.path().join("lib")).as_deref(), Some("2.13.0+cu130"));
        std::fs::remove_file(t.path().join("version.py")).unwrap();
        std::fs::write(t.path().join("build-version"), "2.13.0+cpu\n").unwrap();
        assert_eq!(libtorch_version(&t.path().join("lib")).as_deref(), Some("2.13.0+cpu"));
    }

    #[test]
    fn this_process_has_libtorch_loaded() {
        let dir = loaded_libtorch_dir().expect("libtorch_cpu.so among the mapped files");
        assert!(dir.join("libtorch_cpu.so").exists());
    }
}

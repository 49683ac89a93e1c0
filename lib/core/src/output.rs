//! Outputs that appear whole or not at all: written under a temporary name beside the target, renamed into place
//! on success, removed on failure.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What the body of [`write_whole`] may fail with: whatever its caller's code returns (a CSV or JSON writer's
/// error, an I/O error, an anyhow error); the chain of causes is kept.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Why an output could not be written or put in place.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("creating {}", path.display())]
    Create { path: PathBuf, source: io::Error },
    /// The caller's body failed while writing `path`.
    #[error("writing {}", path.display())]
    Body { path: PathBuf, source: BodyError },
    #[error("writing {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("writing to stdout")]
    Stdout { source: BodyError },
    #[error("renaming {} to {}", from.display(), to.display())]
    Rename { from: PathBuf, to: PathBuf, source: io::Error },
    #[error("syncing {}", path.display())]
    Sync { path: PathBuf, source: io::Error },
    #[error("moving the old {} aside", path.display())]
    MoveAside { path: PathBuf, source: io::Error },
    #[error("removing the old {}", path.display())]
    RemoveOld { path: PathBuf, source: io::Error },
}

/// A temporary name beside `target`: same directory (so the rename is atomic), hidden, unique to this process on
/// this host (the host matters on a cluster file system, where jobs on two nodes can have the same PID).
pub fn temp_beside(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!(".{name}.{tag}-{}-{}", hostname(), std::process::id()))
}

/// Removes what killed runs left beside `target`: hidden `.NAME.tmp-HOST-PID` and `.NAME.old-HOST-PID` entries
/// (files or directories) made on this host by a process that is no longer running. A SIGKILL (the OOM killer, a
/// job past its time limit) gives a process no chance to clean up; the next run does it. Entries from other hosts
/// are left alone: their processes may be alive, and we cannot tell. Returns what was removed, with its PID.
pub(crate) fn remove_stale_temps(target: &Path) -> Vec<(PathBuf, u32)> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Vec::new() };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let host = hostname();
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(entry_name) = file_name.to_str() else { continue };
        let pid = ["tmp", "old"].iter().find_map(|tag| {
            let rest = entry_name.strip_prefix(&format!(".{name}.{tag}-{host}-"))?;
            rest.parse::<u32>().ok().filter(|_| rest.bytes().all(|b| b.is_ascii_digit()))
        });
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || process_is_running(pid) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed.push((path, pid));
        }
    }
    removed.sort();
    removed
}

/// Whether a process of this PID exists on this host (Linux: /proc/PID; elsewhere assume it does, so that nothing
/// is removed that might be in use).
fn process_is_running(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes what killed runs left beside `target` (hidden `.NAME.tmp-HOST-PID` and `.NAME.old-HOST-PID` entries of
/// this host's dead processes), saying on stderr what it removed (`tool: removed ...`).
pub fn clean_stale_temps(target: &Path, tool: &str) {
    for (path, pid) in remove_stale_temps(target) {
        crate::progress::note(
            tool,
            &format!("removed {}, left by process {pid}, which is no longer running", path.display()),
        );
    }
}

fn hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() {
        "host".into()
    } else {
        name
    }
}

/// A file being written; becomes `target` on [`AtomicFile::commit`], vanishes if dropped before.
pub(crate) struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub(crate) fn create(target: &Path) -> Result<AtomicFile, OutputError> {
        clean_stale_temps(target, &program_name());
        let temp = temp_beside(target, "tmp");
        let file = File::create(&temp).map_err(|source| OutputError::Create { path: temp.clone(), source })?;
        Ok(AtomicFile { target: target.to_path_buf(), temp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// Flushes, syncs and renames into place.
    pub(crate) fn commit(mut self) -> Result<(), OutputError> {
        let writer = self.writer.take().expect("commit is called once, on an uncommitted file");
        let write_error = |source| OutputError::Write { path: self.temp.clone(), source };
        let file = writer.into_inner().map_err(|e| write_error(e.into_error()))?;
        file.sync_all().map_err(write_error)?;
        fs::rename(&self.temp, &self.target).map_err(|source| OutputError::Rename {
            from: self.temp.clone(),
            to: self.target.clone(),
            source,
        })
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// This program's file name (`lens-ensemble`), for messages from library code.
pub(crate) fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .and_then(|p| Path::new(p).file_name())
        .map_or_else(|| "lensfind".into(), |n| n.to_string_lossy().into_owned())
}

/// Moves the finished directory `tmp` to `target`. An existing `target` is first moved aside, then removed, so a
/// reader sees the old directory or the new one, never a mixture. Syncs the parent so the rename survives a crash.
pub fn move_dir_into_place(tmp: &Path, target: &Path) -> Result<(), OutputError> {
    let sync = |path: &Path| {
        File::open(path).and_then(|f| f.sync_all()).map_err(|source| OutputError::Sync { path: path.into(), source })
    };
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|source| OutputError::Rename { from: from.into(), to: to.into(), source })
    };
    sync(tmp)?;
    if fs::symlink_metadata(target).is_ok() {
        let old = temp_beside(target, "old");
        fs::rename(target, &old).map_err(|source| OutputError::MoveAside { path: target.into(), source })?;
        rename(tmp, target)?;
        fs::remove_dir_all(&old).map_err(|source| OutputError::RemoveOld { path: old.clone(), source })?;
    } else {
        rename(tmp, target)?;
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    Ok(())
}

/// Moves the finished file `tmp` (written beside `target`: [`temp_beside`]) to `target` once it is on disk: fsync,
/// rename, fsync of the directory. For writers that take a path rather than a `Write` (safetensors).
pub fn move_file_into_place(tmp: &Path, target: &Path) -> Result<(), OutputError> {
    let sync = |path: &Path| {
        File::open(path).and_then(|f| f.sync_all()).map_err(|source| OutputError::Sync { path: path.into(), source })
    };
    sync(tmp)?;
    fs::rename(tmp, target).map_err(|source| OutputError::Rename { from: tmp.into(), to: target.into(), source })?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    Ok(())
}

/// Writes a whole output with `body`, to stdout when `path` is `None` or `-`, else atomically to the file.
pub fn write_whole(
    path: Option<&Path>,
    body: impl FnOnce(&mut dyn Write) -> Result<(), BodyError>,
) -> Result<(), OutputError> {
    match path {
        None => write_stdout(body),
        Some(p) if p == Path::new("-") => write_stdout(body),
        Some(p) => {
            let mut f = AtomicFile::create(p)?;
            body(&mut f).map_err(|source| OutputError::Body { path: p.into(), source })?;
            f.commit()
        }
    }
}

fn write_stdout(body: impl FnOnce(&mut dyn Write) -> Result<(), BodyError>) -> Result<(), OutputError> {
    let stdout = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    body(&mut w).map_err(|source| OutputError::Stdout { source })?;
    w.flush().map_err(|e| OutputError::Stdout { source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out.csv");
        let r = write_whole(Some(&target), |w| {
            w.write_all(b"half")?;
            Err("failed midway".into())
        });
        assert!(r.is_err());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0, "no file, not even a temporary one");
        write_whole(Some(&target), |w| Ok(w.write_all(b"whole")?)).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"whole");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_only_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("x.pack");
        let host = hostname();
        // PID 0 is never a user process's, so no such /proc entry: as good as dead. Our own PID is alive.
        let dead_dir = t.path().join(format!(".x.pack.tmp-{host}-0"));
        let dead_old = t.path().join(format!(".x.pack.old-{host}-0"));
        let alive = t.path().join(format!(".x.pack.tmp-{host}-{}", std::process::id()));
        let init = t.path().join(format!(".x.pack.tmp-{host}-1"));
        let other_host = t.path().join(".x.pack.tmp-elsewhere9-0");
        let other_name = t.path().join(format!(".y.pack.tmp-{host}-0"));
        let not_a_pid = t.path().join(format!(".x.pack.tmp-{host}-0x"));
        fs::create_dir_all(dead_dir.join("sub")).unwrap();
        fs::write(&dead_old, "").unwrap();
        for p in [&alive, &init, &other_host, &other_name, &not_a_pid] {
            fs::create_dir(p).unwrap();
        }
        let removed = remove_stale_temps(&target);
        assert_eq!(removed, vec![(dead_old.clone(), 0), (dead_dir.clone(), 0)]);
        assert!(!dead_dir.exists() && !dead_old.exists());
        for p in [&alive, &init, &other_host, &other_name, &not_a_pid] {
            assert!(p.exists(), "{} must stay", p.display());
        }
    }
}

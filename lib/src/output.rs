//! Outputs that appear whole or not at all: written under a temporary name beside the target, renamed into place
//! on success, removed on failure.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A temporary name beside `target`: same directory (so the rename is atomic), hidden, unique to this process on
/// this host (the host matters on a cluster file system, where jobs on two nodes can have the same PID).
pub fn temp_beside(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!(".{name}.{tag}-{}-{}", hostname(), std::process::id()))
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
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let temp = temp_beside(target, "tmp");
        let file = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        Ok(AtomicFile { target: target.to_path_buf(), temp, writer: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("not yet committed");
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.temp.display()))?;
        file.sync_all().with_context(|| format!("writing {}", self.temp.display()))?;
        fs::rename(&self.temp, &self.target)
            .with_context(|| format!("renaming {} to {}", self.temp.display(), self.target.display()))?;
        Ok(())
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

/// Moves the finished directory `tmp` to `target`. An existing `target` is first moved aside, then removed, so a
/// reader sees the old directory or the new one, never a mixture. Syncs the parent so the rename survives a crash.
pub fn replace_dir(tmp: &Path, target: &Path) -> Result<()> {
    File::open(tmp).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", tmp.display()))?;
    if fs::symlink_metadata(target).is_ok() {
        let old = temp_beside(target, "old");
        fs::rename(target, &old).with_context(|| format!("moving the old {} aside", target.display()))?;
        fs::rename(tmp, target).with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
        fs::remove_dir_all(&old).with_context(|| format!("removing the old {}", old.display()))?;
    } else {
        fs::rename(tmp, target).with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// Writes a whole output with `body`, to stdout when `path` is `None` or `-`, else atomically to the file.
pub fn write_output(path: Option<&Path>, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match path {
        None => write_stdout(body),
        Some(p) if p == Path::new("-") => write_stdout(body),
        Some(p) => {
            let mut f = AtomicFile::create(p)?;
            body(&mut f).with_context(|| format!("writing {}", p.display()))?;
            f.commit()
        }
    }
}

fn write_stdout(body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let stdout = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    body(&mut w).context("writing to stdout")?;
    w.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out.csv");
        let r = write_output(Some(&target), |w| {
            w.write_all(b"half")?;
            anyhow::bail!("failed midway")
        });
        assert!(r.is_err());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0, "no file, not even a temporary one");
        write_output(Some(&target), |w| Ok(w.write_all(b"whole")?)).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"whole");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}

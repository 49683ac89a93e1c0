//! The autotune cache: one JSON file, `$XDG_CACHE_HOME/lensfind/autotune.json` (`~/.cache/lensfind/autotune.json`
//! when XDG_CACHE_HOME is not set), one entry per key. Written whole or not at all (a temporary file renamed over
//! it); a file that cannot be read or parsed is ignored, said so, and replaced at the next write. To clear it,
//! delete the file; `--no-autotune-cache` neither reads nor writes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lensfind_core::output::write_whole;
use serde::{Deserialize, Serialize};

use super::{Setting, Timing};

/// The format version of the file; another version is ignored like a corrupt file.
const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

/// What was chosen for a key, and the timings it was chosen from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub chosen: Setting,
    pub timings: Vec<Timing>,
}

/// Where choices are kept, or nowhere.
#[derive(Debug, Clone)]
pub struct Cache {
    path: Option<PathBuf>,
}

impl Cache {
    /// The user's cache file (see the module documentation); nowhere when neither XDG_CACHE_HOME nor HOME is set.
    pub(crate) fn user() -> Cache {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
        Cache { path: base.map(|b| b.join("lensfind").join("autotune.json")) }
    }

    /// A cache in the file `path`.
    #[cfg(test)]
    pub(crate) fn at(path: impl Into<PathBuf>) -> Cache {
        Cache { path: Some(path.into()) }
    }

    /// No cache: every auto setting is measured, nothing is kept (`--no-autotune-cache`).
    pub(crate) fn disabled() -> Cache {
        Cache { path: None }
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The entries on file, and a note when the file was there but unusable.
    fn read(&self) -> (CacheFile, Option<String>) {
        let Some(path) = &self.path else { return (CacheFile::default(), None) };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (CacheFile::default(), None),
            Err(e) => {
                return (CacheFile::default(), Some(format!("ignoring the autotune cache {}: {e}", path.display())))
            }
        };
        match serde_json::from_str::<CacheFile>(&text) {
            Ok(f) if f.version == VERSION => (f, None),
            Ok(f) => (
                CacheFile::default(),
                Some(format!(
                    "ignoring the autotune cache {}: format version {}, not {VERSION}",
                    path.display(),
                    f.version
                )),
            ),
            Err(e) => (
                CacheFile::default(),
                Some(format!(
                    "ignoring the autotune cache {}: it is not valid ({e}); it will be rewritten",
                    path.display()
                )),
            ),
        }
    }

    /// The entry of `key`, and notes for the user.
    pub(crate) fn lookup(&self, key: &str) -> (Option<Entry>, Vec<String>) {
        let (file, note) = self.read();
        (file.entries.get(key).cloned(), note.into_iter().collect())
    }

    /// Records the choice for `key` (other keys kept), whole or not at all.
    pub(crate) fn store(&self, key: &str, chosen: Setting, timings: &[Timing]) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let (mut file, _) = self.read();
        file.version = VERSION;
        file.entries.insert(key.to_string(), Entry { chosen, timings: timings.to_vec() });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(write_whole(Some(path), |w| {
            serde_json::to_writer_pretty(&mut *w, &file)?;
            writeln!(w)?;
            Ok(())
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{MemoryFormat, Precision};

    fn setting(p: Precision) -> Setting {
        Setting { precision: p, memory_format: MemoryFormat::Contiguous }
    }

    #[test]
    fn stores_reads_and_ignores_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/autotune.json");
        let cache = Cache::at(&path);
        assert_eq!(cache.lookup("k"), (None, vec![]), "no file yet: nothing, and nothing to say");
        let timings = vec![Timing { setting: setting(Precision::Fp32), images_per_s: 10.0, stopped_early: false }];
        cache.store("k", setting(Precision::Fp32), &timings).unwrap();
        cache.store("other", setting(Precision::Bf16), &timings).unwrap();
        let (entry, notes) = cache.lookup("k");
        assert_eq!(entry.unwrap().chosen, setting(Precision::Fp32));
        assert!(notes.is_empty());
        assert_eq!(cache.lookup("other").0.unwrap().chosen, setting(Precision::Bf16), "keys kept apart");
        // No temporary file is left beside it.
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["autotune.json"]);
        // A damaged file is ignored with a note, and replaced by the next store.
        std::fs::write(&path, "{\"version\": 1, \"entries\": {\"k\": ").unwrap();
        let (entry, notes) = cache.lookup("k");
        assert!(entry.is_none());
        assert!(notes[0].contains("not valid"), "{notes:?}");
        cache.store("k", setting(Precision::Bf16), &timings).unwrap();
        assert_eq!(cache.lookup("k"), (Some(Entry { chosen: setting(Precision::Bf16), timings }), vec![]));
        // A disabled cache neither reads nor writes.
        assert_eq!(Cache::disabled().lookup("k").0, None);
        Cache::disabled().store("k", setting(Precision::Fp32), &[]).unwrap();
    }
}

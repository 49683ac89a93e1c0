//! Building an index: finding the band files under the roots and grouping them into objects.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{IndexError, IndexRow, LabelRule, Problem, ProblemKind, Root, Scan};
use crate::naming::{parse_file_name, BandFile, NameError, BANDS};
use lensfind_core::text::opt_u8;

/// A file found under a root.
struct Found {
    path: PathBuf,
    label: LabelRule,
}

/// Lists the files under `dir`, recursing into subdirectories in parallel. Symbolic links to files are followed;
/// links to directories are not (they could loop), unless the link is itself a root.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(unreadable(dir, &e));
            return;
        }
    };
    let mut subdirs = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(unreadable(dir, &e));
                continue;
            }
        };
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => subdirs.push(path),
            Ok(t) if t.is_file() => files.push(path),
            Ok(t) if t.is_symlink() => {
                if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    files.push(path);
                }
            }
            Ok(_) => {}
            Err(e) => problems.push(unreadable(&path, &e)),
        }
    }
    let nested: Vec<(Vec<PathBuf>, Vec<Problem>)> = subdirs
        .par_iter()
        .map(|d| {
            let (mut f, mut p) = (Vec::new(), Vec::new());
            walk(d, &mut f, &mut p);
            (f, p)
        })
        .collect();
    for (f, p) in nested {
        files.extend(f);
        problems.extend(p);
    }
}

fn unreadable(path: &Path, err: &dyn fmt::Display) -> Problem {
    Problem { kind: ProblemKind::Unreadable, id: String::new(), path: path.to_path_buf(), detail: err.to_string() }
}

fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

/// Expands the roots into files. A root that names nothing is an error: a typo must not give an empty index.
fn collect(roots: &[Root], problems: &mut Vec<Problem>) -> Result<Vec<Found>, IndexError> {
    let mut found = Vec::new();
    for root in roots {
        let mut paths = Vec::new();
        let path = Path::new(&root.spec);
        if path.exists() {
            paths.push(path.to_path_buf());
        } else if is_glob(&root.spec) {
            let entries = glob::glob(&root.spec).map_err(|e| IndexError::Pattern(root.spec.clone(), e))?;
            for entry in entries {
                match entry {
                    Ok(p) => paths.push(p),
                    Err(e) => problems.push(unreadable(e.path(), e.error())),
                }
            }
            if paths.is_empty() {
                return Err(IndexError::NoMatch(root.spec.clone()));
            }
        } else {
            return Err(IndexError::NoSuchRoot(root.spec.clone()));
        }
        for p in paths {
            let mut files = Vec::new();
            if p.is_dir() {
                walk(&p, &mut files, problems);
            } else {
                files.push(p);
            }
            found.extend(files.into_iter().map(|path| Found { path, label: root.label }));
        }
    }
    Ok(found)
}

/// Per-object accumulator while grouping.
struct Object {
    label: Option<u8>,
    source: Option<u8>,
    paths: [Option<PathBuf>; 5],
}

/// The objects seen so far, and the problems found on the way.
#[derive(Default)]
struct Grouping {
    objects: HashMap<String, Object>,
    problems: Vec<Problem>,
    /// `.fits` files looked at.
    files: usize,
}

impl Grouping {
    /// Takes in one found file and what its name says (None: the path is not UTF-8).
    fn add(&mut self, f: &Found, parsed: Option<Result<BandFile, NameError>>) {
        let parsed = match parsed {
            None => {
                if f.path.extension().is_some_and(|e| e == "fits") {
                    self.problems.push(unreadable(&f.path, &"path is not valid UTF-8"));
                }
                return;
            }
            Some(Err(NameError::NotFits)) => return,
            Some(Err(e)) => {
                self.files += 1;
                self.problem(ProblemKind::BadName, String::new(), f, e.to_string());
                return;
            }
            Some(Ok(p)) => p,
        };
        self.files += 1;
        let label = self.label_of(f, &parsed);
        let obj = self.objects.entry(parsed.id.clone()).or_insert_with(|| Object {
            label,
            source: parsed.source,
            paths: Default::default(),
        });
        if let Some(first) = &obj.paths[parsed.band] {
            let detail = format!("band {} already found at {}; keeping that one", BANDS[parsed.band], first.display());
            self.problem(ProblemKind::Duplicate, parsed.id, f, detail);
            return;
        }
        let object_label = obj.label;
        obj.paths[parsed.band] = Some(f.path.clone());
        if object_label != label {
            // Two bands of one object got different labels (they sit under roots with different --label).
            let detail = format!(
                "label {} here, {} for the object's other bands; keeping the first",
                opt_u8(label),
                opt_u8(object_label)
            );
            self.problem(ProblemKind::LabelConflict, parsed.id, f, detail);
        }
    }

    /// The label of a file: its root's, or its name's; a disagreement between the two is a problem.
    fn label_of(&mut self, f: &Found, parsed: &BandFile) -> Option<u8> {
        match (f.label, parsed.label) {
            (LabelRule::FromName, l) => l,
            (LabelRule::Fixed(fixed), Some(from_name)) if fixed != from_name => {
                let detail =
                    format!("name says label {from_name}, the label given for its root says {fixed}; using {fixed}");
                self.problem(ProblemKind::LabelConflict, parsed.id.clone(), f, detail);
                Some(fixed)
            }
            (LabelRule::Fixed(fixed), _) => Some(fixed),
        }
    }

    fn problem(&mut self, kind: ProblemKind, id: String, f: &Found, detail: String) {
        self.problems.push(Problem { kind, id, path: f.path.clone(), detail });
    }

    /// The complete objects as index rows, sorted by id; the incomplete ones become problems.
    fn finish(mut self) -> Scan {
        let mut rows = Vec::with_capacity(self.objects.len());
        for (id, obj) in self.objects {
            if let [Some(g), Some(r), Some(i), Some(z), Some(y)] = obj.paths {
                rows.push(IndexRow { id, label: obj.label, source: obj.source, paths: [g, r, i, z, y] });
                continue;
            }
            let missing: String = (0..5).filter(|&b| obj.paths[b].is_none()).map(|b| BANDS[b]).collect();
            let present = obj.paths.iter().flatten().next().expect("an object has at least one file");
            self.problems.push(Problem {
                kind: ProblemKind::MissingBand,
                id: id.clone(),
                path: present.clone(),
                detail: format!("missing band(s) {missing}; object left out"),
            });
        }
        rows.par_sort_unstable_by(|a, b| a.id.cmp(&b.id));
        self.problems.sort_by(|a, b| (a.kind, &a.id, &a.path).cmp(&(b.kind, &b.id, &b.path)));
        Scan { rows, problems: self.problems, files: self.files }
    }
}

/// Scans the roots and groups what it finds into objects. Deterministic: files are considered in path order, so
/// the same inputs give the same index and the same problems.
pub fn scan(roots: &[Root]) -> Result<Scan, IndexError> {
    let mut grouping = Grouping::default();
    let mut found = collect(roots, &mut grouping.problems)?;
    found.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path); // the same file reached through two roots counts once

    // Parse names in parallel; group sequentially (in path order, which decides which duplicate is kept).
    let parsed: Vec<_> = found
        .par_iter()
        .map(|f| {
            let name = f.path.file_name().and_then(|n| n.to_str());
            match (name, f.path.to_str()) {
                (Some(name), Some(_)) => Some(parse_file_name(name)),
                _ => None,
            }
        })
        .collect();
    for (f, parsed) in found.iter().zip(parsed) {
        grouping.add(f, parsed);
    }
    Ok(grouping.finish())
}

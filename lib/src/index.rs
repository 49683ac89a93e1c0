//! The index: which files make up which object, with its label and source.
//!
//! Building one scans directories (recursively), single files and glob patterns for `*_<band>.fits`, groups the
//! files into objects by id, and reports every problem instead of passing it silently. Reading one parses the CSV
//! that `lens-index` prints: `id,label,source,g,r,i,z,y`.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::naming::{parse_file_name, NameError, BANDS};

/// The index header, in this order.
pub const HEADER: [&str; 8] = ["id", "label", "source", "g", "r", "i", "z", "y"];

/// One object of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub id: String,
    pub label: Option<u8>,
    pub source: Option<u8>,
    /// One file per band, in [`BANDS`] order.
    pub paths: [PathBuf; 5],
}

/// Where a root's labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRule {
    /// From the file name (`D<s>_L_...` = 1, `D<s>_N_...` = 0, `object_...` = unknown).
    FromName,
    /// Every object under this root has this label (data sorted into lens/non-lens directories).
    Fixed(u8),
}

/// Something to scan: a directory, a file, or a glob pattern; and how to label what is found there.
#[derive(Debug, Clone)]
pub struct Root {
    pub spec: String,
    pub label: LabelRule,
}

/// The kinds of problem the indexer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// An object lacks one or more bands; it is left out of the index.
    MissingBand,
    /// A second file for an id and band already seen; the first (in path order) is kept.
    Duplicate,
    /// A `.fits` file whose name fits neither naming convention; ignored.
    BadName,
    /// The name's label letter disagrees with the root's `--label`; the root's label is used.
    LabelConflict,
    /// A directory or file that could not be read, or a path that is not UTF-8; skipped.
    Unreadable,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::MissingBand => "missing-band",
            ProblemKind::Duplicate => "duplicate",
            ProblemKind::BadName => "bad-name",
            ProblemKind::LabelConflict => "label-conflict",
            ProblemKind::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, with the path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The object id, when the name yielded one.
    pub id: String,
    pub path: PathBuf,
    pub detail: String,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub rows: Vec<IndexRow>,
    pub problems: Vec<Problem>,
    /// `.fits` files looked at.
    pub files: usize,
}

impl Scan {
    /// Problem counts by kind, in a fixed order.
    pub fn problem_counts(&self) -> Vec<(ProblemKind, usize)> {
        let mut counts: HashMap<ProblemKind, usize> = HashMap::new();
        for p in &self.problems {
            *counts.entry(p.kind).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort();
        v
    }
}

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
fn collect(roots: &[Root], problems: &mut Vec<Problem>) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for root in roots {
        let mut paths = Vec::new();
        let path = Path::new(&root.spec);
        if path.exists() {
            paths.push(path.to_path_buf());
        } else if is_glob(&root.spec) {
            for entry in glob::glob(&root.spec).with_context(|| format!("bad glob pattern {:?}", root.spec))? {
                match entry {
                    Ok(p) => paths.push(p),
                    Err(e) => problems.push(unreadable(e.path(), e.error())),
                }
            }
            if paths.is_empty() {
                bail!("glob pattern {:?} matches nothing", root.spec);
            }
        } else {
            bail!("{}: no such file or directory", root.spec);
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

/// Scans the roots and groups what it finds into objects. Deterministic: files are considered in path order, so
/// the same inputs give the same index and the same problems.
pub fn scan(roots: &[Root]) -> Result<Scan> {
    let mut problems = Vec::new();
    let mut found = collect(roots, &mut problems)?;
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

    let mut objects: HashMap<String, Object> = HashMap::new();
    let mut files = 0;
    for (f, parsed) in found.iter().zip(parsed) {
        let parsed = match parsed {
            None => {
                if f.path.extension().is_some_and(|e| e == "fits") {
                    problems.push(unreadable(&f.path, &"path is not valid UTF-8"));
                }
                continue;
            }
            Some(Err(NameError::NotFits)) => continue,
            Some(Err(e)) => {
                files += 1;
                problems.push(Problem {
                    kind: ProblemKind::BadName,
                    id: String::new(),
                    path: f.path.clone(),
                    detail: e.to_string(),
                });
                continue;
            }
            Some(Ok(p)) => p,
        };
        files += 1;
        let label = match (f.label, parsed.label) {
            (LabelRule::FromName, l) => l,
            (LabelRule::Fixed(fixed), Some(from_name)) if fixed != from_name => {
                problems.push(Problem {
                    kind: ProblemKind::LabelConflict,
                    id: parsed.id.clone(),
                    path: f.path.clone(),
                    detail: format!("name says label {from_name}, --label says {fixed}; using {fixed}"),
                });
                Some(fixed)
            }
            (LabelRule::Fixed(fixed), _) => Some(fixed),
        };
        let obj = objects.entry(parsed.id.clone()).or_insert_with(|| Object {
            label,
            source: parsed.source,
            paths: Default::default(),
        });
        if let Some(first) = &obj.paths[parsed.band] {
            problems.push(Problem {
                kind: ProblemKind::Duplicate,
                id: parsed.id,
                path: f.path.clone(),
                detail: format!("band {} already found at {}; keeping that one", BANDS[parsed.band], first.display()),
            });
            continue;
        }
        if obj.label != label {
            // Two bands of one object got different labels (they sit under roots with different --label).
            problems.push(Problem {
                kind: ProblemKind::LabelConflict,
                id: parsed.id.clone(),
                path: f.path.clone(),
                detail: format!(
                    "label {} here, {} for the object's other bands; keeping the first",
                    fmt_opt(label),
                    fmt_opt(obj.label)
                ),
            });
        }
        obj.paths[parsed.band] = Some(f.path.clone());
    }

    let mut rows = Vec::with_capacity(objects.len());
    for (id, obj) in objects {
        if obj.paths.iter().all(Option::is_some) {
            let paths = obj.paths.map(|p| p.expect("checked"));
            rows.push(IndexRow { id, label: obj.label, source: obj.source, paths });
        } else {
            let missing: String = (0..5).filter(|&b| obj.paths[b].is_none()).map(|b| BANDS[b]).collect();
            let present = obj.paths.iter().flatten().next().expect("an object has at least one file");
            problems.push(Problem {
                kind: ProblemKind::MissingBand,
                id: id.clone(),
                path: present.clone(),
                detail: format!("missing band(s) {missing}; object left out"),
            });
        }
    }
    rows.par_sort_unstable_by(|a, b| a.id.cmp(&b.id));
    problems.sort_by(|a, b| (a.kind, &a.id, &a.path).cmp(&(b.kind, &b.id, &b.path)));
    Ok(Scan { rows, problems, files })
}

fn fmt_opt(v: Option<u8>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn path_str(p: &Path) -> &str {
    // scan() only admits UTF-8 paths, and read_index() only produces them.
    p.to_str().expect("index paths are UTF-8")
}

/// Writes the index CSV.
pub fn write_index<W: Write>(rows: &[IndexRow], out: W) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for r in rows {
        let (label, source) = (fmt_opt(r.label), fmt_opt(r.source));
        let mut rec: Vec<&str> = vec![&r.id, &label, &source];
        rec.extend(r.paths.iter().map(|p| path_str(p)));
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes the problems CSV: `kind,id,path,detail`.
pub fn write_problems<W: Write>(problems: &[Problem], out: W) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["kind", "id", "path", "detail"])?;
    for p in problems {
        w.write_record([p.kind.as_str(), &p.id, &p.path.to_string_lossy(), &p.detail])?;
    }
    w.flush()?;
    Ok(())
}

fn parse_small(field: &str, what: &str, allowed: &[u8]) -> Result<Option<u8>> {
    if field.is_empty() {
        return Ok(None);
    }
    match field.parse::<u8>() {
        Ok(v) if allowed.contains(&v) => Ok(Some(v)),
        _ => bail!("{what} {field:?} is not one of {allowed:?} or empty"),
    }
}

/// Reads an index CSV; `name` is used in error messages (a path, or `<stdin>`). Errors give the line number.
pub fn read_index<R: Read>(input: R, name: &str) -> Result<Vec<IndexRow>> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let header = r.headers().with_context(|| format!("reading the header of {name}"))?.clone();
    if header.iter().collect::<Vec<_>>() != HEADER {
        bail!(
            "{name} is not an index: header is {:?}, expected {:?}",
            header.iter().collect::<Vec<_>>().join(","),
            HEADER.join(",")
        );
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{name}, line {line}"))?;
        let row = (|| -> Result<IndexRow> {
            if rec.len() != HEADER.len() {
                bail!("{} fields, expected {}", rec.len(), HEADER.len());
            }
            if rec[0].is_empty() {
                bail!("empty id");
            }
            let label = parse_small(&rec[1], "label", &[0, 1])?;
            let source = parse_small(&rec[2], "source", &[1, 2])?;
            let paths: [PathBuf; 5] = std::array::from_fn(|b| PathBuf::from(&rec[3 + b]));
            if let Some(b) = paths.iter().position(|p| p.as_os_str().is_empty()) {
                bail!("no path for band {}", BANDS[b]);
            }
            Ok(IndexRow { id: rec[0].to_string(), label, source, paths })
        })()
        .with_context(|| format!("{name}, line {line}"))?;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for n in names {
            fs::write(dir.join(n), b"").unwrap();
        }
    }

    fn all_bands(id: &str) -> Vec<String> {
        BANDS.iter().map(|b| format!("{id}_{b}.fits")).collect()
    }

    fn root(dir: &Path, label: LabelRule) -> Root {
        Root { spec: dir.to_str().unwrap().to_string(), label }
    }

    #[test]
    fn groups_sorts_and_reports() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let names: Vec<String> =
            ["D1_N_00000002", "D1_L_00000001", "object_000007"].iter().flat_map(|id| all_bands(id)).collect();
        touch(&a.join("deep/er"), &names.iter().map(String::as_str).collect::<Vec<_>>());
        // An incomplete object, a bad name, a non-FITS file, and a duplicate in another directory.
        touch(&a, &["D2_L_00000003_g.fits", "D2_L_00000003_r.fits", "junk_q.fits", "notes.txt"]);
        touch(&t.path().join("b"), &["D1_L_00000001_g.fits"]);

        let scan = scan(&[root(&a, LabelRule::FromName), root(&t.path().join("b"), LabelRule::FromName)]).unwrap();
        let ids: Vec<_> = scan.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["D1_L_00000001", "D1_N_00000002", "object_000007"]);
        assert_eq!((scan.rows[0].label, scan.rows[0].source), (Some(1), Some(1)));
        assert_eq!((scan.rows[1].label, scan.rows[1].source), (Some(0), Some(1)));
        assert_eq!((scan.rows[2].label, scan.rows[2].source), (None, None));
        assert!(scan.rows[0].paths[0].starts_with(&a), "first in path order is kept");
        assert_eq!(scan.files, 15 + 3 + 1);
        let kinds: Vec<_> = scan.problems.iter().map(|p| (p.kind, p.id.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ProblemKind::MissingBand, "D2_L_00000003"),
                (ProblemKind::Duplicate, "D1_L_00000001"),
                (ProblemKind::BadName, ""),
            ]
        );
        assert!(scan.problems[0].detail.contains("izy"));
    }

    #[test]
    fn label_override_and_conflicts() {
        let t = tempfile::tempdir().unwrap();
        let lenses = t.path().join("lenses");
        let names: Vec<String> = ["object_1", "D1_N_5"].iter().flat_map(|id| all_bands(id)).collect();
        touch(&lenses, &names.iter().map(String::as_str).collect::<Vec<_>>());
        let scan = scan(&[root(&lenses, LabelRule::Fixed(1))]).unwrap();
        assert_eq!(scan.rows.len(), 2);
        assert!(scan.rows.iter().all(|r| r.label == Some(1)));
        // D1_N_5 says 0 in each of its five files.
        assert_eq!(scan.problems.iter().filter(|p| p.kind == ProblemKind::LabelConflict).count(), 5);
    }

    #[test]
    fn globs_files_and_missing_roots() {
        let t = tempfile::tempdir().unwrap();
        let names = all_bands("D2_N_9");
        touch(t.path(), &names.iter().map(String::as_str).collect::<Vec<_>>());
        let pattern = format!("{}/D2_N_9_*.fits", t.path().display());
        let s = scan(&[Root { spec: pattern, label: LabelRule::FromName }]).unwrap();
        assert_eq!(s.rows.len(), 1);
        let one = t.path().join("D2_N_9_g.fits");
        let s = scan(&[root(&one, LabelRule::FromName)]).unwrap();
        assert_eq!(s.problems[0].kind, ProblemKind::MissingBand);
        assert!(scan(&[root(&t.path().join("nope"), LabelRule::FromName)]).is_err());
        let nothing = format!("{}/zzz*.fits", t.path().display());
        assert!(scan(&[Root { spec: nothing, label: LabelRule::FromName }]).is_err());
    }

    #[test]
    fn csv_round_trip_and_errors() {
        let rows = vec![IndexRow {
            id: "D1_L_1".into(),
            label: Some(1),
            source: Some(1),
            paths: std::array::from_fn(|b| PathBuf::from(format!("dir, with comma/D1_L_1_{}.fits", BANDS[b]))),
        }];
        let mut buf = Vec::new();
        write_index(&rows, &mut buf).unwrap();
        assert!(buf.starts_with(b"id,label,source,g,r,i,z,y\n"));
        assert_eq!(read_index(&buf[..], "x").unwrap(), rows);

        let bad = "id,label,source,g,r,i,z,y\na,1,1,p,p,p,p,p\nb,2,1,p,p,p,p,p\n";
        let err = format!("{:#}", read_index(bad.as_bytes(), "idx.csv").unwrap_err());
        assert!(err.contains("idx.csv, line 3") && err.contains("label \"2\""), "{err}");
        let err = format!("{:#}", read_index("id,label\n".as_bytes(), "idx.csv").unwrap_err());
        assert!(err.contains("not an index"), "{err}");
        let err = format!("{:#}", read_index("id,label,source,g,r,i,z,y\na,,,p,p,,p,p\n".as_bytes(), "i").unwrap_err());
        assert!(err.contains("line 2") && err.contains("band i"), "{err}");
    }
}

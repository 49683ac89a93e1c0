//! The index as CSV (`id,label,source,g,r,i,z,y`), and the problems list (`kind,id,path,detail`).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::{IndexError, IndexRow, Problem, RowError, HEADER};
use crate::naming::BANDS;
use lensfind_core::text::{csv_io_error, opt_u8};

fn path_str(p: &Path) -> &str {
    // scan() only admits UTF-8 paths, and read_index() only produces them.
    p.to_str().expect("index paths are UTF-8")
}

/// Writes the index CSV.
pub fn write_index<W: Write>(rows: &[IndexRow], out: W) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(csv_io_error)?;
    for r in rows {
        let (label, source) = (opt_u8(r.label), opt_u8(r.source));
        let mut rec: Vec<&str> = vec![&r.id, &label, &source];
        rec.extend(r.paths.iter().map(|p| path_str(p)));
        w.write_record(&rec).map_err(csv_io_error)?;
    }
    w.flush()
}

/// Writes the problems CSV: `kind,id,path,detail`.
pub fn write_problems<W: Write>(problems: &[Problem], out: W) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["kind", "id", "path", "detail"]).map_err(csv_io_error)?;
    for p in problems {
        w.write_record([p.kind.as_str(), &p.id, &p.path.to_string_lossy(), &p.detail]).map_err(csv_io_error)?;
    }
    w.flush()
}

fn parse_small(field: &str, what: &'static str, allowed: &'static [u8]) -> Result<Option<u8>, RowError> {
    if field.is_empty() {
        return Ok(None);
    }
    match field.parse::<u8>() {
        Ok(v) if allowed.contains(&v) => Ok(Some(v)),
        _ => Err(RowError::Value { what, field: field.to_string(), allowed }),
    }
}

fn parse_row(rec: &csv::StringRecord) -> Result<IndexRow, RowError> {
    if rec.len() != HEADER.len() {
        return Err(RowError::Fields { got: rec.len(), expected: HEADER.len() });
    }
    if rec[0].is_empty() {
        return Err(RowError::EmptyId);
    }
    let label = parse_small(&rec[1], "label", &[0, 1])?;
    let source = parse_small(&rec[2], "source", &[1, 2])?;
    let paths: [PathBuf; 5] = std::array::from_fn(|b| PathBuf::from(&rec[3 + b]));
    if let Some(b) = paths.iter().position(|p| p.as_os_str().is_empty()) {
        return Err(RowError::NoPath(BANDS[b]));
    }
    Ok(IndexRow { id: rec[0].to_string(), label, source, paths })
}

/// Reads an index CSV; `name` is used in error messages (a path, or `<stdin>`). Errors give the line number.
pub fn read_index<R: Read>(input: R, name: &str) -> Result<Vec<IndexRow>, IndexError> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let header = r.headers().map_err(|source| IndexError::Header { name: name.to_string(), source })?.clone();
    if header.iter().collect::<Vec<_>>() != HEADER {
        return Err(IndexError::NotAnIndex {
            name: name.to_string(),
            header: header.iter().collect::<Vec<_>>().join(","),
            expected: HEADER.join(","),
        });
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let row = rec.map_err(RowError::from).and_then(|rec| parse_row(&rec));
        rows.push(row.map_err(|source| IndexError::Row { name: name.to_string(), line, source })?);
    }
    Ok(rows)
}

/// Reads the index at `path`, or stdin for `None` or `-`; returns its rows and its name for messages (the path,
/// or `<stdin>`).
pub fn read_index_input(path: Option<&Path>) -> Result<(Vec<IndexRow>, String), IndexError> {
    match path.filter(|p| *p != Path::new("-")) {
        None => Ok((read_index(std::io::stdin().lock(), "<stdin>")?, "<stdin>".to_string())),
        Some(p) => {
            let f = File::open(p).map_err(|source| IndexError::Open { path: p.to_path_buf(), source })?;
            let name = p.display().to_string();
            Ok((read_index(BufReader::new(f), &name)?, name))
        }
    }
}

//! Reading per-object scores (lens-infer's `id,logit[,...]`, a submission's `id,pred`) and truth tables, with
//! errors that name the file and line.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Scores of one file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The name of the score column that was read (`logit` or `pred`).
    pub column: String,
    pub ids: Vec<String>,
    pub values: Vec<f64>,
}

/// Reads `path` (CSV with a header holding `id` and the first of `columns` present). A malformed row, a
/// duplicated id or a non-finite value is an error naming the file and line.
pub fn read_scores(path: &Path, columns: &[&str]) -> Result<Scores> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_scores_from(std::io::BufReader::new(file), path, columns)
}

/// [`read_scores`] from any reader; `path` names the input in errors.
pub fn read_scores_from<R: Read>(input: R, path: &Path, columns: &[&str]) -> Result<Scores> {
    let mut r = csv::Reader::from_reader(input);
    let header = r.headers().with_context(|| format!("reading the header of {}", path.display()))?.clone();
    let id_col = header.iter().position(|h| h == "id").with_context(|| format!("{}: no id column", path.display()))?;
    let (col, name) = columns
        .iter()
        .find_map(|c| header.iter().position(|h| h == *c).map(|i| (i, c.to_string())))
        .with_context(|| {
            format!(
                "{}: no {} column (header: {})",
                path.display(),
                columns.join(" or "),
                header.iter().collect::<Vec<_>>().join(",")
            )
        })?;
    let mut out = Scores { column: name, ids: Vec::new(), values: Vec::new() };
    let mut seen = HashSet::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}, line {line}: malformed row", path.display()))?;
        let (id, value) = (rec.get(id_col).unwrap_or(""), rec.get(col).unwrap_or(""));
        if id.is_empty() {
            bail!("{}, line {line}: empty id", path.display());
        }
        let v: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("{}, line {line}: {value:?} is not a number", path.display()))?;
        if !v.is_finite() {
            bail!("{}, line {line}: {} of {id} is {v}", path.display(), out.column);
        }
        if !seen.insert(id.to_string()) {
            bail!("{}, line {line}: id {id} appears twice", path.display());
        }
        out.ids.push(id.to_string());
        out.values.push(v);
    }
    Ok(out)
}

/// One labelled object.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub id: String,
    pub label: u8,
    pub source: Option<u8>,
}

/// Reads labels from a pack directory (its meta.csv), or a CSV with `id,label` and optionally `source` columns
/// (lens-synth's labels.csv, an index). Unlabelled rows are skipped.
pub fn read_truth(path: &Path) -> Result<Vec<Truth>> {
    let csv_path = if path.join("pack.json").exists() { path.join("meta.csv") } else { path.to_path_buf() };
    let file = std::fs::File::open(&csv_path).with_context(|| format!("opening {}", csv_path.display()))?;
    read_truth_from(std::io::BufReader::new(file), &csv_path)
}

/// [`read_truth`] of a CSV from any reader; `csv_path` names the input in errors.
pub fn read_truth_from<R: Read>(input: R, csv_path: &Path) -> Result<Vec<Truth>> {
    let mut r = csv::Reader::from_reader(input);
    let header = r.headers().with_context(|| format!("reading the header of {}", csv_path.display()))?.clone();
    let find = |name: &str| header.iter().position(|h| h == name);
    let (Some(id_col), Some(label_col)) = (find("id"), find("label")) else {
        bail!("{}: needs id and label columns", csv_path.display());
    };
    let source_col = find("source");
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}, line {line}", csv_path.display()))?;
        let label = match rec.get(label_col).unwrap_or("") {
            "" => continue,
            "0" => 0,
            "1" => 1,
            other => bail!("{}, line {line}: label {other:?} is not 0 or 1", csv_path.display()),
        };
        let source = match source_col.and_then(|c| rec.get(c)).unwrap_or("") {
            "" => None,
            s => Some(
                s.parse::<u8>().with_context(|| format!("{}, line {line}: bad source {s:?}", csv_path.display()))?,
            ),
        };
        let id = rec.get(id_col).unwrap_or("").to_string();
        if !seen.insert(id.clone()) {
            bail!("{}, line {line}: id {id} appears twice", csv_path.display());
        }
        out.push(Truth { id, label, source });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn scores_and_their_errors() {
        let f = file("id,logit,logit_orig\na,1.5,1\nb,-2,0\n");
        let s = read_scores(f.path(), &["logit", "pred"]).unwrap();
        assert_eq!(
            (s.column.as_str(), s.ids.clone(), s.values.clone()),
            ("logit", vec!["a".into(), "b".into()], vec![1.5, -2.0])
        );
        for (text, want) in [
            ("id,logit\na,1\na,2\n", "line 3: id a appears twice"),
            ("id,logit\na,NaN\n", "line 2: logit of a is NaN"),
            ("id,logit\na,x\n", "line 2: \"x\" is not a number"),
            ("id,logit\na,1,2\n", "line 2: malformed row"),
            ("id,score\na,1\n", "no logit or pred column"),
        ] {
            let f = file(text);
            let err = format!("{:#}", read_scores(f.path(), &["logit", "pred"]).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn truth_from_labels_csv() {
        let f = file("id,label,source\na,1,1\nb,0,\nc,,2\n");
        let t = read_truth(f.path()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], Truth { id: "b".into(), label: 0, source: None });
    }
}

//! Reading per-object scores (lens-infer's `id,logit[,...]`, a submission's `id,pred`) and truth tables, with
//! errors that name the file and line, and pairing the two for evaluation.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use lensfind_core::text::first_ids;
use serde::{Deserialize, Serialize};

/// The score columns of the files the tools exchange, and what their values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreColumn {
    /// `logit`: a model's log-odds (lens-infer's output, val_predictions.csv, the ensembles' validation scores).
    Logit,
    /// `pred`: a probability (lens-ensemble's submission).
    Pred,
    /// `preds`: the challenge submission's 1/0 decisions.
    Preds,
}

impl ScoreColumn {
    /// The column's name in a CSV header.
    pub fn name(self) -> &'static str {
        match self {
            ScoreColumn::Logit => "logit",
            ScoreColumn::Pred => "pred",
            ScoreColumn::Preds => "preds",
        }
    }
}

impl std::fmt::Display for ScoreColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a scores or truth file could not be read, or scores and truth not paired.
#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("opening {}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("reading the header of {}", path.display())]
    Header { path: PathBuf, source: csv::Error },
    #[error("{}: no id column", path.display())]
    NoId { path: PathBuf },
    #[error("{}: no {wanted} column (header: {header})", path.display())]
    NoColumn { path: PathBuf, wanted: String, header: String },
    #[error("{}: needs id and label columns", path.display())]
    NoLabel { path: PathBuf },
    #[error("{}, line {line}: malformed row", path.display())]
    Malformed { path: PathBuf, line: usize, source: csv::Error },
    /// A truth row the CSV reader rejects.
    #[error("{}, line {line}", path.display())]
    Row { path: PathBuf, line: usize, source: csv::Error },
    #[error("{}, line {line}: empty id", path.display())]
    EmptyId { path: PathBuf, line: usize },
    #[error("{}, line {line}: {value:?} is not a number", path.display())]
    NotANumber { path: PathBuf, line: usize, value: String, source: std::num::ParseFloatError },
    #[error("{}, line {line}: {column} of {id} is {value}", path.display())]
    NotFinite { path: PathBuf, line: usize, column: ScoreColumn, id: String, value: f64 },
    #[error("{}, line {line}: id {id} appears twice", path.display())]
    Duplicate { path: PathBuf, line: usize, id: String },
    #[error("{}, line {line}: label {label:?} is not 0 or 1", path.display())]
    Label { path: PathBuf, line: usize, label: String },
    #[error("{}, line {line}: bad source {source_text:?}", path.display())]
    Source { path: PathBuf, line: usize, source_text: String, source: std::num::ParseIntError },
    #[error(
        "{} id(s) have no {what} in {}: {}",
        ids.len(), path.display(), first_ids(ids)
    )]
    Missing { what: &'static str, path: PathBuf, ids: Vec<String> },
    #[error("no id of {} has a label in {}", pred.display(), truth.display())]
    NothingInCommon { pred: PathBuf, truth: PathBuf },
}

/// Scores of one file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The score column that was read.
    pub column: ScoreColumn,
    pub ids: Vec<String>,
    pub values: Vec<f64>,
}

/// Reads `path` (CSV with a header holding `id` and the first of `columns` present). A malformed row, a
/// duplicated id or a non-finite value is an error naming the file and line.
pub fn read_scores(path: &Path, columns: &[ScoreColumn]) -> Result<Scores, ScoresError> {
    let file = std::fs::File::open(path).map_err(|source| ScoresError::Open { path: path.into(), source })?;
    read_scores_from(std::io::BufReader::new(file), path, columns)
}

/// [`read_scores`] from any reader; `path` names the input in errors.
pub fn read_scores_from<R: Read>(input: R, path: &Path, columns: &[ScoreColumn]) -> Result<Scores, ScoresError> {
    let mut r = csv::Reader::from_reader(input);
    let header = r.headers().map_err(|source| ScoresError::Header { path: path.into(), source })?.clone();
    let id_col = header.iter().position(|h| h == "id").ok_or_else(|| ScoresError::NoId { path: path.into() })?;
    let (col, name) = columns
        .iter()
        .find_map(|&c| header.iter().position(|h| h == c.name()).map(|i| (i, c)))
        .ok_or_else(|| ScoresError::NoColumn {
            path: path.into(),
            wanted: columns.iter().map(|c| c.name()).collect::<Vec<_>>().join(" or "),
            header: header.iter().collect::<Vec<_>>().join(","),
        })?;
    let mut out = Scores { column: name, ids: Vec::new(), values: Vec::new() };
    let mut seen = HashSet::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|source| ScoresError::Malformed { path: path.into(), line, source })?;
        let (id, value) = (rec.get(id_col).unwrap_or(""), rec.get(col).unwrap_or(""));
        if id.is_empty() {
            return Err(ScoresError::EmptyId { path: path.into(), line });
        }
        let v: f64 = value.trim().parse().map_err(|source| ScoresError::NotANumber {
            path: path.into(),
            line,
            value: value.to_string(),
            source,
        })?;
        if !v.is_finite() {
            let (column, id) = (out.column, id.to_string());
            return Err(ScoresError::NotFinite { path: path.into(), line, column, id, value: v });
        }
        if !seen.insert(id.to_string()) {
            return Err(ScoresError::Duplicate { path: path.into(), line, id: id.to_string() });
        }
        out.ids.push(id.to_string());
        out.values.push(v);
    }
    Ok(out)
}

/// Whether the CSV file at `path` has a column `name` in its header.
pub(crate) fn has_column(path: &Path, name: &str) -> Result<bool, ScoresError> {
    let file = std::fs::File::open(path).map_err(|source| ScoresError::Open { path: path.into(), source })?;
    let mut r = csv::Reader::from_reader(std::io::BufReader::new(file));
    let header = r.headers().map_err(|source| ScoresError::Header { path: path.into(), source })?;
    Ok(header.iter().any(|h| h == name))
}

/// One labelled object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Truth {
    pub id: String,
    pub label: u8,
    pub source: Option<u8>,
}

/// Reads labels from a pack directory (its meta.csv), or a CSV with `id,label` and optionally `source` columns
/// (lens-synth's labels.csv, an index). Unlabelled rows are skipped.
pub(crate) fn read_truth(path: &Path) -> Result<Vec<Truth>, ScoresError> {
    // A pack's manifest and meta table (lensfind_data::pack::PackDir's names; this crate reads no packs otherwise).
    let csv_path = if path.join("pack.json").exists() { path.join("meta.csv") } else { path.to_path_buf() };
    let file = std::fs::File::open(&csv_path).map_err(|source| ScoresError::Open { path: csv_path.clone(), source })?;
    read_truth_from(std::io::BufReader::new(file), &csv_path)
}

/// [`read_truth`] of a CSV from any reader; `csv_path` names the input in errors.
pub(crate) fn read_truth_from<R: Read>(input: R, csv_path: &Path) -> Result<Vec<Truth>, ScoresError> {
    let path = || csv_path.to_path_buf();
    let mut r = csv::Reader::from_reader(input);
    let header = r.headers().map_err(|source| ScoresError::Header { path: path(), source })?.clone();
    let find = |name: &str| header.iter().position(|h| h == name);
    let (Some(id_col), Some(label_col)) = (find("id"), find("label")) else {
        return Err(ScoresError::NoLabel { path: path() });
    };
    let source_col = find("source");
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|source| ScoresError::Row { path: path(), line, source })?;
        let label = match rec.get(label_col).unwrap_or("") {
            "" => continue,
            "0" => 0,
            "1" => 1,
            other => return Err(ScoresError::Label { path: path(), line, label: other.to_string() }),
        };
        let source = match source_col.and_then(|c| rec.get(c)).unwrap_or("") {
            "" => None,
            s => Some(s.parse::<u8>().map_err(|source| ScoresError::Source {
                path: path(),
                line,
                source_text: s.to_string(),
                source,
            })?),
        };
        let id = rec.get(id_col).unwrap_or("").to_string();
        if !seen.insert(id.clone()) {
            return Err(ScoresError::Duplicate { path: path(), line, id });
        }
        out.push(Truth { id, label, source });
    }
    Ok(out)
}

/// Scores paired with the truth by id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Joined {
    /// Score, label and source of each scored id that has a label, in the order of the scores.
    pub scores: Vec<f64>,
    pub labels: Vec<u8>,
    pub sources: Vec<Option<u8>>,
    /// Scored ids without a label, in the order of the scores.
    pub missing_labels: Vec<String>,
    /// Labelled ids without a score, in the order of the truth.
    pub missing_scores: Vec<String>,
}

impl Joined {
    /// Pairs `pred` with `truth` by id.
    pub(crate) fn new(pred: &Scores, truth: &[Truth]) -> Joined {
        let labels: HashMap<&str, (u8, Option<u8>)> =
            truth.iter().map(|t| (t.id.as_str(), (t.label, t.source))).collect();
        let scored: HashSet<&str> = pred.ids.iter().map(String::as_str).collect();
        let mut out = Joined {
            scores: Vec::new(),
            labels: Vec::new(),
            sources: Vec::new(),
            missing_labels: Vec::new(),
            missing_scores: truth.iter().filter(|t| !scored.contains(t.id.as_str())).map(|t| t.id.clone()).collect(),
        };
        for (id, &score) in pred.ids.iter().zip(&pred.values) {
            match labels.get(id.as_str()) {
                Some(&(label, source)) => {
                    out.scores.push(score);
                    out.labels.push(label);
                    out.sources.push(source);
                }
                None => out.missing_labels.push(id.clone()),
            }
        }
        out
    }

    /// Fails unless every scored id has a label (in `truth`) and every labelled id a score (in `pred`), naming the
    /// first ids that do not; then unless some id is in both.
    pub(crate) fn check(&self, pred: &Path, truth: &Path, allow_missing: bool) -> Result<(), ScoresError> {
        if !allow_missing {
            for (what, ids, path) in [("label", &self.missing_labels, truth), ("score", &self.missing_scores, pred)] {
                if !ids.is_empty() {
                    return Err(ScoresError::Missing { what, path: path.into(), ids: ids.clone() });
                }
            }
        }
        if self.scores.is_empty() {
            return Err(ScoresError::NothingInCommon { pred: pred.into(), truth: truth.into() });
        }
        Ok(())
    }
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
        let s = read_scores(f.path(), &[ScoreColumn::Logit, ScoreColumn::Pred]).unwrap();
        assert_eq!(
            (s.column.name(), s.ids.clone(), s.values.clone()),
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
            let err = lensfind_core::error_chain(
                &read_scores(f.path(), &[ScoreColumn::Logit, ScoreColumn::Pred]).unwrap_err(),
            );
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn score_columns_are_named_in_json_as_in_the_files() {
        for c in [ScoreColumn::Logit, ScoreColumn::Pred, ScoreColumn::Preds] {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.name()));
            assert_eq!(serde_json::from_str::<ScoreColumn>(&format!("\"{c}\"")).unwrap(), c);
        }
        assert!(serde_json::from_str::<ScoreColumn>("\"score\"").is_err(), "no other column");
    }

    #[test]
    fn truth_from_labels_csv() {
        let f = file("id,label,source\na,1,1\nb,0,\nc,,2\n");
        let t = read_truth(f.path()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], Truth { id: "b".into(), label: 0, source: None });
    }

    #[test]
    fn scores_join_truth_by_id() {
        let pred = Scores {
            column: ScoreColumn::Pred,
            ids: vec!["z".into(), "a".into(), "b".into()],
            values: vec![0.1, 0.9, 0.2],
        };
        let truth = [
            Truth { id: "b".into(), label: 0, source: None },
            Truth { id: "c".into(), label: 1, source: Some(1) },
            Truth { id: "a".into(), label: 1, source: Some(2) },
        ];
        let j = Joined::new(&pred, &truth);
        assert_eq!(
            (j.scores.clone(), j.labels.clone(), j.sources.clone()),
            (vec![0.9, 0.2], vec![1, 0], vec![Some(2), None])
        );
        assert_eq!(
            (j.missing_labels.clone(), j.missing_scores.clone()),
            (vec!["z".to_string()], vec!["c".to_string()])
        );
        let (p, t) = (Path::new("p.csv"), Path::new("t.csv"));
        let err = j.check(p, t, false).unwrap_err().to_string();
        assert_eq!(err, "1 id(s) have no label in t.csv: z");
        j.check(p, t, true).unwrap();
        let none = Joined::new(&pred, &truth[1..2]);
        assert_eq!(none.check(p, t, true).unwrap_err().to_string(), "no id of p.csv has a label in t.csv");
    }
}

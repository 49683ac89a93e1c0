//! Choosing the pack rows to look at (lens-view): ids named on the command line or in a file, a seeded random
//! sample (of one class or all), or the top N by score.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use lensfind_core::rng::Rng;
use lensfind_core::text::first_ids;
use lensfind_data::pack::Pack;
use lensfind_eval::scores::{read_scores, read_scores_from, ScoreColumn, Scores, ScoresError};

/// Why no rows were chosen.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Scores(#[from] ScoresError),
    #[error("{}: no scores (only a header, or empty)", path.display())]
    NoScores { path: PathBuf },
    #[error("reading ids from stdin")]
    Stdin(#[source] std::io::Error),
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}, line {line}: malformed row", path.display())]
    Malformed { path: PathBuf, line: usize, source: csv::Error },
    #[error("{}: no ids", path.display())]
    NoIds { path: PathBuf },
    #[error("the list of ids names none")]
    NoIdsGiven,
    #[error("{} id(s) of {what} are not in {}: {}", ids.len(), pack.display(), first_ids(ids))]
    NotInPack { what: String, pack: PathBuf, ids: Vec<String> },
    #[error("{} holds no{} to sample", pack.display(), class_name(*label))]
    NothingToSample { pack: PathBuf, label: Option<u8> },
    #[error("nothing to show: give scores (for the top N by score), ids or a sample to draw")]
    NoScoresForTop,
}

/// Reads scores (`pred` or `logit`) from `path`, `-` for stdin; a file without scores is an error.
pub fn load_scores(path: &Path) -> Result<Scores, SelectError> {
    let columns = [ScoreColumn::Pred, ScoreColumn::Logit];
    let scores = if path == Path::new("-") {
        read_scores_from(std::io::stdin().lock(), Path::new("<stdin>"), &columns)?
    } else {
        read_scores(path, &columns)?
    };
    if scores.ids.is_empty() {
        return Err(SelectError::NoScores { path: path.into() });
    }
    Ok(scores)
}

/// Ids from a file (`-` for stdin): the `id` column of a CSV whose header has one, else the first field of every
/// non-empty line.
fn read_ids(path: &Path) -> Result<Vec<String>, SelectError> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map_err(SelectError::Stdin)?;
    } else {
        text = std::fs::read_to_string(path).map_err(|source| SelectError::Read { path: path.into(), source })?;
    }
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty()).peekable();
    let header: Vec<&str> = lines.peek().map(|l| l.split(',').map(str::trim).collect()).unwrap_or_default();
    let ids: Vec<String> = match header.iter().position(|h| *h == "id") {
        Some(col) => {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let mut ids = Vec::new();
            for (i, rec) in r.records().enumerate() {
                let rec = rec.map_err(|source| SelectError::Malformed { path: path.into(), line: i + 2, source })?;
                ids.push(rec.get(col).unwrap_or("").to_string());
            }
            ids
        }
        None => lines.map(|l| l.split(',').next().unwrap_or("").trim().to_string()).collect(),
    };
    if ids.is_empty() {
        return Err(SelectError::NoIds { path: path.into() });
    }
    Ok(ids)
}

/// " lenses", " non-lenses" or " objects": the class a sample is drawn from, for messages.
pub fn class_name(label: Option<u8>) -> &'static str {
    match label {
        Some(1) => " lenses",
        Some(_) => " non-lenses",
        None => " objects",
    }
}

/// `n` distinct items of `pool` drawn with the seed (a partial Fisher-Yates shuffle), returned sorted.
fn sample(mut pool: Vec<usize>, n: usize, seed: u64) -> Vec<usize> {
    let n = n.min(pool.len());
    let mut rng = Rng::new(seed, 0);
    for i in 0..n {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool.sort_unstable();
    pool
}

/// Which objects to show.
#[derive(Debug, Clone, Copy)]
pub enum Choice<'a> {
    /// These ids, in this order (blank ones ignored).
    Ids(&'a [String]),
    /// The ids of this file, in its order.
    IdsFile(&'a Path),
    /// `n` objects drawn with `seed`, of class `label` (or any), in pack order; fewer when the pack holds fewer.
    Sample { n: usize, label: Option<u8>, seed: u64 },
    /// The `n` highest scores, best first (ties by id); `file` names the scores in messages.
    Top { n: usize, scores: Option<&'a Scores>, file: &'a Path },
}

/// The chosen pack rows, in order, and a description of the choice for the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub rows: Vec<usize>,
    pub what: String,
}

/// The rows of `pack` that `choice` names. An id the pack does not hold is an error naming it.
pub fn select(pack: &Pack, choice: Choice<'_>) -> Result<Selection, SelectError> {
    let row_of: HashMap<&str, usize> = pack.meta.iter().map(|m| (m.id.as_str(), m.row)).collect();
    let rows_of = |ids: &[String], what: &str| -> Result<Vec<usize>, SelectError> {
        let missing: Vec<String> = ids.iter().filter(|id| !row_of.contains_key(id.as_str())).cloned().collect();
        if !missing.is_empty() {
            return Err(SelectError::NotInPack { what: what.to_string(), pack: pack.dir.clone(), ids: missing });
        }
        Ok(ids.iter().map(|id| row_of[id.as_str()]).collect())
    };
    match choice {
        Choice::Ids(ids) => {
            let ids: Vec<String> = ids.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if ids.is_empty() {
                return Err(SelectError::NoIdsGiven);
            }
            Ok(Selection { rows: rows_of(&ids, "the ids given")?, what: "the ids given".into() })
        }
        Choice::IdsFile(file) => {
            let what = format!("the ids of {}", file.display());
            Ok(Selection { rows: rows_of(&read_ids(file)?, &what)?, what })
        }
        Choice::Sample { n, label, seed } => {
            let pool: Vec<usize> =
                pack.meta.iter().filter(|m| label.is_none() || m.label == label).map(|m| m.row).collect();
            if pool.is_empty() {
                return Err(SelectError::NothingToSample { pack: pack.dir.clone(), label });
            }
            let what = format!("a sample of{} (seed {seed})", class_name(label));
            Ok(Selection { rows: sample(pool, n, seed), what })
        }
        Choice::Top { n, scores, file } => {
            let scores = scores.ok_or(SelectError::NoScoresForTop)?;
            let mut order: Vec<usize> = (0..scores.ids.len()).collect();
            order.sort_by(|&a, &b| {
                scores.values[b].total_cmp(&scores.values[a]).then_with(|| scores.ids[a].cmp(&scores.ids[b]))
            });
            let top: Vec<String> = order.into_iter().take(n).map(|k| scores.ids[k].clone()).collect();
            let what = format!("the top {} by {} of {}", top.len(), scores.column, file.display());
            Ok(Selection { rows: rows_of(&top, &format!("the top {n} of {}", file.display()))?, what })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_seeded_distinct_and_sorted() {
        let pool: Vec<usize> = (0..100).collect();
        let a = sample(pool.clone(), 10, 3);
        assert_eq!(a, sample(pool.clone(), 10, 3));
        assert_ne!(a, sample(pool.clone(), 10, 4));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample(pool, 1000, 0).len(), 100);
    }

    #[test]
    fn ids_from_csv_or_lines() {
        let t = tempfile_path("id,pred\nb,0.5\na,0.9\n");
        assert_eq!(read_ids(&t).unwrap(), ["b", "a"]);
        let t = tempfile_path("x1\n\nx2,whatever\n");
        assert_eq!(read_ids(&t).unwrap(), ["x1", "x2"]);
        let t = tempfile_path("\n");
        assert!(lensfind_core::error_chain(&read_ids(&t).unwrap_err()).contains("no ids"));
    }

    fn tempfile_path(text: &str) -> tempfile::TempPath {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f.into_temp_path()
    }
}

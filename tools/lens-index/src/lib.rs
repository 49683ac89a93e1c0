//! lens-index's command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use lensfind_core::output::write_whole;
use lensfind_data::index::{scan, write_index, write_problems, LabelRule, Root};

/// Scan challenge FITS files and print the index of objects: id, label, source and one file per band.
///
/// Each ROOT is a directory (scanned recursively), a single file, or a glob pattern (quote it). Files named
/// D<source>_<L|N>_<digits>_<band>.fits are training objects: source 1 = SLSim/DP0, 2 = HSC; L = lens (label 1),
/// N = non-lens (label 0). Files named object_<digits>_<band>.fits are blind test objects, with empty label and
/// source. Bands are g, r, i, z, y; the id is the name without _<band>.fits. Other files are ignored.
///
/// The index goes to stdout (or --output) as CSV with the header id,label,source,g,r,i,z,y, sorted by id, so the
/// same inputs always give the same bytes.
///
/// Problems never pass silently. Each is printed on stderr with its path, counted in a summary at the end, and with
/// --problems written as CSV (kind,id,path,detail). The kinds:
///
/// missing-band: an object lacks a band; it is left out of the index.
///
/// duplicate: a second file for an id and band; the first in path order is kept.
///
/// bad-name: a .fits file that fits neither naming convention; ignored.
///
/// label-conflict: the name's L/N disagrees with --label; the --label value is used.
///
/// unreadable: a directory that cannot be listed, or a path that is not UTF-8; skipped.
///
/// --label applies to the roots that follow it, until the next --label, the way tar's -C does, e.g.
/// `lens-index --label 1 data/lenses --label 0 data/nonlenses > index.csv`.
///
/// Exit status: 0 on success (even with problems, unless --max-problems is exceeded), 2 on error.
#[derive(Debug, Parser)]
#[command(name = "lens-index", version, max_term_width = 110)]
pub struct Args {
    /// Directories, files or glob patterns to scan.
    #[arg(value_name = "ROOT", required = true)]
    pub roots: Vec<String>,

    /// Label for the objects under the roots that follow: 1 (lens), 0 (non-lens), or "name" to take it from the
    /// file name again (the default).
    #[arg(long, value_name = "1|0|name", action = clap::ArgAction::Append)]
    pub label: Vec<String>,

    /// Write the index to FILE (whole or not at all) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write every problem to FILE as CSV (kind,id,path,detail).
    #[arg(long, value_name = "FILE")]
    pub problems: Option<PathBuf>,

    /// Fail (exit 2, no index written) when there are more than N problems.
    #[arg(long, value_name = "N")]
    pub max_problems: Option<usize>,

    /// Print only the summary, not each problem.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn label_rule(value: &str) -> Result<LabelRule> {
    Ok(match value {
        "1" => LabelRule::Fixed(1),
        "0" => LabelRule::Fixed(0),
        "name" => LabelRule::FromName,
        other => bail!("--label {other:?}: expected 1, 0 or name"),
    })
}

/// Pairs each root with the last --label given before it on the command line.
pub fn roots_from_matches(matches: &ArgMatches) -> Result<Vec<Root>> {
    let roots: Vec<(usize, String)> = matches
        .indices_of("roots")
        .into_iter()
        .flatten()
        .zip(matches.get_many::<String>("roots").into_iter().flatten().cloned())
        .collect();
    let labels: Vec<(usize, &String)> = matches
        .indices_of("label")
        .into_iter()
        .flatten()
        .zip(matches.get_many::<String>("label").into_iter().flatten())
        .collect();
    roots
        .into_iter()
        .map(|(pos, spec)| {
            let label = match labels.iter().rev().find(|(lpos, _)| *lpos < pos) {
                Some((_, v)) => label_rule(v)?,
                None => LabelRule::FromName,
            };
            Ok(Root { spec, label })
        })
        .collect()
}

/// Parses the process arguments (exits with clap's message on a usage error).
pub fn parse() -> (Args, Result<Vec<Root>>) {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let roots = roots_from_matches(&matches);
    (args, roots)
}

pub fn run(args: Args, roots: Result<Vec<Root>>) -> Result<ExitCode> {
    for l in &args.label {
        label_rule(l)?;
    }
    let roots = roots?;
    let scan = scan(&roots)?;
    if !args.quiet {
        let mut err = std::io::stderr().lock();
        for p in &scan.problems {
            let id = if p.id.is_empty() { String::new() } else { format!(" {}", p.id) };
            writeln!(err, "lens-index: {}{id}: {} ({})", p.kind, p.detail, p.path.display())?;
        }
    }
    if let Some(path) = &args.problems {
        write_whole(Some(path), |w| Ok(write_problems(&scan.problems, w)?))?;
    }
    let counts = scan.problem_counts();
    let summary = if counts.is_empty() {
        "no problems".to_string()
    } else {
        counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
    };
    let labelled = scan.rows.iter().filter(|r| r.label == Some(1)).count();
    eprintln!("lens-index: {} objects ({labelled} lenses) from {} .fits files; {summary}", scan.rows.len(), scan.files);
    if let Some(max) = args.max_problems {
        if scan.problems.len() > max {
            bail!("{} problems, more than --max-problems {max}; no index written", scan.problems.len());
        }
    }
    write_whole(args.output.as_deref(), |w| Ok(write_index(&scan.rows, w)?))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_applies_to_following_roots() {
        let m = Args::command()
            .try_get_matches_from([
                "lens-index",
                "a",
                "--label",
                "1",
                "b",
                "c",
                "--label",
                "name",
                "d",
                "--label",
                "0",
                "e",
            ])
            .unwrap();
        let roots = roots_from_matches(&m).unwrap();
        let got: Vec<_> = roots.iter().map(|r| (r.spec.as_str(), r.label)).collect();
        assert_eq!(
            got,
            [
                ("a", LabelRule::FromName),
                ("b", LabelRule::Fixed(1)),
                ("c", LabelRule::Fixed(1)),
                ("d", LabelRule::FromName),
                ("e", LabelRule::Fixed(0)),
            ]
        );
        let m = Args::command().try_get_matches_from(["lens-index", "--label", "yes", "a"]).unwrap();
        assert!(roots_from_matches(&m).is_err());
    }
}

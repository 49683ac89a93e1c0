//! lens-ensemble's command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use lensfind::output::write_output;
use lensfind::scores::read_scores;

/// Average the logits of several models into a submission: id,pred with pred = sigmoid(mean logit), six decimals.
///
/// Each MODEL is one model's logits as lens-infer writes them (id,logit[,...]): a file, or a quoted glob pattern
/// whose files are that model's shards (`'tiny.shard*.csv'`, ids must not repeat across shards). The files are
/// joined on id and the logits averaged (weighted with --weights), which is how the reference ensembles.
///
/// Every model must score the same ids: a different id set is an error naming ids, unless --allow-missing, which
/// averages over the models that do score an id. A malformed row, a duplicated id or a non-finite logit is an
/// error naming the file and line. Output rows are sorted by id.
#[derive(Debug, Parser)]
#[command(name = "lens-ensemble", version, max_term_width = 110)]
pub struct Args {
    /// Logits files (or quoted glob patterns of shards), one per model.
    #[arg(value_name = "MODEL", required = true)]
    pub models: Vec<String>,

    /// One weight per model, comma-separated (default: equal).
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,

    /// Add a column label = 1 if pred >= T, else 0, for challenge-style binary submissions.
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,

    /// Average over the models that score an id instead of failing when id sets differ.
    #[arg(long)]
    pub allow_missing: bool,

    /// Write to FILE (whole or not at all) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The files of one model: the path itself, or what the glob pattern matches.
fn model_files(spec: &str) -> Result<Vec<PathBuf>> {
    let path = PathBuf::from(spec);
    if path.exists() {
        return Ok(vec![path]);
    }
    let mut files: Vec<PathBuf> = glob::glob(spec)
        .with_context(|| format!("bad glob pattern {spec:?}"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("expanding {spec:?}"))?;
    if files.is_empty() {
        bail!("{spec}: no such file, and no file matches it as a pattern");
    }
    files.sort();
    Ok(files)
}

/// One model's logits by id, its shards joined.
fn read_model(spec: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for f in model_files(spec)? {
        let s = read_scores(&f, &["logit"])?;
        for (id, v) in s.ids.into_iter().zip(s.values) {
            if out.insert(id.clone(), v).is_some() {
                bail!("id {id} is in more than one shard of {spec} (again in {})", f.display());
            }
        }
    }
    Ok(out)
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let weights = match &args.weights {
        Some(w) if w.len() != args.models.len() => {
            bail!("{} weights for {} models", w.len(), args.models.len())
        }
        Some(w) if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 => {
            bail!("weights must be non-negative numbers, not all zero")
        }
        Some(w) => w.clone(),
        None => vec![1.0; args.models.len()],
    };
    let models: Vec<BTreeMap<String, f64>> = args.models.iter().map(|m| read_model(m)).collect::<Result<_>>()?;
    let mut all: BTreeMap<&str, (f64, f64)> = BTreeMap::new(); // id -> (weighted sum, weight)
    for (m, w) in models.iter().zip(&weights) {
        for (id, v) in m {
            let e = all.entry(id.as_str()).or_insert((0.0, 0.0));
            e.0 += w * v;
            e.1 += w;
        }
    }
    if !args.allow_missing {
        for (spec, m) in args.models.iter().zip(&models) {
            let missing: Vec<&str> = all.keys().copied().filter(|id| !m.contains_key(*id)).collect();
            if !missing.is_empty() {
                let shown: Vec<&str> = missing.iter().copied().take(5).collect();
                bail!(
                    "{spec} lacks {} id(s) that other models score: {}{} (--allow-missing averages what there is)",
                    missing.len(),
                    shown.join(", "),
                    if missing.len() > 5 { ", ..." } else { "" }
                );
            }
        }
    }
    write_output(args.output.as_deref(), |w| {
        let mut csv = csv::Writer::from_writer(w);
        let mut header = vec!["id", "pred"];
        if args.threshold.is_some() {
            header.push("label");
        }
        csv.write_record(&header)?;
        for (id, (sum, weight)) in &all {
            if *weight == 0.0 {
                continue; // only zero-weight models score it
            }
            let pred = sigmoid(sum / weight);
            let mut rec = vec![id.to_string(), format!("{pred:.6}")];
            if let Some(t) = args.threshold {
                rec.push(u8::from(pred >= t).to_string());
            }
            csv.write_record(&rec)?;
        }
        csv.flush()?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

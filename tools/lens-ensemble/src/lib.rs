//! lens-ensemble's command line: the ensemble is lensfind::ensemble's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lensfind::ensemble::ensemble;
use lensfind::output::write_output;

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

pub fn run(args: Args) -> Result<ExitCode> {
    let predictions = ensemble(&args.models, args.weights.as_deref(), args.allow_missing)?;
    write_output(args.output.as_deref(), |w| {
        let mut csv = csv::Writer::from_writer(w);
        let mut header = vec!["id", "pred"];
        if args.threshold.is_some() {
            header.push("label");
        }
        csv.write_record(&header)?;
        for p in &predictions {
            let mut rec = vec![p.id.clone(), format!("{:.6}", p.pred)];
            if let Some(t) = args.threshold {
                rec.push(u8::from(p.pred >= t).to_string());
            }
            csv.write_record(&rec)?;
        }
        csv.flush()?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

//! What every tool's `main` shares: the error report of DESIGN.md and the exit codes.
//!
//! `lens-xxx: error: <what>` on stderr, then each cause on its own line, exit 2; a closed stdout (a pipe into
//! `head`) is not an error and exits 0.
//!
//! This is the tools' side of the library, so it works with anyhow: a tool's body returns `anyhow::Result`, into
//! which the library's typed errors convert with their cause chains.
#![allow(clippy::print_stderr)] // printing the error report on stderr is this module's job

use std::process::ExitCode;

/// Exit status for errors, as ripgrep and clap use it.
const EXIT_ERROR: u8 = 2;

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// How a tool words a library's typed error in its own terms (its option names), or None to print it as it is.
pub type Wording = dyn Fn(&(dyn std::error::Error + 'static)) -> Option<String>;

/// Runs a tool's body and turns its result into the process exit status.
pub fn main(tool: &str, body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    main_worded(tool, &|_| None, body)
}

/// [`main`], with each error of the report (the error and every cause) worded by `word` where it says how.
pub fn main_worded(tool: &str, word: &Wording, body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", error_report(tool, &err, word));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The whole cause chain, one line each.
fn error_report(tool: &str, err: &anyhow::Error, word: &Wording) -> String {
    let text = |e: &(dyn std::error::Error + 'static)| word(e).unwrap_or_else(|| e.to_string());
    let mut chain = err.chain();
    let mut out = format!("{tool}: error: {}", chain.next().map(text).unwrap_or_default());
    for cause in chain {
        out.push_str(&format!("\n  caused by: {}", text(cause)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn report_has_the_chain() {
        let err = std::fs::read("/nonexistent/x").context("reading index (/nonexistent/x)").unwrap_err();
        let report = error_report("lens-pack", &err, &|_| None);
        assert!(report.starts_with("lens-pack: error: reading index (/nonexistent/x)\n  caused by: No such file"));
        // A tool's wording replaces the errors it knows, wherever they are in the chain.
        let word = |e: &(dyn std::error::Error + 'static)| {
            e.downcast_ref::<std::io::Error>().map(|io| format!("worded: {:?}", io.kind()))
        };
        let report = error_report("lens-pack", &err, &word);
        assert_eq!(report, "lens-pack: error: reading index (/nonexistent/x)\n  caused by: worded: NotFound");
    }

    #[test]
    fn broken_pipe_is_success() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing stdout");
        assert!(is_broken_pipe(&err));
        assert_eq!(main("t", || Err(err)), ExitCode::SUCCESS);
    }
}

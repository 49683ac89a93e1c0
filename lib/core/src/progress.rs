//! Progress reporting the way DESIGN.md asks: an indicatif bar when stderr is a terminal, otherwise a plain line
//! every few seconds (what a Slurm log wants), and nothing at all with `--quiet`.
//!
//! This is the tools' stderr reporter, the one place in the library that prints (besides cli.rs, the tools' `main`).
#![allow(clippy::print_stderr)] // reporting on stderr is this module's job

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A line on stderr from library code on behalf of `tool` (`tool: message`), e.g. about leftovers it cleaned up.
pub(crate) fn note(tool: &str, message: &str) {
    eprintln!("{tool}: {message}");
}

/// How often the plain-line mode prints.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

enum Mode {
    Bar(ProgressBar),
    Log { last: Mutex<Instant> },
    Quiet,
}

/// A thread-safe progress counter over `total` items.
pub struct Progress {
    tool: String,
    what: String,
    total: u64,
    done: AtomicU64,
    start: Instant,
    mode: Mode,
    message: Mutex<String>,
}

impl Progress {
    /// `tool` prefixes log lines (`lens-pack: ...`), `what` names the items (`objects`).
    pub fn new(tool: &str, what: &str, total: u64, quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {what} ({{per_sec}}, eta {{eta}}) {{msg}}"
                ))
                .expect("static template")
                .progress_chars("=> "),
            );
            Mode::Bar(bar)
        } else {
            Mode::Log { last: Mutex::new(Instant::now()) }
        };
        let message = Mutex::new(String::new());
        Progress {
            tool: tool.into(),
            what: what.into(),
            total,
            done: AtomicU64::new(0),
            start: Instant::now(),
            mode,
            message,
        }
    }

    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.mode {
            Mode::Bar(bar) => bar.inc(n),
            Mode::Log { last } => {
                // try_lock: a thread that finds another one printing just goes on.
                if let Ok(mut last) = last.try_lock() {
                    if last.elapsed() >= LOG_INTERVAL {
                        *last = Instant::now();
                        eprintln!("{}", self.line(done));
                    }
                }
            }
            Mode::Quiet => {}
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let pct = if self.total > 0 { 100.0 * done as f64 / self.total as f64 } else { 100.0 };
        let eta = if rate > 0.0 { (self.total.saturating_sub(done)) as f64 / rate } else { 0.0 };
        let message = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        let sep = if message.is_empty() { "" } else { ", " };
        format!(
            "{}: {done}/{} {} ({pct:.1}%), {rate:.0}/s, {secs:.0}s elapsed, eta {eta:.0}s{sep}{message}",
            self.tool, self.total, self.what
        )
    }

    /// A short status shown after the counts (e.g. the running loss).
    pub fn set_message(&self, message: String) {
        if let Mode::Bar(bar) = &self.mode {
            bar.set_message(message.clone());
        }
        if let Ok(mut m) = self.message.lock() {
            *m = message;
        }
    }

    /// Clears the bar; in log mode prints a final line.
    pub fn finish(&self) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Log { .. } => eprintln!("{}", self.line(self.done.load(Ordering::Relaxed))),
            Mode::Quiet => {}
        }
    }

    /// Seconds since the progress started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

//! `cargo run -p xtask -- man`: writes man/<tool>.1 for every tool from its clap definition.
//! `cargo run -p xtask -- man --check`: fails if a checked-in page differs from what the tool's options give.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

/// Every tool's command definition.
fn commands() -> Vec<clap::Command> {
    vec![
        lens_synth::Args::command(),
        lens_index::Args::command(),
        lens_pack::Args::command(),
        lens_train::Args::command(),
        lens_infer::Args::command(),
        lens_ensemble::Args::command(),
        lens_eval::Args::command(),
    ]
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

/// Writes (or with `check`, compares) the pages; returns the names of pages that were out of date.
fn man(check: bool) -> Result<Vec<String>> {
    let dir = man_dir();
    std::fs::create_dir_all(&dir)?;
    let mut stale = Vec::new();
    for cmd in commands() {
        let name = format!("{}.1", cmd.get_name());
        let page = render(cmd)?;
        let path = dir.join(&name);
        let current = std::fs::read(&path).unwrap_or_default();
        if current != page {
            stale.push(name);
            if !check {
                std::fs::write(&path, &page).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(stale)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["man"] => man(false).map(|stale| {
            for s in stale {
                eprintln!("xtask: wrote man/{s}");
            }
        }),
        ["man", "--check"] => man(true).and_then(|stale| {
            if stale.is_empty() {
                Ok(())
            } else {
                bail!("out of date: {} (run: cargo run -p xtask -- man)", stale.join(", "))
            }
        }),
        _ => Err(anyhow::anyhow!("usage: cargo run -p xtask -- man [--check]")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn man_pages_are_up_to_date() {
        let stale = super::man(true).unwrap();
        assert!(stale.is_empty(), "man pages out of date: {stale:?}; run `cargo run -p xtask -- man`");
    }

    #[test]
    fn every_tool_has_a_page() {
        let tools: Vec<String> = std::fs::read_dir(super::man_dir().join("../tools"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let names: Vec<String> = super::commands().iter().map(|c| c.get_name().to_string()).collect();
        for t in tools {
            assert!(names.contains(&t), "tools/{t} has no entry in xtask's commands()");
        }
    }
}

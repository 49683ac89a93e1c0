//! `cargo run -p xtask -- man`: writes man/<tool>.1 and completions/<tool>.{bash,zsh,fish} for every tool from
//! its clap definition.
//! `cargo run -p xtask -- man --check`: fails if a checked-in file differs from what the tool's options give.

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
        lens_view::Args::command(),
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

fn completions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions")
}

/// Every generated file: (path relative to the repository, contents).
fn generated() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    use clap_complete::{generate, Shell};
    let mut out = Vec::new();
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        out.push((man_dir().join(format!("{name}.1")), render(cmd.clone())?));
        for (shell, ext) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let mut buf = Vec::new();
            generate(shell, &mut cmd.clone(), name.clone(), &mut buf);
            out.push((completions_dir().join(format!("{name}.{ext}")), buf));
        }
    }
    Ok(out)
}

/// Writes (or with `check`, compares) the man pages and completions; returns the files that were out of date.
fn man(check: bool) -> Result<Vec<String>> {
    std::fs::create_dir_all(man_dir())?;
    std::fs::create_dir_all(completions_dir())?;
    let mut stale = Vec::new();
    for (path, contents) in generated()? {
        let current = std::fs::read(&path).unwrap_or_default();
        if current != contents {
            let parent = path.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy().into_owned();
            stale.push(format!("{parent}/{}", path.file_name().unwrap_or_default().to_string_lossy()));
            if !check {
                std::fs::write(&path, &contents).with_context(|| format!("writing {}", path.display()))?;
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
                eprintln!("xtask: wrote {s}");
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
        assert!(stale.is_empty(), "man pages or completions out of date: {stale:?}; run `cargo run -p xtask -- man`");
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

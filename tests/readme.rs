//! The README's examples run as written: every ```sh block, in order, in one temporary directory, with the built
//! tools first on PATH and the repository's scripts/ linked in (the README's examples use the data they make).

use std::path::Path;
use std::process::Command;

use lensfind_e2e::*;

/// The contents of every block fenced as ```sh, with the line it starts on.
fn sh_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some((i + 1, String::new())),
            Some(_) if line.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

#[test]
fn readme_examples_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 15, "only {} sh blocks", blocks.len());
    let all: String = blocks.iter().map(|b| b.1.as_str()).collect();
    for t in tool_names() {
        assert!(all.contains(&format!("\n{t} ")) || all.starts_with(&format!("{t} ")), "no runnable example of {t}");
    }
    assert!(all.contains("make -f scripts/pipeline.mk"), "no runnable example of the pipeline");

    let t = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("scripts").canonicalize().unwrap(), t.path().join("scripts")).unwrap();
    let path = format!("{}:{}", fresh_bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut log = String::new();
    for (line, text) in &blocks {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", text])
            .current_dir(t.path())
            .env("PATH", &path)
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "README.md line {line}: the block failed ({}):\n{text}\n{stderr}", out.status);
        log.push_str(&stdout);
        log.push_str(&stderr);
    }
    // What the quickstart says happens, happens.
    assert!(log.contains("Nothing to be done for 'all'"), "the second make of the pipeline does nothing");
    assert!(log.contains("set aside 2"), "the two damaged objects are set aside");
    for f in ["submission.csv", "metrics.json", "candidates.png", "lenses.png", "brighter.png", "quick/metrics.json"] {
        assert!(t.path().join(f).is_file(), "{f} made");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["all"]["n"], 20, "the blind set of the quickstart is scored whole");
}

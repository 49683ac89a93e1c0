//! lens-index as a user runs it: several roots, --label, problems, stdout and stdin.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use lensfind_e2e::*;

#[test]
fn labels_from_directories_and_problems_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    synth(&d, 3, 4, &[]);
    // Sorted the way the reference sorts data: a lens directory and a non-lens directory, labels not in the names.
    let lenses = t.path().join("lenses");
    let nonlenses = t.path().join("nonlenses");
    fs::create_dir_all(&lenses).unwrap();
    fs::create_dir_all(&nonlenses).unwrap();
    for b in ["g", "r", "i", "z", "y"] {
        fs::copy(
            d.join(format!("slsim_lenses/D1_L_00000000_{b}.fits")),
            lenses.join(format!("object_000001_{b}.fits")),
        )
        .unwrap();
        fs::copy(
            d.join(format!("slsim_nonlenses/D1_N_00000000_{b}.fits")),
            nonlenses.join(format!("object_000002_{b}.fits")),
        )
        .unwrap();
    }
    // A non-lens filed under lenses/: a label conflict, reported, and --label wins.
    for b in ["g", "r", "i", "z", "y"] {
        fs::copy(
            d.join(format!("hsc_nonlenses/D2_N_00000001_{b}.fits")),
            lenses.join(format!("D2_N_00000001_{b}.fits")),
        )
        .unwrap();
    }
    let out = ok(tool("lens-index").arg("--label").arg("1").arg(&lenses).arg("--label").arg("0").arg(&nonlenses));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "id,label,source,g,r,i,z,y");
    let heads: Vec<String> = lines[1..].iter().map(|l| l.split(',').take(3).collect::<Vec<_>>().join(",")).collect();
    assert_eq!(heads, ["D2_N_00000001,1,2", "object_000001,1,", "object_000002,0,"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 label-conflict"), "{stderr}");

    // --max-problems makes problems fatal, and then no index is written.
    let idx = t.path().join("idx.csv");
    let err = fails(tool("lens-index").args(["--max-problems", "4", "--label", "1"]).arg(&lenses).arg("-o").arg(&idx));
    assert!(err.contains("5 problems, more than --max-problems 4"), "{err}");
    assert!(!idx.exists());
}

#[test]
fn index_pipes_into_pack_and_output_is_sorted_and_stable() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d");
    synth(&d, 4, 6, &[]);
    let a = ok(tool("lens-index").arg(d.join("hsc_lenses")).arg(d.join("slsim_nonlenses")).arg(&d)).stdout;
    let b = ok(tool("lens-index").arg(&d)).stdout;
    assert_eq!(a, b, "a file reached through two roots counts once, and order of roots does not matter");
    let text = String::from_utf8(a.clone()).unwrap();
    let ids: Vec<&str> = text.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 16);

    // Glob roots.
    let pattern = format!("{}/*_lenses", d.display());
    let g = ok(tool("lens-index").arg(&pattern)).stdout;
    assert_eq!(String::from_utf8(g).unwrap().lines().count(), 1 + 8);

    // `lens-index ... | lens-pack -o x.pack`
    let pack = t.path().join("x.pack");
    let mut child =
        tool("lens-pack").args(["-q", "-o"]).arg(&pack).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&a).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lensfind_data::pack::Pack::open(&pack).unwrap().len(), 16);
}

#[test]
fn missing_root_is_an_error_and_closed_stdout_is_not() {
    let t = tempfile::tempdir().unwrap();
    let err = fails(tool("lens-index").arg(t.path().join("typo")));
    assert!(err.starts_with("lens-index: error: ") && err.contains("no such file or directory"), "{err}");
    let err = fails(tool("lens-index").args(["--label", "maybe"]).arg(t.path()));
    assert!(err.contains("expected 1, 0 or name"), "{err}");

    // `lens-index big | head -1`: the reader goes away while lens-index writes; that is not an error (exit 0,
    // nothing on stderr), and no signal ends it.
    let d = t.path().join("d");
    synth(&d, 300, 1, &[]);
    let whole = ok(tool("lens-index").arg(&d)).stdout;
    assert!(whole.len() > 256 * 1024, "the index ({} bytes) must be larger than a pipe holds", whole.len());
    let mut child = tool("lens-index").arg("-q").arg(&d).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    assert_eq!(first, "id,label,source,g,r,i,z,y\n");
    // The reader (and with it the pipe's read end) is gone here, while most of the index is still to be written.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "lens-index | head -1: {}; stderr: {stderr}", out.status);
    // With -q, stderr holds the summary alone: no error, no warning about the pipe.
    assert!(stderr.starts_with("lens-index: 1200 objects") && stderr.lines().count() == 1, "{stderr}");
}

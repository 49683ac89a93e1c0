//! lens-synth -> lens-index -> lens-pack end to end, and lens-pack on every kind of bad input.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lensfind_data::fits::{read_band, write_image_file, write_table_file};
use lensfind_data::index::read_index;
use lensfind_data::pack::Pack;
use lensfind_e2e::*;

/// Standardises like the reference (numpy: x = (x - x.mean()) / x.std() when std > 1e-9), written out
/// independently of the library.
fn reference_standardize(x: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    if std > 1e-9 {
        x.iter().map(|v| (v - mean) / std).collect()
    } else {
        x.to_vec()
    }
}

/// lens-pack --standardize noise on one band, written out independently of the library: asinh((x - median) /
/// (1.4826 x MAD)), the population std where the MAD is 0, only centred where that is 0 too.
fn noise_units(x: &[f64]) -> Vec<f64> {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let m = median(&mut x.to_vec());
    let mut sigma = 1.482_602_218_505_602 * median(&mut x.iter().map(|v| (v - m).abs()).collect());
    if sigma <= 1e-9 {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        sigma = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    }
    x.iter().map(|v| if sigma > 1e-9 { ((v - m) / sigma).asinh() } else { v - m }).collect()
}

fn direct_read(paths: &[std::path::PathBuf; 5]) -> Vec<f64> {
    let mut out = vec![0.0; 5 * 41 * 41];
    for (b, p) in paths.iter().enumerate() {
        read_band(p, b, 41, 41, &mut out[b * 1681..(b + 1) * 1681]).unwrap();
    }
    out.iter().map(|v| if v.is_finite() { *v } else { 0.0 }).collect()
}

#[test]
fn synth_index_pack_values_match_direct_read() {
    let (t, data, idx) = indexed_dataset(60, 11, &["--corrupt", "3"]);
    let pack_dir = t.path().join("train.pack");
    let out = ok(tool("lens-pack").arg(&idx).arg("-o").arg(&pack_dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("packed 237 of 240 objects"), "{stderr}");

    // The corrupted files' objects, and only those, are set aside, each with a reason naming its file.
    let corrupted: Vec<String> = csv_rows(&data.join("corrupted.csv")).into_iter().map(|r| r[0].clone()).collect();
    let rejected = csv_rows(&pack_dir.join("rejected.csv"));
    assert_eq!(rejected.len(), 3);
    for r in &rejected {
        let file = corrupted.iter().find(|c| c.contains(&r[0])).expect("rejected object was corrupted");
        assert!(r[1].contains(file.as_str()), "reason names the file: {r:?}");
    }

    let rows = read_index(fs::File::open(&idx).unwrap(), "index").unwrap();
    let pack = Pack::open(&pack_dir).unwrap();
    let images = pack.images_f32().unwrap().unwrap();
    assert_eq!(images.shape(), &[237, 5, 41, 41]);
    let kept: Vec<_> = rows.iter().filter(|r| !rejected.iter().any(|x| x[0] == r.id)).collect();
    assert_eq!(kept.len(), pack.len());
    for (i, row) in kept.iter().enumerate() {
        let meta = &pack.meta[i];
        assert_eq!((meta.row, &meta.id, meta.label, meta.source), (i, &row.id, row.label, row.source));
        let want = reference_standardize(&direct_read(&row.paths));
        let got = images.index_axis(ndarray::Axis(0), i);
        for (g, w) in got.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0), "row {i}: {g} vs {w}");
        }
    }
    assert_eq!(pack.manifest.lenses + pack.manifest.nonlenses, 237);
    assert!(lensfind_data::pack::verify(&pack_dir).unwrap().is_empty());
}

#[test]
fn a_pack_in_noise_units_holds_each_band_s_formula_and_says_so_in_its_manifest() {
    let (t, _, idx) = indexed_dataset(10, 12, &[]);
    let pack_dir = t.path().join("noise.pack");
    ok(tool("lens-pack").args(["-q", "--standardize", "noise"]).arg(&idx).arg("-o").arg(&pack_dir));
    let pack = Pack::open(&pack_dir).unwrap();
    assert_eq!((pack.manifest.version, pack.manifest.standardization.mode.name()), (2, "noise"));
    let images = pack.images_f32().unwrap().unwrap();
    let rows = read_index(fs::File::open(&idx).unwrap(), "index").unwrap();
    for (i, row) in rows.iter().enumerate() {
        let raw = direct_read(&row.paths);
        let want: Vec<f64> = raw.chunks(1681).flat_map(noise_units).collect();
        let got = images.index_axis(ndarray::Axis(0), i);
        // float32 storage of values of order 1-10: 1e-6 relative.
        for (g, w) in got.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() <= 1e-6 * w.abs().max(1.0), "row {i}: {g} vs {w}");
        }
    }
    // An older reader's view: the version it does not know, named.
    let json = fs::read_to_string(pack_dir.join("pack.json")).unwrap().replace("\"version\": 2", "\"version\": 3");
    fs::write(pack_dir.join("pack.json"), json).unwrap();
    let err = format!("{:#}", Pack::open(&pack_dir).err().unwrap());
    assert!(err.contains("version 3; this lensfind reads versions 1 and 2"), "{err}");
}

#[test]
fn numpy_opens_images_with_mmap() {
    let python = match python_with(&["numpy"]) {
        Ok(p) => p,
        Err(why) => return cannot_run("numpy_opens_images_with_mmap", &why),
    };
    let (t, _, idx) = indexed_dataset(5, 1, &[]);
    for dtype in ["f32", "f16"] {
        let pack_dir = t.path().join(format!("{dtype}.pack"));
        ok(tool("lens-pack").args(["-q", "--dtype", dtype]).arg(&idx).arg("-o").arg(&pack_dir));
        let pack = Pack::open(&pack_dir).unwrap();
        let mut row = vec![0.0f32; pack.row_len()];
        pack.row_f32(3, &mut row);
        let script = format!(
            "import numpy as np\na = np.load({:?}, mmap_mode='r')\nassert isinstance(a, np.memmap)\n\
             print(a.shape, a.dtype, repr(float(a[3, 2, 20, 20])))",
            pack_dir.join("images.npy")
        );
        let out = ok(std::process::Command::new(&python).args(["-c", &script]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let want_dtype = if dtype == "f32" { "float32" } else { "float16" };
        assert!(stdout.starts_with(&format!("(20, 5, 41, 41) {want_dtype}")), "{stdout}");
        let value: f64 = stdout.trim().rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(value as f32, row[2 * 1681 + 20 * 41 + 20]);
    }
}

/// Writes a full object `id` into `dir` from a generator of band images.
fn write_object(dir: &Path, id: &str, image: impl Fn(usize) -> Vec<f64>) {
    fs::create_dir_all(dir).unwrap();
    for b in 0..5 {
        let band = lensfind_data::naming::BANDS[b];
        write_table_file(&dir.join(format!("{id}_{band}.fits")), "Object ID", id, b, &image(b), (41, 41), false)
            .unwrap();
    }
}

#[test]
fn bad_inputs_end_up_where_design_says() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("raw");
    let ramp = |b: usize| (0..1681).map(|i| (i * (b + 1)) as f64).collect::<Vec<_>>();
    write_object(&d, "D1_L_00000001", ramp);
    write_object(&d, "D1_N_00000002", ramp);
    // Truncated band.
    write_object(&d, "D1_L_00000003", ramp);
    let p = d.join("D1_L_00000003_i.fits");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..4000]).unwrap();
    // Wrong shape: a 40x40 image in one band, blind layout.
    for b in 0..5 {
        let band = lensfind_data::naming::BANDS[b];
        let (n, img) = if b == 3 { (40, vec![1.0; 1600]) } else { (41, ramp(b)) };
        write_image_file(&d.join(format!("object_000004_{band}.fits")), &img, n, n).unwrap();
    }
    // NaN-filled: one band all NaN, another with Inf.
    write_object(&d, "D2_N_00000005", |b| match b {
        0 => vec![f64::NAN; 1681],
        4 => (0..1681).map(|i| if i % 2 == 0 { f64::INFINITY } else { i as f64 }).collect(),
        _ => ramp(b),
    });
    // Missing band.
    write_object(&d, "D2_L_00000006", ramp);
    fs::remove_file(d.join("D2_L_00000006_z.fits")).unwrap();

    let idx = t.path().join("index.csv");
    let problems = t.path().join("problems.csv");
    let out = ok(tool("lens-index").arg(&d).arg("-o").arg(&idx).arg("--problems").arg(&problems));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing-band D2_L_00000006") && stderr.contains("1 missing-band"), "{stderr}");
    let prob = csv_rows(&problems);
    assert_eq!(prob.len(), 1);
    assert_eq!(prob[0][..2], ["missing-band".to_string(), "D2_L_00000006".to_string()]);

    // The pack run goes on past every bad object.
    let pack_dir = t.path().join("x.pack");
    let out = ok(tool("lens-pack").arg(&idx).arg("-o").arg(&pack_dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("packed 3 of 5 objects"), "{stderr}");
    assert!(stderr.contains("2522 NaN/Inf values in 1 objects set to 0"), "{stderr}");
    let rejected: HashMap<String, String> =
        csv_rows(&pack_dir.join("rejected.csv")).into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected["D1_L_00000003"].starts_with("band i: file is truncated: 4000 bytes, less than its headers declare"),
        "{rejected:?}"
    );
    assert!(rejected["object_000004"].contains("band z: shape 40x40 where 41x41 was expected"), "{rejected:?}");
    let pack = Pack::open(&pack_dir).unwrap();
    let ids: Vec<_> = pack.meta.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["D1_L_00000001", "D1_N_00000002", "D2_N_00000005"]);
    // The NaN band became 0 before standardising: every value of band g is one and the same number.
    let mut row = vec![0.0; pack.row_len()];
    pack.row_f32(2, &mut row);
    assert!(row[..1681].iter().all(|v| *v == row[0]) && row.iter().all(|v| v.is_finite()));
    assert_eq!(pack.manifest.nonfinite.objects_affected, 1);

    // With a limit on NaN/Inf, the same object is set aside instead; with --max-rejected 1 the run fails whole.
    let out = ok(tool("lens-pack").args(["--max-nonfinite", "0.1"]).arg(&idx).arg("-o").arg(&pack_dir));
    assert!(String::from_utf8_lossy(&out.stderr).contains("packed 2 of 5"));
    let strict = t.path().join("strict.pack");
    let err = fails(tool("lens-pack").args(["--max-rejected", "1"]).arg(&idx).arg("-o").arg(&strict));
    assert!(err.contains("lens-pack: error: 2 objects rejected, more than --max-rejected 1"), "{err}");
    assert!(!strict.exists());
}

#[test]
fn same_inputs_same_bytes() {
    let (t, _, idx) = indexed_dataset(20, 5, &["--corrupt", "2"]);
    let a = t.path().join("a.pack");
    let b = t.path().join("b.pack");
    ok(tool("lens-pack").args(["-q", "-j", "1"]).arg(&idx).arg("-o").arg(&a));
    ok(tool("lens-pack").args(["-q", "-j", "2", "--chunk", "7"]).arg(&idx).arg("-o").arg(&b));
    for f in ["images.npy", "meta.csv", "rejected.csv", "pack.json"] {
        assert!(fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(), "{f} differs");
    }
}

#[test]
fn verify_finds_damage_and_open_checks_size() {
    let (t, _, idx) = indexed_dataset(300, 2, &[]); // 1200 objects: two checksum blocks
    let p = t.path().join("x.pack");
    ok(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&p));
    ok(tool("lens-pack").arg("--verify").arg(&p));

    let images = p.join("images.npy");
    let mut bytes = fs::read(&images).unwrap();
    let row_bytes = 5 * 1681 * 4;
    bytes[128 + 1100 * row_bytes + 17] ^= 0x40; // a bit flip in row 1100
    fs::write(&images, &bytes).unwrap();
    let err = fails(tool("lens-pack").arg("--verify").arg(&p));
    assert!(err.contains("rows 1024-1199 are damaged"), "{err}");
    assert!(!err.contains("rows 0-1023"), "{err}");

    bytes.truncate(bytes.len() - 4);
    fs::write(&images, &bytes).unwrap();
    let msg = format!("{:#}", Pack::open(&p).err().unwrap());
    assert!(msg.contains("damaged or incomplete"), "{msg}");
}

#[test]
fn interrupted_pack_leaves_nothing() {
    let (t, _, idx) = indexed_dataset(5, 3, &[]);
    // A long index: the same 20 objects under 20000 ids, so that the run is still going when the signal comes.
    let rows = read_index(fs::File::open(&idx).unwrap(), "i").unwrap();
    let mut long = String::from("id,label,source,g,r,i,z,y\n");
    for k in 0..20_000 {
        let r = &rows[k % rows.len()];
        let paths: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
        long.push_str(&format!("obj{k:06},1,1,{}\n", paths.join(",")));
    }
    let long_idx = t.path().join("long.csv");
    fs::write(&long_idx, long).unwrap();
    let out = t.path().join("big.pack");
    for signal in ["TERM", "INT", "KILL"] {
        let mut child = tool("lens-pack")
            .args(["-q", "-j", "1", "--chunk", "16"])
            .arg(&long_idx)
            .arg("-o")
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(status.unwrap().success());
        let exit = child.wait().unwrap();
        assert!(!exit.success(), "lens-pack finished before SIG{signal}; make the input longer");
        assert!(!out.exists(), "no {} after SIG{signal}", out.display());
        let leftovers: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".big.pack"))
            .collect();
        if signal == "KILL" {
            // SIGKILL cannot be caught: a hidden temporary directory may stay, never the pack itself.
            assert!(leftovers.iter().all(|n| n.starts_with(".big.pack.tmp-")), "{leftovers:?}");
        } else {
            assert!(leftovers.is_empty(), "SIG{signal} left {leftovers:?}");
        }
    }
    // A rerun completes.
    ok(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&out));
    assert!(Pack::open(&out).is_ok());
}

#[test]
fn clear_errors_for_bad_arguments() {
    let t = tempfile::tempdir().unwrap();
    let err = fails(tool("lens-pack").arg(t.path().join("nope.csv")).arg("-o").arg(t.path().join("x.pack")));
    assert!(err.starts_with("lens-pack: error: opening index ") && err.contains("No such file"), "{err}");

    let bad = t.path().join("bad.csv");
    fs::write(&bad, "id,label,source,g,r,i,z,y\nx,7,1,a,b,c,d,e\n").unwrap();
    let err = fails(tool("lens-pack").arg(&bad).arg("-o").arg(t.path().join("x.pack")));
    assert!(err.contains("line 2") && err.contains("label \"7\""), "{err}");

    // An existing directory that is not a pack is never replaced.
    let precious = t.path().join("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("thesis.tex"), "...").unwrap();
    fs::write(&bad, "id,label,source,g,r,i,z,y\n").unwrap();
    let err = fails(tool("lens-pack").arg(&bad).arg("-o").arg(&precious));
    assert!(err.contains("is not a pack; refusing to replace it"), "{err}");
    assert!(precious.join("thesis.tex").exists());

    let err = fails(tool("lens-pack").arg("--verify").arg(t.path()));
    assert!(err.contains("pack.json"), "{err}");
}

#[test]
fn data_tools_do_not_link_libtorch() {
    let data_tools: Vec<String> = tool_names().into_iter().filter(|t| !links_libtorch(t)).collect();
    assert!(data_tools.len() >= 6, "{data_tools:?}");
    for name in data_tools.iter().map(String::as_str) {
        let out = ok(std::process::Command::new("ldd").arg(fresh_bin_dir().join(name)));
        let libs = String::from_utf8_lossy(&out.stdout);
        assert!(libs.contains("libcfitsio") || name != "lens-pack", "{name}: {libs}");
        assert!(!libs.contains("libtorch") && !libs.contains("libc10"), "{name} links libtorch:\n{libs}");
        if ["lens-ensemble", "lens-eval"].contains(&name) {
            assert!(!libs.contains("libcfitsio"), "{name} reads no FITS but links cfitsio:\n{libs}");
        }
    }
}

#[test]
fn each_tool_builds_on_the_library_crates_it_uses_only() {
    // What each tool's dependency tree holds of the heavy parts: cfitsio (FITS files), plotters (pictures), tch.
    // lens-index finds the files by their names and reads none; lens-view draws from a pack.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = |tool: &str| {
        let out = ok(std::process::Command::new(&cargo)
            .current_dir(workspace())
            .args(["tree", "-q", "-e", "normal", "--prefix", "none", "-p", tool]));
        String::from_utf8(out.stdout).unwrap()
    };
    for (tool, fits, plots) in [
        ("lens-ensemble", false, false),
        ("lens-index", false, false),
        ("lens-synth", true, false),
        ("lens-eval", false, true),
        ("lens-view", false, true),
    ] {
        let deps = tree(tool);
        assert_eq!(deps.contains("\nfitsio "), fits, "{tool}: fitsio\n{deps}");
        assert_eq!(deps.contains("\nplotters "), plots, "{tool}: plotters\n{deps}");
        assert!(!deps.contains("\ntch "), "{tool} depends on tch\n{deps}");
    }
}

//! lens-pack on a corpus of hostile files: every object is either packed or set aside with a reason, the good
//! ones are packed exactly as they would be alone, and the run never panics or hangs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lensfind_data::index::{read_index, write_index, IndexRow};
use lensfind_data::naming::BANDS;
use lensfind_data::pack::{verify, Pack};
use lensfind_e2e::*;

/// Runs `cmd`, failing the test if it has not ended after `limit` (a hang) or if it panicked.
pub(crate) fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning the tool");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("{cmd:?} still running after {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked:\n{stderr}");
    out
}

/// A small deterministic generator (the test must be repeatable, and the crate has no rand).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Replaces the header card `key` (at an 80-byte boundary) with `key = value`.
fn set_card(bytes: &mut [u8], key: &str, value: &str) {
    let at = (0..bytes.len() / 80)
        .map(|c| c * 80)
        .find(|&o| bytes[o..o + 8] == *format!("{key:<8}").as_bytes())
        .unwrap_or_else(|| panic!("no {key} card"));
    let card = format!("{key:<8}= {value:<70}");
    bytes[at..at + 80].copy_from_slice(card.as_bytes());
}

/// What the corpus test expects of a hostile object.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Set aside, with a reason that contains this text.
    Rejected(&'static str),
    /// Packed (the damage does not make the file unreadable, e.g. a second id column).
    Packed,
}

/// Where each of the 16 seeded bit flips lands in lens-synth's SLSim file (the header card's keyword, "" for a
/// blank card or the padding after END; "data" for the table's row) and what lens-pack must make of it. A flip in a
/// comment or in blank space changes nothing; one in a value is a clear error; one in the data changes a pixel.
const FLIPS: [(&str, Want); 16] = [
    ("", Want::Packed),
    ("", Want::Packed),
    ("", Want::Packed),
    ("", Want::Packed),
    ("", Want::Packed),
    // GCOUNT = (                   1: the table's size cannot be worked out, so cfitsio finds no table.
    ("GCOUNT", Want::Rejected("band i: no image HDU with data and no table with a column band_i")),
    // The primary HDU's NAXIS = (: an opening quote of a kind; cfitsio reads it as a string that never ends.
    ("NAXIS", Want::Rejected("band i: cannot open: cfitsio status 205: string missing closing quote")),
    ("TFORM2", Want::Packed), // in the comment after the value
    ("", Want::Packed),
    ("", Want::Packed),
    ("", Want::Packed),
    ("TFORM1", Want::Packed), // in the comment after the value
    ("data", Want::Packed),
    ("data", Want::Packed),
    ("data", Want::Packed),
    ("data", Want::Packed),
];

struct Corpus {
    dir: PathBuf,
    rows: Vec<IndexRow>,
    want: BTreeMap<String, Want>,
}

impl Corpus {
    /// Adds an object `id` whose five bands are copies of `template`'s, then lets `damage` change its band i
    /// file (given the path; it may replace the file with anything).
    fn add(&mut self, id: &str, template: &IndexRow, want: Want, damage: impl FnOnce(&Path)) {
        let dir = self.dir.join(id);
        fs::create_dir_all(&dir).unwrap();
        let paths: [PathBuf; 5] = std::array::from_fn(|b| {
            let p = dir.join(format!("{id}_{}.fits", BANDS[b]));
            fs::copy(&template.paths[b], &p).unwrap();
            p
        });
        damage(&paths[2]);
        self.rows.push(IndexRow { id: id.into(), label: template.label, source: template.source, paths });
        self.want.insert(id.into(), want);
    }

    /// Adds an object whose band i file is `bytes`.
    fn add_bytes(&mut self, id: &str, template: &IndexRow, want: Want, bytes: Vec<u8>) {
        self.add(id, template, want, |p| fs::write(p, bytes).unwrap());
    }
}

/// Writes a one-row table file with the given id columns and band columns of `values`.
fn write_table(path: &Path, id_columns: &[&str], band_columns: &[&str], values: &[f64]) {
    use fitsio::tables::{ColumnDataType, ColumnDescription};
    let _ = fs::remove_file(path);
    let mut f = fitsio::FitsFile::create(path).open().unwrap();
    let mut cols = Vec::new();
    for name in id_columns {
        cols.push(ColumnDescription::new(*name).with_type(ColumnDataType::String).that_repeats(8).create().unwrap());
    }
    for name in band_columns {
        let mut c = ColumnDescription::new(*name);
        cols.push(c.with_type(ColumnDataType::Double).that_repeats(values.len()).create().unwrap());
    }
    let hdu = f.create_table("", &cols).unwrap();
    for name in id_columns {
        hdu.write_col(&mut f, *name, &["an id".to_string()]).unwrap();
    }
    for name in band_columns {
        hdu.write_col(&mut f, *name, values).unwrap();
    }
}

/// The pixel that a flip at byte `at` of an SLSim file changed: (its index in the band image, its new value), or
/// None when the byte is not in the image (the id column, or the padding after the row). The row starts at byte
/// 5760 (two 2880-byte headers), with the id column (TFORM1 = 'nA') before the 1681 big-endian float64 values.
fn flipped_pixel(original: &[u8], flipped: &[u8], at: usize) -> Option<(usize, f64)> {
    let tform1 = (0..2 * 36).map(|c| c * 80).find(|&o| original[o..o + 8] == *b"TFORM1  ").unwrap();
    let text = String::from_utf8_lossy(&original[tform1 + 10..tform1 + 30]).into_owned();
    let id_width: usize = text.trim_matches(|ch: char| ch == '\'' || ch == ' ').trim_end_matches('A').parse().unwrap();
    let start = 2 * 2880 + id_width;
    if at < start || at >= start + 1681 * 8 {
        return None;
    }
    let pixel = (at - start) / 8;
    let value = f64::from_be_bytes(flipped[start + pixel * 8..][..8].try_into().unwrap());
    assert_ne!(value.to_bits(), f64::from_be_bytes(original[start + pixel * 8..][..8].try_into().unwrap()).to_bits());
    Some((pixel, value))
}

fn pack(index: &[IndexRow], dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let idx = dir.join(format!("{name}.csv"));
    write_index(index, fs::File::create(&idx).unwrap()).unwrap();
    let out = dir.join(format!("{name}.pack"));
    let o = run_with_timeout(tool("lens-pack").args(extra).arg(&idx).arg("-o").arg(&out), Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "lens-pack failed on the hostile corpus:\n{stderr}");
    (out, stderr)
}

#[test]
fn every_hostile_object_is_packed_or_set_aside_with_a_reason() {
    let (t, _, idx) = indexed_dataset(2, 21, &[]);
    let good = read_index(fs::File::open(&idx).unwrap(), "index").unwrap();
    let slsim = good.iter().find(|r| r.id.starts_with("D1_L")).unwrap().clone(); // table, no TDIM
    let hsc = good.iter().find(|r| r.id.starts_with("D2_L")).unwrap().clone(); // table with TDIM
    let table = fs::read(&slsim.paths[2]).unwrap();
    let blind_dir = t.path().join("blind");
    synth(&blind_dir, 1, 22, &["--blind"]);
    let blind_idx = t.path().join("blind.csv");
    index(&[&blind_dir], &blind_idx);
    let blind = read_index(fs::File::open(&blind_idx).unwrap(), "blind").unwrap()[0].clone(); // image HDU
    let image = fs::read(&blind.paths[2]).unwrap();
    assert_eq!((table.len() % 2880, image.len() % 2880), (0, 0));

    let mut c = Corpus { dir: t.path().join("hostile"), rows: Vec::new(), want: BTreeMap::new() };
    use Want::*;

    // Flipped bits, at seeded places: 12 in the two headers, 4 in the data. What each must do is in FLIPS; the
    // pixels each flip should leave in the pack, in `flipped_pixels` (checked below).
    let mut rng = Lcg(8);
    let mut flipped_pixels: BTreeMap<String, Option<(usize, f64)>> = BTreeMap::new();
    for (k, (card, want)) in FLIPS.iter().enumerate() {
        let mut bytes = table.clone();
        let at = if k < 12 { rng.below(2 * 2880) } else { 2 * 2880 + rng.below(bytes.len() as u64 - 2 * 2880) };
        let at = at as usize;
        bytes[at] ^= 1 << rng.below(8);
        let id = format!("flip{k:02}");
        let landed = if at < 2 * 2880 {
            let keyword = String::from_utf8_lossy(&table[at / 80 * 80..][..8]).trim_end().to_string();
            if keyword == "END" {
                String::new()
            } else {
                keyword
            }
        } else {
            "data".to_string()
        };
        assert_eq!(landed, *card, "{id}: the flip at byte {at} lands elsewhere than FLIPS says");
        flipped_pixels.insert(id.clone(), (landed == "data").then(|| flipped_pixel(&table, &bytes, at)).flatten());
        c.add_bytes(&id, &slsim, *want, bytes);
    }
    // Cut at every header block boundary, both layouts.
    for k in 0..table.len() / 2880 {
        c.add_bytes(&format!("cut-table-{k}"), &slsim, Rejected(""), table[..k * 2880].to_vec());
    }
    for k in 0..image.len() / 2880 {
        c.add_bytes(&format!("cut-image-{k}"), &blind, Rejected(""), image[..k * 2880].to_vec());
    }
    // NAXIS lying: more rows than stored (the image now reaches past the file), a wider image, a 42x41 shape.
    let mut b = image.clone();
    set_card(&mut b, "NAXIS2", "80");
    c.add_bytes("naxis-longer-than-file", &blind, Rejected("shape 80x41"), b);
    let mut b = image.clone();
    set_card(&mut b, "NAXIS1", "99999");
    c.add_bytes("naxis-wide", &blind, Rejected("shape"), b);
    let mut b = image.clone();
    set_card(&mut b, "NAXIS2", "42");
    c.add_bytes("naxis-42x41", &blind, Rejected("shape 42x41 where 41x41"), b);
    let mut b = table.clone();
    set_card(&mut b, "NAXIS2", "2");
    c.add_bytes("table-two-rows", &slsim, Rejected(""), b);
    // TFORM lying: a repeat count that is not the image, a narrower type than stored, and rows longer than stored.
    let mut b = table.clone();
    set_card(&mut b, "TFORM2", "'1682D'");
    c.add_bytes("tform-1682D", &slsim, Rejected(""), b);
    let mut b = table.clone();
    set_card(&mut b, "TFORM2", "'1681E'");
    c.add_bytes("tform-float-for-double", &slsim, Rejected("add up to 6737"), b);
    let mut b = table.clone();
    set_card(&mut b, "TFORM2", "'3362D'");
    set_card(&mut b, "NAXIS1", "26909");
    c.add_bytes("tform-rows-past-end", &slsim, Rejected(""), b);
    // A 41x41 image declared, 40x40 stored: as a table (TDIM says 41x41, the vector holds 1600), and as an image
    // whose header says 41x41 over 40x40 values (cut after the data, as a writer that stops early leaves it).
    c.add("tdim-41-over-1600", &hsc, Rejected("illegal TDIMn"), |p| {
        write_table(p, &["Lens ID"], &["band_i"], &vec![1.0; 1600]);
        let mut f = fitsio::FitsFile::edit(p).unwrap();
        let hdu = f.hdu(1).unwrap();
        hdu.write_key(&mut f, "TDIM2", "(41,41)").unwrap();
    });
    c.add("image-41-over-40x40", &blind, Rejected("truncated"), |p| {
        lensfind_data::fits::write_image_file(p, &vec![1.0; 1600], 40, 40).unwrap();
        let mut b = fs::read(p).unwrap();
        set_card(&mut b, "NAXIS1", "41");
        set_card(&mut b, "NAXIS2", "41");
        b.truncate(2880 + 1600 * 8);
        fs::write(p, b).unwrap();
    });
    // NaN and Inf everywhere: all five bands (rejected under --max-nonfinite 0.5, below).
    c.add("all-nonfinite", &slsim, Rejected("100.0% of the pixels are NaN or Inf"), |_| {});
    for (b, p) in c.rows.last().unwrap().paths.clone().iter().enumerate() {
        let v: Vec<f64> = (0..1681).map(|i| [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][(i + b) % 3]).collect();
        lensfind_data::fits::write_table_file(p, "Object ID", "x", b, &v, (41, 41), false).unwrap();
    }
    // A second id column is harmless (the id comes from the name); a second band_i column is ambiguous.
    let ramp: Vec<f64> = (0..1681).map(|i| i as f64).collect();
    c.add("two-id-columns", &slsim, Packed, |p| write_table(p, &["Object ID", "Lens ID"], &["band_i"], &ramp));
    c.add("two-band-columns", &slsim, Rejected("band i"), |p| {
        write_table(p, &["Object ID"], &["band_i", "other"], &ramp);
        let mut b = fs::read(p).unwrap();
        set_card(&mut b, "TTYPE3", "'BAND_I'"); // column names match case-insensitively
        fs::write(p, b).unwrap();
    });
    // A header byte outside printable ASCII (the fuzzer's crash in cfitsio's strcpy).
    let mut b = table.clone();
    let ttype = (0..b.len() / 80).map(|k| k * 80).find(|&o| b[o..o + 6] == *b"TTYPE1").unwrap();
    b[ttype + 10..ttype + 40].fill(0xfb);
    c.add_bytes("non-ascii-header", &slsim, Rejected("printable ASCII"), b);
    // An unquoted column name that fills the card (the fuzzer's second crash in the same strcpy).
    let mut b = table.clone();
    b[ttype + 10..ttype + 80].fill(b'A');
    c.add_bytes("long-unquoted-ttype", &slsim, Rejected("70 characters and not a quoted string"), b);
    // Not FITS at all, empty, a directory, a FIFO (opening it would block), a device, a dangling link, a link loop.
    c.add_bytes(
        "garbage",
        &slsim,
        Rejected("not a FITS file"),
        (0..20160u32).map(|i| (i * 7919 % 251) as u8).collect(),
    );
    c.add_bytes("empty", &slsim, Rejected("cannot open"), Vec::new());
    c.add("directory", &slsim, Rejected("is a directory"), |p| {
        fs::remove_file(p).unwrap();
        fs::create_dir(p).unwrap();
    });
    c.add("fifo", &slsim, Rejected("not a regular file"), |p| {
        fs::remove_file(p).unwrap();
        ok(Command::new("mkfifo").arg(p));
    });
    c.add("device", &slsim, Rejected("not a regular file"), |p| {
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", p).unwrap();
    });
    c.add("dangling-link", &slsim, Rejected("No such file"), |p| {
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink(p.with_extension("gone"), p).unwrap();
    });
    c.add("link-loop", &slsim, Rejected("symbolic links"), |p| {
        fs::remove_file(p).unwrap();
        std::os::unix::fs::symlink(p, p).unwrap();
    });
    // Paths that changed since indexing: the file moved away.
    c.add("moved-since-indexing", &slsim, Rejected("No such file"), |p| {
        fs::rename(p, p.with_extension("moved")).unwrap();
    });

    // Good and hostile objects interleaved in one index.
    let mut all: Vec<IndexRow> = good.iter().cloned().chain(c.rows.iter().cloned()).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let (hostile_pack, stderr) = pack(&all, t.path(), "hostile", &["--max-nonfinite", "0.5"]);
    let (good_pack, _) = pack(&good, t.path(), "good", &["--max-nonfinite", "0.5"]);

    let rejected: BTreeMap<String, String> =
        csv_rows(&hostile_pack.join("rejected.csv")).into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let p = Pack::open(&hostile_pack).unwrap();
    let packed: BTreeSet<String> = p.meta.iter().map(|m| m.id.clone()).collect();
    assert!(verify(&hostile_pack).unwrap().is_empty());
    assert!(stderr.contains(&format!("set aside {}", rejected.len())), "{stderr}");

    // Every object is accounted for exactly once.
    assert_eq!(packed.len() + rejected.len(), all.len());
    for (id, want) in &c.want {
        let (is_packed, reason) = (packed.contains(id), rejected.get(id));
        assert!(is_packed != reason.is_some(), "{id}: packed {is_packed}, rejected {reason:?}");
        match want {
            Packed => assert!(is_packed, "{id} should be packed; set aside: {reason:?}"),
            Rejected(text) => {
                let reason = reason.unwrap_or_else(|| panic!("{id} should be set aside"));
                assert!(reason.contains(text), "{id}: {reason:?} should say {text:?}");
                if !reason.contains("NaN or Inf") {
                    // A file's fault: the reason names the band and the file.
                    assert!(reason.starts_with("band i: "), "{id}: the reason names the band: {reason}");
                    assert!(reason.contains(&c.dir.join(id).display().to_string()), "{id}: names the file: {reason}");
                }
            }
        }
    }
    // The reasons, as RELIABILITY.md lists them (shown with --nocapture).
    for (id, reason) in &rejected {
        eprintln!("set aside {id}: {}", reason.split(" (/").next().unwrap_or(reason));
    }

    // The packed flips hold exactly the template's pixels, but for the one pixel a flip in the data changed:
    // compared raw (--standardize none), with the template packed alone.
    let flips: Vec<IndexRow> = c.rows.iter().filter(|r| r.id.starts_with("flip")).cloned().collect();
    let (raw_flips, _) = pack(&flips, t.path(), "flips-raw", &["-q", "--standardize", "none"]);
    let (raw_template, _) =
        pack(std::slice::from_ref(&slsim), t.path(), "template-raw", &["-q", "--standardize", "none"]);
    let (f, tp) = (Pack::open(&raw_flips).unwrap(), Pack::open(&raw_template).unwrap());
    let mut template = vec![0.0f32; tp.row_len()];
    tp.row_f32(0, &mut template);
    let mut got = vec![0.0f32; f.row_len()];
    let mut changed = 0;
    for (row, m) in f.meta.iter().enumerate() {
        f.row_f32(row, &mut got);
        let mut want = template.clone();
        if let Some((pixel, value)) = flipped_pixels[&m.id] {
            // Band i is the third; a value float32 cannot hold (or NaN/Inf) is set to 0, as the README says.
            let value = if value.is_finite() && value.abs() <= f64::from(f32::MAX) { value as f32 } else { 0.0 };
            want[2 * 1681 + pixel] = value;
            changed += usize::from(value != template[2 * 1681 + pixel]);
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits() == w.to_bits(), "{}: pixel {i} is {g}, should be {w}", m.id);
        }
    }
    assert_eq!(f.len(), FLIPS.iter().filter(|(_, w)| *w == Want::Packed).count());
    // Of the four flips in the data, two hit low mantissa bits that float32 rounds away; one makes 0.977 into
    // 1.8e308 (beyond float32: 0), one changes the exponent of -0.196 (-0.000766).
    assert_eq!(changed, 2, "pixels changed by the flips in the data");

    // Every good object is packed, with exactly the values it has when packed alone.
    let g = Pack::open(&good_pack).unwrap();
    assert_eq!(g.len(), good.len());
    let (mut a, mut b) = (vec![0.0f32; p.row_len()], vec![0.0f32; p.row_len()]);
    for (gi, m) in g.meta.iter().enumerate() {
        let hi = p.meta.iter().position(|x| x.id == m.id).unwrap_or_else(|| panic!("good object {} lost", m.id));
        g.row_f32(gi, &mut a);
        p.row_f32(hi, &mut b);
        assert!(a == b, "{}: values differ from the pack of good objects alone", m.id);
    }
}

#[test]
fn unreadable_files_are_set_aside() {
    let (t, _, idx) = indexed_dataset(1, 23, &[]);
    let rows = read_index(fs::File::open(&idx).unwrap(), "index").unwrap();
    let locked = rows[1].paths[3].clone();
    let mut perms = fs::metadata(&locked).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o000);
    fs::set_permissions(&locked, perms).unwrap();
    let out = t.path().join("x.pack");
    let mut cmd = tool("lens-pack");
    if fs::read(&locked).is_ok() {
        // We are root (or hold CAP_DAC_OVERRIDE): mode 000 does not stop our reads. Run lens-pack as nobody.
        const TEST: &str = "unreadable_files_are_set_aside";
        let setpriv = Path::new("/usr/bin/setpriv");
        if !setpriv.exists() {
            let why = "running with the power to read mode-000 files, and no /usr/bin/setpriv (util-linux) to drop it";
            return cannot_run(TEST, why);
        }
        let mut open = fs::metadata(t.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut open, 0o777);
        fs::set_permissions(t.path(), open).unwrap();
        cmd = Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(bin_dir().join("lens-pack"));
        // Check that nobody can run the tool and read the other files, else the test would prove nothing.
        let as_nobody = |program: &Path, arg: &Path| {
            Command::new(setpriv)
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(program)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !as_nobody(Path::new("cat"), &rows[0].paths[0]) {
            return cannot_run(
                TEST,
                "as root, and user nobody cannot read the test's files (a directory above them closed?)",
            );
        }
        if !as_nobody(&bin_dir().join("lens-pack"), Path::new("--version")) {
            return cannot_run(
                TEST,
                "as root, and user nobody cannot run the built lens-pack (a directory above it closed?)",
            );
        }
    }
    let o = run_with_timeout(cmd.arg(&idx).arg("-o").arg(&out), Duration::from_secs(60));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rejected = csv_rows(&out.join("rejected.csv"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0][0], rows[1].id);
    assert!(rejected[0][1].contains("Permission denied") && rejected[0][1].contains("band z"), "{rejected:?}");
    assert_eq!(Pack::open(&out).unwrap().len(), rows.len() - 1);
}

#[test]
fn edited_packs_are_caught_when_opened_read_and_verified() {
    // 2100 objects: three checksum blocks (rows 0-1023, 1024-2047, 2048-2099).
    let (t, _, idx) = indexed_dataset(5, 24, &[]);
    let rows = read_index(fs::File::open(&idx).unwrap(), "index").unwrap();
    let long: Vec<IndexRow> =
        (0..2100).map(|k| IndexRow { id: format!("obj{k:05}"), ..rows[k % rows.len()].clone() }).collect();
    let (big, _) = pack(&long, t.path(), "big", &["-q"]);
    let small = t.path().join("small.pack");
    ok(tool("lens-pack").arg("-q").arg(&idx).arg("-o").arg(&small));
    let run = t.path().join("run");
    ok(tool("lens-train")
        .args(["-q", "--model", "convnext_atto", "--epochs", "1", "--batch-size", "16", "--precision", "fp32"])
        .args(["--memory-format", "contiguous"])
        .arg("--pack")
        .arg(&small)
        .arg("--out")
        .arg(&run));
    let infer = |pack: &Path, extra: &[&str]| {
        let mut c = tool("lens-infer");
        c.args(["-q", "--tta", "none", "--precision", "fp32", "--memory-format", "contiguous"]);
        c.args(extra).arg("--run").arg(&run).arg("--pack").arg(pack);
        c
    };
    ok(&mut infer(&big, &[]));

    // One float in the middle block changed, as numpy's mmap_mode="r+" would do it, size unchanged.
    let images = big.join("images.npy");
    let original = fs::read(&images).unwrap();
    let row_bytes = 5 * 41 * 41 * 4;
    let mut edited = original.clone();
    edited[128 + 1500 * row_bytes + 40..][..4].copy_from_slice(&1.0f32.to_le_bytes());
    fs::write(&images, &edited).unwrap();
    // Opening samples the first and last blocks only: it opens. Scoring the edited rows is an error naming them;
    // --verify finds it.
    assert!(Pack::open(&big).is_ok());
    let err = fails(&mut infer(&big, &[]));
    assert!(err.contains("images.npy: rows 1024-2047 do not match their checksum"), "{err}");
    let err = fails(tool("lens-pack").arg("--verify").arg(&big));
    assert!(err.contains("rows 1024-2047 are damaged"), "{err}");

    // Edited in the first block: opening catches it, so lens-train refuses the pack too.
    let mut edited = original.clone();
    edited[128 + 3 * row_bytes] ^= 0x01;
    fs::write(&images, &edited).unwrap();
    let msg = format!("{:#}", Pack::open(&big).err().expect("an edited first block is caught when opened"));
    assert!(msg.contains("rows 0-1023 do not match their checksum"), "{msg}");
    let err =
        fails(tool("lens-train").args(["--epochs", "1", "--pack"]).arg(&big).arg("--out").arg(t.path().join("r2")));
    assert!(err.contains("rows 0-1023 do not match their checksum"), "{err}");
    fs::write(&images, &original).unwrap();

    // meta.csv edited (a label flipped): opening catches it.
    let meta = big.join("meta.csv");
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, text.replacen(",1,1\n", ",0,1\n", 1)).unwrap();
    let msg = format!("{:#}", Pack::open(&big).err().expect("an edited meta.csv is caught when opened"));
    assert!(msg.contains("meta.csv does not match its checksum"), "{msg}");
    let err = fails(&mut infer(&big, &[]));
    assert!(err.contains("meta.csv does not match its checksum"), "{err}");
}

#[test]
fn lens_eval_refuses_scores_and_labels_that_lie() {
    // lens-ensemble's refusals are in tests/ensemble.rs; lens-eval reads with the same library code, and must not
    // compute an AUC from a file with a duplicated id or a non-finite score.
    let t = tempfile::tempdir().unwrap();
    let labels = t.path().join("labels.csv");
    fs::write(&labels, "id,label\na,1\nb,0\n").unwrap();
    for (text, want) in [
        ("id,logit\na,1\na,2\nb,0\n", "line 3: id a appears twice"),
        ("id,logit\na,NaN\nb,1\n", "line 2: logit of a is NaN"),
        ("id,pred\na,0.5\nb,inf\n", "line 3: pred of b is inf"),
    ] {
        let pred = t.path().join("pred.csv");
        fs::write(&pred, text).unwrap();
        let err = fails(tool("lens-eval").arg("--pred").arg(&pred).arg("--truth").arg(&labels));
        assert!(err.contains(&pred.display().to_string()) && err.contains(want), "{text:?}: {err}");
    }
    let pred = t.path().join("good.csv");
    fs::write(&pred, "id,logit\na,1\nb,0\n").unwrap();
    fs::write(&labels, "id,label\na,1\nb,0\na,0\n").unwrap();
    let err = fails(tool("lens-eval").arg("--pred").arg(&pred).arg("--truth").arg(&labels));
    assert!(err.contains("labels.csv, line 4: id a appears twice"), "{err}");
}

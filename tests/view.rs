//! lens-view: renders a known synthetic pack and checks the pixels of the PNG.

use std::fs;
use std::path::Path;
use std::process::Command;

use lens_view::render::Grid;
use lensfind_e2e::*;

/// A decoded RGB PNG.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(bytes: &[u8]) -> Image {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        Image { width: info.width as usize, height: info.height as usize, rgb: buf }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Mean brightness (mean of R, G, B) over a rectangle.
    fn mean(&self, x0: usize, y0: usize, w: usize, h: usize) -> f64 {
        let mut sum = 0.0;
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                sum += self.px(x, y).iter().map(|&v| f64::from(v)).sum::<f64>() / 3.0;
            }
        }
        sum / (w * h) as f64
    }

    /// Pixels brighter than 150 in every channel (label text) in a rectangle.
    fn bright(&self, x0: usize, y0: usize, w: usize, h: usize) -> usize {
        (y0..y0 + h)
            .flat_map(|y| (x0..x0 + w).map(move |x| (x, y)))
            .filter(|&(x, y)| self.px(x, y).iter().all(|&v| v > 150))
            .count()
    }
}

fn view(pack: &Path, extra: &[&str]) -> Image {
    let out = ok(tool("lens-view").arg("--pack").arg(pack).args(extra).args(["-q", "-o", "-"]));
    Image::decode(&out.stdout)
}

/// A pack of 24 objects (12 lenses) and a predictions file that ranks every object: lenses by their source flux
/// (brightest arcs first), then the non-lenses. Returns (dir, pack, scores, ids in score order).
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, Vec<String>) {
    let (t, pack) = packed_dataset(6, 11);
    let params = csv_rows(&t.path().join("data/params.csv"));
    let mut ranked: Vec<(f64, String)> = params
        .iter()
        .map(|r| {
            let flux: f64 = r[4].parse().unwrap();
            (if r[1] == "1" { 0.5 + flux / 1e4 } else { 0.4 - flux / 1e4 }, r[0].clone())
        })
        .collect();
    let mut text = String::from("id,pred\n");
    for (s, id) in &ranked {
        text.push_str(&format!("{id},{s:.6}\n"));
    }
    let scores = t.path().join("pred.csv");
    fs::write(&scores, text).unwrap();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    (t, pack, scores, ranked.into_iter().map(|r| r.1).collect())
}

#[test]
fn contact_sheet_pixels() {
    let (t, pack, scores, order) = setup();
    let img = view(&pack, &["--scores", scores.to_str().unwrap(), "--top", "7", "--cols", "3", "--scale", "4"]);
    let grid = Grid::new(7, 3, 41, 41, 4);
    assert_eq!((img.width, img.height), grid.size(), "size from the grid: 3 columns, 3 rows");

    for k in 0..7 {
        let (x, y) = grid.tile_origin(k);
        // The lens galaxy sits at the centre of every cutout: the centre is brighter than the tile's edge.
        let c = grid.tile_w / 2;
        let centre = img.mean(x + c - 8, y + c - 8, 16, 16);
        let edge = img.mean(x, y, grid.tile_w, 12);
        assert!(centre > edge + 40.0, "tile {k}: centre {centre:.1} vs sky {edge:.1}");
        assert!(img.bright(x, y + grid.tile_h, grid.tile_w, grid.label_h) > 30, "tile {k} has a label");
    }
    // Cells 7 and 8 are empty: background only, no label.
    for k in 7..9 {
        let (x, y) = grid.tile_origin(k);
        assert_eq!(img.bright(x, y, grid.tile_w, grid.tile_h + grid.label_h), 0);
        assert_eq!(img.mean(x, y, grid.tile_w, grid.tile_h + grid.label_h), 0.0);
    }
    // Colour: i, r, g as R, G, B, so some tile pixels are not grey.
    let (x, y) = grid.tile_origin(0);
    let coloured = (y..y + grid.tile_h)
        .flat_map(|yy| (x..x + grid.tile_w).map(move |xx| (xx, yy)))
        .filter(|&(xx, yy)| {
            let p = img.px(xx, yy);
            p[0] != p[1] || p[1] != p[2]
        })
        .count();
    assert!(coloured > grid.tile_w * grid.tile_h / 4, "a colour composite: {coloured} coloured pixels");

    // The top 7 are the 7 best scores in order: the same picture as naming those ids in that order, and not the
    // same as naming them in another order.
    let ids = order[..7].join(",");
    let named = view(&pack, &["--ids", &ids, "--scores", scores.to_str().unwrap(), "--cols", "3"]);
    assert!(named.rgb == img.rgb, "--top 7 shows the 7 best scores, best first");
    let mut swapped = order[..7].to_vec();
    swapped.swap(0, 1);
    let other = view(&pack, &["--ids", &swapped.join(","), "--scores", scores.to_str().unwrap(), "--cols", "3"]);
    assert!(other.rgb != img.rgb);

    // An ids file with an id column gives the same sheet; so does writing to a file instead of stdout.
    let list = t.path().join("cands.csv");
    fs::write(
        &list,
        format!("id,note\n{}\n", order[..7].iter().map(|i| format!("{i},x")).collect::<Vec<_>>().join("\n")),
    )
    .unwrap();
    let png = t.path().join("sheet.png");
    ok(tool("lens-view")
        .arg("--pack")
        .arg(&pack)
        .arg("--ids-file")
        .arg(&list)
        .arg("--scores")
        .arg(&scores)
        .args(["--cols", "3", "-q", "-o"])
        .arg(&png));
    assert!(Image::decode(&fs::read(&png).unwrap()).rgb == img.rgb);
}

#[test]
fn single_band_is_grey_and_scale_sets_the_size() {
    let (_t, pack, scores, _) = setup();
    let img = view(&pack, &["--scores", scores.to_str().unwrap(), "--top", "4", "--band", "z", "--scale", "2"]);
    let grid = Grid::new(4, 6, 41, 41, 2);
    assert_eq!((img.width, img.height), grid.size());
    assert_eq!(grid.cols, 4, "fewer tiles than --cols: one row");
    assert!(img.rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]), "--band z is grey everywhere");
    let (x, y) = grid.tile_origin(0);
    assert!(img.mean(x + 36, y + 36, 10, 10) > img.mean(x, y, grid.tile_w, 6) + 30.0);
    // Another band is another picture.
    let g = view(&pack, &["--scores", scores.to_str().unwrap(), "--top", "4", "--band", "g", "--scale", "2"]);
    assert!(g.rgb != img.rgb);
}

#[test]
fn samples_are_seeded_and_of_one_class() {
    let (t, pack, _, _) = setup();
    let a = view(&pack, &["--sample", "5", "--seed", "3"]);
    assert!(a.rgb == view(&pack, &["--sample", "5", "--seed", "3"]).rgb, "same seed, same sheet");
    assert!(a.rgb != view(&pack, &["--sample", "5", "--seed", "4"]).rgb);
    // Asking for more lenses than there are shows every lens, in pack order.
    let lenses: Vec<String> = csv_rows(&t.path().join("train.pack/meta.csv"))
        .into_iter()
        .filter(|r| r[2] == "1")
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(lenses.len(), 12);
    let all = view(&pack, &["--sample", "100", "--label", "1"]);
    assert!(all.rgb == view(&pack, &["--ids", &lenses.join(",")]).rgb);
}

#[test]
fn errors_are_clear_and_leave_no_file() {
    let (t, pack, scores, order) = setup();
    let png = t.path().join("out.png");
    let run = |extra: &[&str]| {
        let mut c: Command = tool("lens-view");
        c.arg("--pack").arg(&pack).args(extra).arg("-o").arg(&png);
        fails(&mut c)
    };
    let err = run(&["--ids", &format!("{},NOPE_1", order[0])]);
    assert!(err.contains("lens-view: error: 1 id(s) of the ids given are not in") && err.contains("NOPE_1"), "{err}");
    let empty = t.path().join("empty.csv");
    fs::write(&empty, "id,pred\n").unwrap();
    let err = run(&["--scores", empty.to_str().unwrap()]);
    assert!(err.contains("empty.csv: no scores"), "{err}");
    let err = run(&["--scores", scores.to_str().unwrap(), "--band", "u"]);
    assert!(err.contains("invalid value 'u'") && err.contains("[possible values: g, r, i, z, y]"), "{err}");
    let err = run(&[]);
    assert!(err.contains("nothing to show: give --scores"), "{err}");
    let err = run(&["--sample", "3", "--ids", "a"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let other = t.path().join("other.csv");
    fs::write(&other, "id,logit\nELSEWHERE,3.5\n").unwrap();
    let err = run(&["--scores", other.to_str().unwrap()]);
    assert!(err.contains("not in") && err.contains("ELSEWHERE"), "{err}");
    let err = fails(tool("lens-view").args(["--pack", "/nonexistent.pack", "--sample", "2", "-o"]).arg(&png));
    assert!(err.contains("lens-view: error:") && err.contains("/nonexistent.pack"), "{err}");
    assert!(!png.exists());
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}

#[test]
fn lens_view_does_not_link_libtorch() {
    let out = ok(Command::new("ldd").arg(fresh_bin_dir().join("lens-view")));
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(!libs.contains("libtorch") && !libs.contains("libc10"), "lens-view links libtorch:\n{libs}");
}

"""Writes the FITS fixtures that check lensfind's FITS reader against astropy, into tests/fixtures/fits/.

Every file lensfind's other tests read was written by lens-synth, i.e. by lensfind itself, so a mistake shared by
writer and reader (rows and columns swapped, TDIM misread) would pass them. These files are written by astropy, in
each layout the challenge uses, with images that are not symmetric (a transpose or a flip changes them):

- SLSim training files `D1_<L|N>_<8 digits>_<band>.fits`: an empty primary HDU, then a one-row binary table with
  `Object ID` (string) and `band_<b>`, a 1681-element vector, no TDIM;
- HSC training files `D2_<L|N>_...`: the same with `TDIM = '(41,41)'`, and `Lens ID` as the id column of lenses;
- blind test files `object_<digits>_<band>.fits`: the 41x41 image in the primary HDU;
- each in float64 and float32 (FITS stores both big-endian; astropy converts on reading).

Beside them: `pixels.npy`, float64 [N, 5, 41, 41], the values exactly as astropy reads them (`hdu.data`, NaN and
Inf kept), objects in id order (lens-index's order), bands g, r, i, z, y; `standardized.npy`, what lens-pack's
default standardisation must give (NaN/Inf set to 0, then (x - mean) / std over the object's whole 5x41x41 cube
with numpy in float64, population std, when std > 1e-9); and `objects.csv` (row, id, layout, dtype).

And in tests/fixtures/fits-declared/, one HSC object whose band i says, through TDIM = '(1681,1)', that its 1681
values are a 1x1681 image, not 41x41: lens-pack must set it aside (a reader that ignored TDIM would pack it).

Run with the project's .venv (astropy installed by scripts/setup.sh):
    .venv/bin/python scripts/make_fits_fixtures.py [--out tests/fixtures/fits]
"""
import argparse
import csv
import os

import numpy as np
from astropy.io import fits

BANDS = "grizy"
SIZE = 41

# (id, layout, dtype). Layouts: slsim (table, no TDIM), hsc (table, TDIM), blind (primary-HDU image).
OBJECTS = [
    ("D1_L_00000001", "slsim", "f64"),
    ("D1_N_00000002", "slsim", "f32"),
    ("D2_L_00000003", "hsc", "f64"),
    ("D2_N_00000004", "hsc", "f32"),
    ("object_000005", "blind", "f64"),
    ("object_000006", "blind", "f32"),
]


def image(k, b, dtype):
    """An image that no transpose, flip or rotation maps onto itself: a ramp along x and a steeper one along y (so
    pixel (y, x) and (x, y) differ), a bright off-centre blob, and noise; values of both signs and a range of
    magnitudes. Object 0 also has a NaN and an Inf, which lens-pack sets to 0."""
    rng = np.random.default_rng(1000 * k + b)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    img = 0.37 * x + 3.1 * y - 40.0 + 25.0 * np.exp(-((x - 30.0) ** 2 + (y - 12.0) ** 2) / 8.0)
    img = img * (1.0 + 0.2 * b) + rng.normal(0.0, 0.5, img.shape) + 1e3 * k
    img[2, 37] = 1.2345e-7  # a tiny value, and (in float64) one that float32 must round
    if k == 0 and b == 1:
        img[5, 6] = np.nan
        img[40, 0] = -np.inf
    return img.astype(np.float32 if dtype == "f32" else np.float64)


def write_table(path, obj_id, id_column, b, img, tdim, dim=f"({SIZE},{SIZE})"):
    code = "E" if img.dtype == np.float32 else "D"
    band = fits.Column(
        name=f"band_{BANDS[b]}",
        format=f"{SIZE * SIZE}{code}",
        # Row-major, as the challenge stores it: with TDIM (41,41) astropy reads the vector back as [y, x].
        array=img.reshape(1, SIZE * SIZE),
        dim=dim if tdim else None,
    )
    ident = fits.Column(name=id_column, format=f"{len(obj_id)}A", array=np.array([obj_id]))
    table = fits.BinTableHDU.from_columns([ident, band])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)


def read_back(path, b):
    """The image as astropy reads it, and a check that the file is what the layout says."""
    with fits.open(path) as hdul:
        if len(hdul) == 1:
            data = hdul[0].data
        else:
            assert hdul[0].data is None
            data = hdul[1].data[f"band_{BANDS[b]}"][0]
        assert data.dtype.byteorder == ">", "FITS data is big-endian"
        return np.array(data, dtype=np.float64).reshape(SIZE, SIZE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fits"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith((".fits", ".npy", ".csv")):
            os.remove(os.path.join(a.out, f))
    objects = sorted(OBJECTS)
    pixels = np.zeros((len(objects), 5, SIZE, SIZE))
    for k, (obj_id, layout, dtype) in enumerate(objects):
        for b in range(5):
            img = image(k, b, dtype)
            path = os.path.join(a.out, f"{obj_id}_{BANDS[b]}.fits")
            if layout == "blind":
                fits.PrimaryHDU(img).writeto(path, overwrite=True)
            else:
                id_column = "Lens ID" if layout == "hsc" and "_L_" in obj_id else "Object ID"
                write_table(path, obj_id, id_column, b, img, tdim=layout == "hsc")
            pixels[k, b] = read_back(path, b)
            assert np.array_equal(pixels[k, b], img.astype(np.float64), equal_nan=True)
    clean = np.where(np.isfinite(pixels), pixels, 0.0)
    standardized = clean.copy()
    for k in range(len(objects)):
        x = clean[k]
        if x.std() > 1e-9:
            standardized[k] = (x - x.mean()) / x.std()
    declared = os.path.join(os.path.dirname(os.path.abspath(a.out)), "fits-declared")
    os.makedirs(declared, exist_ok=True)
    for b in range(5):
        dim = f"({SIZE * SIZE},1)" if BANDS[b] == "i" else f"({SIZE},{SIZE})"
        path = os.path.join(declared, f"D2_L_00000007_{BANDS[b]}.fits")
        write_table(path, "D2_L_00000007", "Lens ID", b, image(7, b, "f64"), tdim=True, dim=dim)
    np.save(os.path.join(a.out, "pixels.npy"), pixels)
    np.save(os.path.join(a.out, "standardized.npy"), standardized)
    with open(os.path.join(a.out, "objects.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["row", "id", "layout", "dtype"])
        for k, (obj_id, layout, dtype) in enumerate(objects):
            w.writerow([k, obj_id, layout, dtype])


if __name__ == "__main__":
    main()

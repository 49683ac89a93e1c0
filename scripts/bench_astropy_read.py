"""The reference's way of reading the challenge files, for the lens-pack benchmark.

For each object of an index: open each band file with astropy, take the band_<b> column (or the primary image),
stack the five bands, nan_to_num, and standardise over the whole cube (x - mean) / std when std > 1e-9. Objects are
spread over a multiprocessing pool of --workers processes, as a DataLoader with workers would.
Prints: objects seconds
"""
import argparse
import csv
import time
from multiprocessing import Pool

import numpy as np
from astropy.io import fits

BANDS = "grizy"


def load_band(path, band):
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if isinstance(hdu, fits.BinTableHDU):
                return np.asarray(hdu.data[f"band_{band}"][0], dtype=np.float32).reshape(41, 41)
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.float32)
    raise ValueError(f"no image in {path}")


def load_object(paths):
    try:
        x = np.stack([load_band(p, b) for p, b in zip(paths, BANDS)])
    except Exception:
        return None
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    std = x.std()
    if std > 1e-9:
        x = (x - x.mean()) / std
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with open(a.index) as f:
        rows = [r[3:8] for r in list(csv.reader(f))[1:]]
    if a.limit:
        rows = rows[: a.limit]
    t = time.perf_counter()
    with Pool(a.workers) as pool:
        out = pool.map(load_object, rows, chunksize=64)
    n = sum(o is not None for o in out)
    print(n, time.perf_counter() - t)


if __name__ == "__main__":
    main()

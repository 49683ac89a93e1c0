"""The reference's predict path, for scripts/bench-infer.sh, run as its users run it: a torch Dataset that reads
each object's 5 band files with astropy, stacks them, nan_to_num, standardises the cube; a DataLoader with
--num-workers worker processes (the reference's predict.py option; 2 by default here, as bench-infer.sh passes)
and batches of 256; a timm model carrying the run's weights (model.safetensors has timm's key names, so it loads as
it is); 3 views (original, horizontal and vertical flip) in fp32; the logits averaged; id,pred = sigmoid(mean
logit) written out.
usage: bench_reference_predict.py BLIND_DIR RUN_DIR OUT_CSV [--batch 256] [--num-workers 2]
prints: objects seconds_total seconds_model"""
import argparse
import glob
import json
import os
import time

import numpy as np
import timm
import torch
from astropy.io import fits
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset


class BlindObjects(Dataset):
    """One blind object per item: the 5 band images of object_<n>, cleaned and standardised."""

    def __init__(self, blind_dir, ids):
        self.blind_dir, self.ids = blind_dir, ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        prefix = os.path.join(self.blind_dir, self.ids[i])
        x = np.stack([np.asarray(fits.getdata(f"{prefix}_{b}.fits"), dtype=np.float32) for b in "grizy"])
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        s = x.std()
        x = (x - x.mean()) / s if s > 1e-9 else x
        return torch.from_numpy(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("blind")
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    t0 = time.perf_counter()
    cfg = json.load(open(os.path.join(a.run, "config.json")))
    model = timm.create_model(cfg["model"], pretrained=False, in_chans=5, num_classes=1)
    model.load_state_dict(load_file(os.path.join(a.run, "model.safetensors")))
    model.eval()
    ids = sorted({os.path.basename(p)[: -len("_g.fits")] for p in glob.glob(os.path.join(a.blind, "*_g.fits"))})
    loader = DataLoader(BlindObjects(a.blind, ids), batch_size=a.batch, shuffle=False, num_workers=a.num_workers)
    preds, t_model = [], 0.0
    for x in loader:
        t = time.perf_counter()
        with torch.inference_mode():
            logits = torch.stack([model(v).squeeze(1) for v in (x, x.flip(3), x.flip(2))]).mean(0)
        t_model += time.perf_counter() - t
        preds.extend(torch.sigmoid(logits).tolist())
    with open(a.out, "w") as f:
        f.write("id,pred\n")
        for k, p in zip(ids, preds):
            f.write(f"{k},{p:.6f}\n")
    print(len(ids), time.perf_counter() - t0, t_model)


if __name__ == "__main__":
    main()

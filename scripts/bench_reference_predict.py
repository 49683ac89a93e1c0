"""The reference's predict path, for scripts/bench-infer.sh: for each object of a blind directory, read the 5 band
files with astropy, stack, nan_to_num, standardise the cube; batch; a timm model carrying the run's weights
(model.safetensors has timm's key names, so it loads as it is); 3 views (original, horizontal and vertical flip),
fp32; average the logits; write id,pred = sigmoid(mean logit).
usage: bench_reference_predict.py BLIND_DIR RUN_DIR OUT_CSV [BATCH]   prints: objects seconds_total seconds_model"""
import glob
import json
import os
import sys
import time

import numpy as np
import timm
import torch
from astropy.io import fits
from safetensors.torch import load_file


def load_object(prefix):
    x = np.stack([np.asarray(fits.getdata(f"{prefix}_{b}.fits"), dtype=np.float32) for b in "grizy"])
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    s = x.std()
    return (x - x.mean()) / s if s > 1e-9 else x


def main():
    blind, run, out = sys.argv[1:4]
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    t0 = time.perf_counter()
    cfg = json.load(open(os.path.join(run, "config.json")))
    model = timm.create_model(cfg["model"], pretrained=False, in_chans=5, num_classes=1)
    model.load_state_dict(load_file(os.path.join(run, "model.safetensors")))
    model.eval()
    ids = sorted({os.path.basename(p)[: -len("_g.fits")] for p in glob.glob(os.path.join(blind, "*_g.fits"))})
    preds, t_model = [], 0.0
    for i in range(0, len(ids), batch):
        x = torch.from_numpy(np.stack([load_object(os.path.join(blind, k)) for k in ids[i : i + batch]]))
        t = time.perf_counter()
        with torch.inference_mode():
            logits = torch.stack([model(v).squeeze(1) for v in (x, x.flip(3), x.flip(2))]).mean(0)
        t_model += time.perf_counter() - t
        preds.extend(torch.sigmoid(logits).tolist())
    with open(out, "w") as f:
        f.write("id,pred\n")
        for k, p in zip(ids, preds):
            f.write(f"{k},{p:.6f}\n")
    print(len(ids), time.perf_counter() - t0, t_model)


if __name__ == "__main__":
    main()

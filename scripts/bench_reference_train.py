"""The reference recipe in PyTorch, for scripts/bench-train.sh: timm model, a Dataset over the pack's images.npy
(memory-mapped with numpy) doing random flips and rot90 per image as the reference's transforms do, DataLoader,
BCE-with-logits, AdamW (lr 1e-4, weight decay 1e-2), cosine annealing stepped per batch, over the first 80% of the
pack (the same images and amount of work as lens-train's 80/20 split, not the same split).

Two ways to run it:
- as the reference runs on a CPU (`bf16 contiguous --adamw plain`): Lightning's `precision="16-mixed"` becomes bf16
  autocast on a CPU (Lightning warns that fp16 AMP is not supported there and switches), the model in the default
  contiguous layout, and `torch.optim.AdamW` as constructed by default, which on a CPU is the plain per-tensor loop
  (no `foreach`, no `fused`);
- PyTorch at its best: `--adamw fused` (`torch.optim.AdamW(fused=True)`, the kernel lensfind also uses) at each of
  fp32/bf16 and contiguous/channels_last; bench-train.sh reports the best.

usage: bench_reference_train.py PACK MODEL BATCH EPOCHS fp32|bf16 contiguous|channels_last [--adamw plain|fused]
       [--workers N]
Each epoch ends with a validation pass over the other 20% (batches of BATCH under torch.inference_mode(), as
Lightning's validation loop runs, with the same autocast), as lens-train validates after each epoch.

prints: training images/second of the training loop alone, then of whole epochs (loop and validation), as
lens-train's timing.csv has them (train_images_per_s, epoch_images_per_s)"""
import argparse
import csv
import os
import time

import numpy as np
import timm
import torch
from torch.utils.data import DataLoader, Dataset


class PackDataset(Dataset):
    def __init__(self, pack, rows, augment=True):
        self.augment = augment
        self.images = np.load(os.path.join(pack, "images.npy"), mmap_mode="r")
        with open(os.path.join(pack, "meta.csv")) as f:
            self.labels = [float(r["label"]) for r in csv.DictReader(f)]
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        x = torch.from_numpy(np.array(self.images[r], dtype=np.float32))
        if not self.augment:
            return x, torch.tensor(self.labels[r], dtype=torch.float32)
        if torch.rand(1).item() < 0.5:
            x = x.flip(2)
        if torch.rand(1).item() < 0.5:
            x = x.flip(1)
        x = torch.rot90(x, int(torch.randint(0, 4, (1,)).item()), (1, 2))
        return x, torch.tensor(self.labels[r], dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pack")
    ap.add_argument("model")
    ap.add_argument("batch", type=int)
    ap.add_argument("epochs", type=int)
    ap.add_argument("precision", choices=["fp32", "bf16"])
    ap.add_argument("layout", choices=["contiguous", "channels_last"])
    ap.add_argument("--adamw", choices=["plain", "fused"], default="plain")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: they would compete for 2 cores)")
    a = ap.parse_args()
    pack, name, batch, epochs, precision, layout = a.pack, a.model, a.batch, a.epochs, a.precision, a.layout
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0)
    n = len(np.load(os.path.join(pack, "images.npy"), mmap_mode="r"))
    rows = list(range(0, n))[: int(n * 0.8)]
    val_rows = list(range(0, n))[int(n * 0.8):]
    val_loader = DataLoader(PackDataset(pack, val_rows, augment=False), batch_size=batch, shuffle=False,
                            num_workers=a.workers)
    loader = DataLoader(PackDataset(pack, rows), batch_size=batch, shuffle=True, num_workers=a.workers,
                        drop_last=False)
    model = timm.create_model(name, pretrained=False, in_chans=5, num_classes=1)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    if a.adamw == "fused":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2, fused=True)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
        assert not opt.defaults.get("fused") and not opt.defaults.get("foreach"), "the default is the plain loop"
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    seen, t, loop = 0, time.perf_counter(), 0.0
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        for x, y in loader:
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model(x).squeeze(1)
            loss = loss_fn(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
        loop += time.perf_counter() - started
        model.eval()
        with torch.inference_mode():
            val_loss = 0.0
            for x, y in val_loader:
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = model(x).squeeze(1)
                val_loss += loss_fn(out.float(), y).item() * len(y)
    print(f"{seen / loop:.1f} {seen / (time.perf_counter() - t):.1f}")


if __name__ == "__main__":
    main()

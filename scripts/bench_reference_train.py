"""The reference recipe in PyTorch, for scripts/bench-train.sh: timm model, a Dataset over the pack's images.npy
(memory-mapped with numpy) doing random flips and rot90 per image as the reference's transforms do, DataLoader,
BCE-with-logits, AdamW, cosine annealing stepped per batch. Trains on the same 80% of the pack that lens-train uses
by default would be a different split; the point is the same images and the same amount of work.
usage: bench_reference_train.py PACK MODEL BATCH EPOCHS fp32|bf16 contiguous|channels_last
prints: training images/second (the training loop only, as lens-train's timing.csv)"""
import csv
import os
import sys
import time

import numpy as np
import timm
import torch
from torch.utils.data import DataLoader, Dataset


class PackDataset(Dataset):
    def __init__(self, pack, rows):
        self.images = np.load(os.path.join(pack, "images.npy"), mmap_mode="r")
        with open(os.path.join(pack, "meta.csv")) as f:
            self.labels = [float(r["label"]) for r in csv.DictReader(f)]
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        x = torch.from_numpy(np.array(self.images[r], dtype=np.float32))
        if torch.rand(1).item() < 0.5:
            x = x.flip(2)
        if torch.rand(1).item() < 0.5:
            x = x.flip(1)
        x = torch.rot90(x, int(torch.randint(0, 4, (1,)).item()), (1, 2))
        return x, torch.tensor(self.labels[r], dtype=torch.float32)


def main():
    pack, name, batch, epochs, precision, layout = sys.argv[1:7]
    batch, epochs = int(batch), int(epochs)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0)
    n = len(np.load(os.path.join(pack, "images.npy"), mmap_mode="r"))
    rows = list(range(0, n))[: int(n * 0.8)]
    loader = DataLoader(PackDataset(pack, rows), batch_size=batch, shuffle=True, num_workers=0, drop_last=False)
    model = timm.create_model(name, pretrained=False, in_chans=5, num_classes=1)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    seen, t = 0, time.perf_counter()
    for _ in range(epochs):
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
    print(f"{seen / (time.perf_counter() - t):.1f}")


if __name__ == "__main__":
    main()

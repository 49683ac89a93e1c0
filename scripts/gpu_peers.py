"""PyTorch peers of lensfind on one GPU (scripts/gpu-check.sh run), on the same pack (images.npy + meta.csv), printing images/second.

  ref   the seed's recipe as it runs on a GPU: timm model, per-sample flips/rot90 in a Dataset over the images held in
        RAM (--cache-ratio 1), DataLoader with 4 workers and prefetch 4, batch 512, Lightning's "16-mixed" (fp16
        autocast + GradScaler), contiguous layout, AdamW, cosine per step.
  best  PyTorch at its plain best: the whole pack on the GPU, per-sample dihedral augmentation on the GPU, bf16
        autocast, channels-last, fused AdamW; optionally torch.compile.
  infer eval forward, bf16 autocast, channels-last, no grad, batch 1024, data on the GPU.

usage: peers.py PACK MODEL MODE [BATCH] [EPOCHS] [compile]"""
import csv, os, sys, time
import numpy as np, timm, torch
from torch.utils.data import DataLoader, Dataset

pack, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 512
epochs = int(sys.argv[5]) if len(sys.argv) > 5 else 2
compile_ = len(sys.argv) > 6 and sys.argv[6] == "compile"
x_all = np.load(os.path.join(pack, "images.npy"), mmap_mode="r")
y_all = np.array([float(r["label"]) for r in csv.DictReader(open(os.path.join(pack, "meta.csv")))], np.float32)
n = len(y_all)
size = 224 if "224" in name else x_all.shape[-1]
dev = torch.device("cuda")
torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
m = timm.create_model(name, pretrained=False, in_chans=5, num_classes=1).to(dev)
lf = torch.nn.BCEWithLogitsLoss()


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def resize(x):
    return x if size == x.shape[-1] else torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")


class DS(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if torch.rand(1) < 0.5: x = torch.flip(x, dims=(2,))
        if torch.rand(1) < 0.5: x = torch.flip(x, dims=(1,))
        k = int(torch.randint(0, 4, (1,)).item())
        if k: x = torch.rot90(x, k=k, dims=(1, 2))
        return x, self.y[i]


if mode == "ref":
    xs = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32))
    if size != xs.shape[-1]:  # the seed pre-resizes into its RAM cache
        xs = torch.cat([resize(xs[i:i + 2048]) for i in range(0, len(xs), 2048)])
    dl = DataLoader(DS(xs, torch.from_numpy(y_all)), batch_size=batch, shuffle=True, num_workers=4, prefetch_factor=4,
                    drop_last=True, persistent_workers=True)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=1e-2)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(dl) * epochs)
    scaler = torch.amp.GradScaler("cuda")
    m.train()
    for ep in range(epochs):
        seen, t = 0, sync_time()
        for x, y in dl:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.float16):
                out = m(x).squeeze(1)
            loss = lf(out.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); sch.step(); seen += len(y)
        print(f"peer ref {name} b{batch} epoch {ep}: {seen / (sync_time() - t):.0f} img/s")
elif mode == "best":
    xs = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32)).to(dev)
    ys = torch.from_numpy(y_all).to(dev)
    m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=5e-2, fused=True)
    step = torch.compile(m) if compile_ else m
    m.train()
    steps = n // batch
    for ep in range(epochs):
        perm = torch.randperm(n, device=dev)
        t = sync_time()
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            x, y = xs[idx], ys[idx]
            flip = torch.rand(batch, device=dev) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            rot = torch.rand(batch, device=dev) < 0.5
            x = torch.where(rot[:, None, None, None], x.transpose(2, 3), x)  # with the flip: all 8 dihedral views
            x = resize(x).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = step(x).squeeze(1)
            loss = lf(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward(); opt.step()
        print(f"peer best {name} b{batch}{' compiled' if compile_ else ''} epoch {ep}: "
              f"{steps * batch / (sync_time() - t):.0f} img/s")
    print(f"peer best {name} peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
elif mode == "infer":
    xs = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32)).to(dev)
    m = m.to(memory_format=torch.channels_last).eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for rep in range(2):
            t = sync_time()
            for s in range(0, n, batch):
                m(resize(xs[s:s + batch]).contiguous(memory_format=torch.channels_last))
            print(f"peer infer {name} b{batch} pass {rep}: {n / (sync_time() - t):.0f} img/s (one view)")

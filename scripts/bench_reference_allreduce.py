"""The reference side of scripts/bench-dist.sh: torch.distributed's Gloo all-reduce of convnext_tiny's gradient
size in DDP's 25 MB buckets between the processes torchrun starts; prints the median time per step on rank 0.
    torchrun --standalone --nproc-per-node 2 scripts/bench_reference_allreduce.py [NUMEL=27823969] [STEPS=20]"""
import sys
import time

import torch
import torch.distributed as dist

numel = int(sys.argv[1]) if len(sys.argv) > 1 else 27823969
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
dist.init_process_group("gloo")
buckets = list(torch.split(torch.randn(numel), 25 * 2**20 // 4))
times = []
for i in range(steps + 3):
    dist.barrier()
    t0 = time.perf_counter()
    for b in buckets:
        dist.all_reduce(b)
    if i >= 3:
        times.append(time.perf_counter() - t0)
if dist.get_rank() == 0:
    times.sort()
    print(f"torch.distributed all-reduce alone ({len(buckets)} buckets): median {times[len(times) // 2] * 1e3:.1f} ms")
dist.destroy_process_group()

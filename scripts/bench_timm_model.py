"""timm's side of scripts/bench-models.sh: images/second of a timm model in PyTorch eager, forward
(inference_mode) and forward+backward, at a precision (fp32, bf16 autocast) and memory format.
usage: bench_timm_model.py MODEL BATCH ITERS fp32|bf16 contiguous|channels_last   prints: fwd fwd_bwd"""
import os
import sys
import time

import timm
import torch


def main():
    model_name, batch, iters, precision, layout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.manual_seed(0)
    size = 41 if model_name.startswith("convnext") else 224
    model = timm.create_model(model_name, pretrained=False, in_chans=5, num_classes=1)
    x = torch.randn(batch, 5, size, size)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    def ctx():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def run(train):
        with ctx():
            if train:
                model.train()
                model(x).float().mean().backward()
            else:
                model.eval()
                with torch.inference_mode():
                    model(x)

    rates = []
    for train in (False, True):
        for _ in range(2):
            run(train)
        t = time.perf_counter()
        for _ in range(iters):
            run(train)
        rates.append(batch * iters / (time.perf_counter() - t))
    print(f"{rates[0]:.1f} {rates[1]:.1f}")


if __name__ == "__main__":
    main()

"""The ceiling that matrix products put on a ConvNeXt's inference on this CPU (scripts/bench-ceiling.sh).

Times, in libtorch through PyTorch, every MLP matrix product of a linear-MLP ConvNeXt (convnext_tiny and up: fc1
and fc2 of each block, on NHWC activations) at a 41x41 input and the given batch, in the three ways libtorch can
run them on a CPU: fp32 through MKL (what both lensfind and the reference run), fp32 with the weights packed once
for MKL (mkl::_mkl_linear), and int8 weights with dynamically quantised activations through FBGEMM
(quantized::linear_dynamic, per-channel weight scales, reduce_range as PyTorch's dynamic Linear calls it). Also the
peak of one large square fp32 matrix product, on 1 thread and on all. Prints Markdown; the int8 errors are relative
(Frobenius) errors of one layer's output on random N(0,1) inputs and N(0, 0.05^2) weights, not of a trained model.

    usage: bench_gemm_ceiling.py MODEL BATCH REPEATS THREADS
"""

import sys
import time
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")  # torch.ao's quantised tensors are deprecated; they still run in 2.13

MODELS = {  # timm's dims and depths; the stem (stride 4) and 3 downsamplings (stride 2) give the map sizes
    "convnext_tiny": ([96, 192, 384, 768], [3, 3, 9, 3]),
    "convnext_small": ([96, 192, 384, 768], [3, 3, 27, 3]),
    "convnext_base": ([128, 256, 512, 1024], [3, 3, 27, 3]),
}


def median_seconds(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[repeats // 2]


def main():
    model, batch, repeats, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.backends.quantized.engine = "fbgemm"
    torch.manual_seed(0)
    dims, depths = MODELS[model]
    side = 41 // 4
    print(f"{model} at 41x41, batch {batch}, {threads} torch threads, torch {torch.__version__}; median of {repeats}:")
    print()
    print("| layer | M x K x N | per image | fp32 ms | fp32 GFLOP/s | speed-up: packed weights | speed-up: int8 "
          "| int8 error |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    totals = {"fp32": 0.0, "packed": 0.0, "int8": 0.0}
    flops_total = 0.0
    for stage, (dim, depth) in enumerate(zip(dims, depths)):
        pixels = side * side
        for name, (k, n) in (("fc1", (dim, 4 * dim)), ("fc2", (4 * dim, dim))):
            m = batch * pixels
            x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.05, torch.randn(n)
            with torch.inference_mode():
                t32 = median_seconds(lambda: F.linear(x, w, b), repeats)
                packed = torch.ops.mkl._mkl_reorder_linear_weight(w, m)
                tpk = median_seconds(lambda: torch.ops.mkl._mkl_linear(x, packed, w, b, m), repeats)
                scales = (w.abs().amax(1) / 127).double()
                qw = torch.quantize_per_channel(w, scales, torch.zeros(n, dtype=torch.long), 0, torch.qint8)
                prepacked = torch.ops.quantized.linear_prepack(qw, b)
                tq = median_seconds(lambda: torch.ops.quantized.linear_dynamic(x, prepacked, True), repeats)
                y = F.linear(x, w, b)
                err = ((torch.ops.quantized.linear_dynamic(x, prepacked, True) - y).norm() / y.norm()).item()
            flops = 2.0 * m * k * n
            flops_total += flops * depth
            for key, t in (("fp32", t32), ("packed", tpk), ("int8", tq)):
                totals[key] += t * depth
            print(f"| stage {stage} {name} x{depth} | {m} x {k} x {n} | {pixels} pixel{'s' if pixels > 1 else ''} | {t32 * 1e3:.1f} "
                  f"| {flops / t32 / 1e9:.0f} | {t32 / tpk:.2f}x | {t32 / tq:.2f}x | {err:.3f} |")
        side //= 2
    fp32 = totals["fp32"]
    print(f"| all {sum(depths) * 2} | | | {fp32 * 1e3:.0f} | {flops_total / fp32 / 1e9:.0f} "
          f"| {fp32 / totals['packed']:.2f}x | {fp32 / totals['int8']:.2f}x | |")
    print()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peaks = []
    for t in sorted({1, threads}):
        torch.set_num_threads(t)
        peaks.append(f"{2 * 2048**3 / median_seconds(lambda: a @ b, repeats) / 1e9:.0f} GFLOP/s on {t} thread{'s' if t > 1 else ''}")
    print(f"Peak of one 2048x2048x2048 fp32 matrix product: {', '.join(peaks)}.")
    print()
    print(f"The MLP products alone take {fp32 * 1e3:.0f} ms per batch of {batch}: in fp32 no implementation of "
          f"{model} that runs them through MKL goes faster than {batch / fp32:.0f} images/s on this machine "
          f"(the other layers add to that time); packing the weights once changes it by "
          f"{fp32 / totals['packed']:.2f}x, int8 by {fp32 / totals['int8']:.2f}x.")


if __name__ == "__main__":
    main()

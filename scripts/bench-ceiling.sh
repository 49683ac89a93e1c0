#!/usr/bin/env bash
# What the matrix products of a linear-MLP ConvNeXt cost on this CPU, and so the most images/s any implementation
# of its inference can reach here in fp32 (scripts/bench_gemm_ceiling.py); with the two ways libtorch offers to go
# past it (MKL's packed weights, FBGEMM's int8). BENCHMARKS.md's inference section reads its figures beside
# lens-infer's.
#   usage: scripts/bench-ceiling.sh [MODEL=convnext_tiny] [BATCH=256] [REPEATS=7]
#   environment: THREADS (torch threads, default all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
MODEL=${1:-convnext_tiny}; BATCH=${2:-256}; REPEATS=${3:-7}
THREADS=${THREADS:-$(nproc)}
machine "$(torch_versions)"
echo
.venv/bin/python scripts/bench_gemm_ceiling.py "$MODEL" "$BATCH" "$REPEATS" "$THREADS"

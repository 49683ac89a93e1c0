#!/usr/bin/env bash
# Data-parallel lens-train on this machine's CPUs: training images/second of 1 process with THREADS threads and
# batch 2B against 2 processes (Gloo over loopback) with THREADS/2 threads and batch B each, the same global batch,
# ROUNDS times in turn (medians); then the time of the bucketed gradient all-reduce per step for MODEL's gradient
# between 2 processes (nn/examples/allreduce.rs), next to torch.distributed's Gloo all-reduce of the same buckets
# (scripts/bench_reference_allreduce.py under torchrun).
#   usage: scripts/bench-dist.sh [PACK=demo/train.pack] [MODEL=convnext_tiny] [BATCH=32] [ROUNDS=3]
#   environment: THREADS (default all cores), PRECISION (fp32), LAYOUT (contiguous): pinned, so that 1 and 2
#   processes run the same kernels (auto could choose differently for each); fp32 because it is fast on every CPU,
#   where bf16 crawls on CPUs without bf16 instructions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
PACK=${1:-demo/train.pack}; MODEL=${2:-convnext_tiny}; BATCH=${3:-32}; ROUNDS=${4:-3}
PRECISION=${PRECISION:-fp32}; LAYOUT=${LAYOUT:-contiguous}
THREADS=${THREADS:-$(nproc)}; HALF=$(( THREADS / 2 > 0 ? THREADS / 2 : 1 ))
[ -f "$PACK/pack.json" ] || { echo "no pack at $PACK (make demo makes demo/train.pack)" >&2; exit 2; }
cargo build -q --release --bins --examples
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
images_per_s() { awk -F, 'NR>1 {s+=$2; n+=$2*$3} END {printf "%.1f", n/s}' "$1/timing.csv"; }
common=(-q --pack "$PACK" --model "$MODEL" --epochs 1 --val-split 0.2 --device cpu --precision "$PRECISION"
  --memory-format "${LAYOUT/_/-}")
one() {
  rm -rf "$TMP/one"
  target/release/lens-train "${common[@]}" -j "$THREADS" --batch-size $((2 * BATCH)) --out "$TMP/one" 2>/dev/null
  images_per_s "$TMP/one"
}
two() {
  rm -rf "$TMP/two"; local p; p=$(port)
  for r in 1 0; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$p \
      target/release/lens-train "${common[@]}" -j "$HALF" --batch-size "$BATCH" --out "$TMP/two" 2>/dev/null &
  done
  wait
  images_per_s "$TMP/two"
}
machine "$(torch_versions)"
echo "pack: $PACK ($(grep -o '"count": [0-9]*' "$PACK/pack.json")), model $MODEL, global batch $((2 * BATCH)), 1 epoch, $PRECISION $LAYOUT, median of $ROUNDS rounds"
a=(); b=()
for r in $(seq "$ROUNDS"); do a+=("$(one)"); b+=("$(two)"); done
ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
echo
echo "| processes x threads | batch per process | images/s (median) | runs |"
echo "| --- | --- | --- | --- |"
printf '| 1 x %d | %d | %.0f | %s |\n' "$THREADS" $((2 * BATCH)) "$ma" "${a[*]}"
printf '| 2 x %d | %d | %.0f | %s |\n' "$HALF" "$BATCH" "$mb" "${b[*]}"
printf 'ratio 2 processes / 1 process: %.2f\n\n' "$(echo "$mb / $ma" | bc -l)"
p=$(port)
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$p OMP_NUM_THREADS=$HALF \
    target/release/examples/allreduce "$MODEL" 20 gloo cpu > "$TMP/ar.$r" &
done
wait
cat "$TMP/ar.0"
numel=$(sed -n 's/^[^:]*: \([0-9]*\) gradients.*/\1/p' "$TMP/ar.0")
OMP_NUM_THREADS=$HALF .venv/bin/torchrun --standalone --nproc-per-node 2 scripts/bench_reference_allreduce.py \
  "$numel" 20 2>/dev/null

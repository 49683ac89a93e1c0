#!/usr/bin/env bash
# The one prepared script for a machine with an NVIDIA GPU: builds with CUDA (the torch wheel is the CUDA build),
# checks that libtorch sees the GPU, then trains convnext_tiny@41 on a synthetic pack of >= 50k objects for 2
# epochs in bf16, prints what auto precision and memory format pick for convnext_tiny and convnext_atto at batch 256
# and 1024 and their speed, measures lens-infer for convnext_tiny@41 and vit_small@224, and prints images/second and GPU
# memory; then the c10d paths: NCCL (world size 1) and Gloo with 2 ranks on CUDA tensors (gradient all-reduce of
# convnext_tiny, and a 2-rank lens-train sharing the GPU). Meant to finish in a few minutes.
#   usage: scripts/gpu-check.sh [OBJECTS_PER_CLASS=12500]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-12500}
./scripts/setup.sh
. scripts/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
.venv/bin/python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
cargo build -q --release --bins --examples
BIN=target/release; W=$(mktemp -d)
$BIN/lens-synth -q --out "$W/data" --objects "$N" --seed 1
$BIN/lens-index -q "$W/data" -o "$W/index.csv"
$BIN/lens-pack -q "$W/index.csv" -o "$W/train.pack"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$W/gpu-mem.log" &
SMI=$!
for extra in "" "--data-on-device"; do
  rm -rf "$W/run"
  $BIN/lens-train -q --device cuda --pack "$W/train.pack" --out "$W/run" --model convnext_tiny --epochs 2 \
    --batch-size 256 --precision bf16 $extra
  echo "lens-train convnext_tiny bf16 ${extra:-(gathered from the mapped pack)}: images/s per epoch:"
  tail -n +2 "$W/run/timing.csv"
done
# What --precision auto --memory-format auto (the defaults) pick on this GPU, and what they then train at: one epoch
# each of convnext_tiny@41 and convnext_atto@41 at batch 256 and 1024 (the choice and every candidate's timing from
# config.json's autotune record; the cache kept out of the way so that each measures).
for model in convnext_tiny convnext_atto; do
  for batch in 256 1024; do
    rm -rf "$W/auto"
    XDG_CACHE_HOME="$W/cache" $BIN/lens-train -q --device cuda --pack "$W/train.pack" --out "$W/auto" \
      --model $model --epochs 1 --batch-size $batch --no-autotune-cache
    .venv/bin/python - "$W/auto/config.json" "$model" "$batch" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
a = cfg.get("autotune") or {}
print(f"auto {sys.argv[2]} batch {sys.argv[3]}: precision {cfg['precision']}, channels_last {cfg['channels_last']};",
      "candidates:", "; ".join(json.dumps(t, separators=(",", ":")) for t in a.get("timings", [])))
PY
    echo "  trained at (timing.csv): $(tail -n +2 "$W/auto/timing.csv")"
  done
done
# lens-infer on the GPU: convnext_tiny@41 (the run above) and vit_small@224 (one quick epoch on a small pack).
$BIN/lens-pack -q <(head -2001 "$W/index.csv") -o "$W/small.pack"
$BIN/lens-train -q --device cuda --pack "$W/small.pack" --out "$W/vit" --model vit_small_patch16_224 --epochs 1 \
  --batch-size 128 --precision bf16
for run in "$W/run" "$W/vit"; do
  for tta in none flips; do
    t0=$(date +%s.%N)
    $BIN/lens-infer -q --device cuda --run "$run" --pack "$W/train.pack" --tta $tta -o "$W/logits.csv"
    t1=$(date +%s.%N)
    printf 'lens-infer %s --tta %s: %.0f objects/s (whole process)\n' "$(basename "$run")" $tta \
      "$(echo "$(($(wc -l < "$W/logits.csv") - 1)) / ($t1 - $t0)" | bc -l)"
  done
done
# c10d on the GPU: NCCL with one rank, Gloo with two ranks on CUDA tensors (both on GPU 0).
MASTER_ADDR=127.0.0.1 MASTER_PORT=29731 target/release/examples/allreduce convnext_tiny 20 nccl cuda
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29732 \
    target/release/examples/allreduce convnext_tiny 20 gloo cuda &
done
wait
rm -rf "$W/ddp"
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29733 $BIN/lens-train -q --device cuda \
    --dist-backend gloo --pack "$W/small.pack" --out "$W/ddp" --model convnext_tiny --epochs 2 --batch-size 128 &
done
wait
echo "lens-train 2 ranks (gloo, CUDA tensors, one GPU) convnext_tiny: images/s per epoch:"
tail -n +2 "$W/ddp/timing.csv"
kill $SMI
echo "peak GPU memory used (MiB): $(sort -n "$W/gpu-mem.log" | tail -1)"
rm -rf "$W"

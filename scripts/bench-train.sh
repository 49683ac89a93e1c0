#!/usr/bin/env bash
# Training images/second of lens-train against the reference recipe in PyTorch (timm + DataLoader + AdamW + cosine,
# scripts/bench_reference_train.py) on the same pack, model and batch, side by side, ROUNDS times in turn; medians,
# ratios and peak memory (max RSS of the whole process). Two comparisons:
#  1. lens-train as it runs by default against the reference as it runs on a CPU: Lightning's precision="16-mixed"
#     is bf16 autocast there, the layout is contiguous, torch.optim.AdamW is the plain per-tensor loop;
#  2. lens-train against PyTorch at its best (torch.optim.AdamW(fused=True)), in each of fp32/bf16 x
#     contiguous/channels_last, and the best of PyTorch's four against lens-train's default.
#   usage: scripts/bench-train.sh [PACK=demo/train.pack] [MODEL=convnext_tiny] [BATCH=64] [EPOCHS=1] [ROUNDS=3]
#   environment: THREADS (torch threads, default all cores); BF16_ROUNDS (rounds of the bf16 runs, the reference's
#   included; default ROUNDS): on a CPU without bf16 instructions each bf16 run takes 10 to 20 times an fp32 one,
#   and the ratios they enter are far beyond the spread between rounds, so make bench runs them once there.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
PACK=${1:-demo/train.pack}; MODEL=${2:-convnext_tiny}; BATCH=${3:-64}; EPOCHS=${4:-1}; ROUNDS=${5:-3}
BF16_ROUNDS=${BF16_ROUNDS:-$ROUNDS}
export THREADS=${THREADS:-$(nproc)}
[ -f "$PACK/pack.json" ] || { echo "no pack at $PACK (make demo makes demo/train.pack)" >&2; exit 2; }
cargo build -q --release --bins
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
export XDG_CACHE_HOME="$TMP/cache"
SETTINGS=("fp32 contiguous" "fp32 channels_last" "bf16 contiguous" "bf16 channels_last")

ours() {  # [precision layout] (none: lens-train's defaults, auto) -> "loop_images/s epoch_images/s maxrss_kB"
  local flags=()
  if [ $# -eq 2 ]; then
    flags=(--precision "$1" --memory-format "${2/_/-}")
  fi
  rm -rf "$TMP/run"
  /usr/bin/time -f %M -o "$TMP/rss" target/release/lens-train -q -j "$THREADS" --pack "$PACK" --out "$TMP/run" \
    --model "$MODEL" --batch-size "$BATCH" --epochs "$EPOCHS" --val-split 0.2 "${flags[@]}" 2>/dev/null
  # Images over seconds summed over the epochs: the loop alone (columns 2, 3), whole epochs with validation and
  # saving (6, 7).
  echo "$(awk -F, 'NR>1 {s+=$2; n+=$2*$3; e+=$6; m+=$6*$7} END {printf "%.1f %.1f", n/s, m/e}' "$TMP/run/timing.csv") $(cat "$TMP/rss")"
}
torch_loop() {  # precision layout plain|fused -> "loop_images/s epoch_images/s maxrss_kB"
  local r
  r=$(/usr/bin/time -f %M -o "$TMP/rss" .venv/bin/python scripts/bench_reference_train.py "$PACK" "$MODEL" "$BATCH" \
    "$EPOCHS" "$1" "$2" --adamw "$3")
  echo "$r $(cat "$TMP/rss")"
}
# Results by key: images/s of the loop and of whole epochs, and peak RSS, of each round.
declare -A LOOP RATE RSS
record() { LOOP[$1]+="$2 "; RATE[$1]+="$3 "; RSS[$1]+="$4 "; }
for r in $(seq "$ROUNDS"); do
  set -- $(ours); record default "$@"
  if [ "$r" -le "$BF16_ROUNDS" ]; then
    set -- $(torch_loop bf16 contiguous plain); record reference "$@"
  fi
  for s in "${SETTINGS[@]}"; do
    [ "${s%% *}" = bf16 ] && [ "$r" -gt "$BF16_ROUNDS" ] && continue
    set -- $(ours $s); record "ours $s" "$@"
    set -- $(torch_loop $s fused); record "torch $s" "$@"
  done
done
rate() { printf '%s\n' ${RATE[$1]} | median; }
loop() { printf '%s\n' ${LOOP[$1]} | median; }
mb() { echo $(( $(printf '%s\n' ${RSS[$1]} | median | cut -d. -f1) / 1024 )); }

machine "$(torch_versions); torch threads: $THREADS"
echo "pack: $PACK ($(grep -o '"count": [0-9]*' "$PACK/pack.json")), model $MODEL, batch $BATCH, $EPOCHS epoch(s) over 80% each followed by validation over 20%; training images per second of whole epochs (validation and saving included: timing.csv's epoch_images_per_s) and, in brackets, of the training loop alone; median of $ROUNDS rounds$([ "$BF16_ROUNDS" != "$ROUNDS" ] && echo " ($BF16_ROUNDS for the bf16 runs, the reference's included)"). lens-train's auto choice is measured in the first round and cached for the others (\$XDG_CACHE_HOME in a temporary directory), as on a user's machine"
echo
echo "lens-train as it runs by default (--precision auto --memory-format auto) against the reference as it runs on a CPU (bf16 autocast, contiguous, plain AdamW):"
echo
echo "| | lens-train (defaults) | reference | ratio | lens-train peak RSS | reference peak RSS |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '| %s | %.0f img/s (%.0f) | %.0f img/s (%.0f) | %.2f (%.2f) | %d MB | %d MB |\n' "$MODEL" "$(rate default)" \
  "$(loop default)" "$(rate reference)" "$(loop reference)" "$(echo "$(rate default) / $(rate reference)" | bc -l)" \
  "$(echo "$(loop default) / $(loop reference)" | bc -l)" "$(mb default)" "$(mb reference)"
echo
echo "Against PyTorch at its best (torch.optim.AdamW(fused=True)) in each setting:"
echo
echo "| precision | layout | lens-train img/s | PyTorch fused img/s | ratio | lens-train peak RSS | PyTorch peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
best=""; best_rate=0
for s in "${SETTINGS[@]}"; do
  o=$(rate "ours $s"); p=$(rate "torch $s")
  printf '| %s | %s | %.0f (%.0f) | %.0f (%.0f) | %.2f | %d MB | %d MB |\n' $s "$o" "$(loop "ours $s")" "$p" \
    "$(loop "torch $s")" "$(echo "$o / $p" | bc -l)" "$(mb "ours $s")" "$(mb "torch $s")"
  if [ "$(echo "$p > $best_rate" | bc -l)" = 1 ]; then best="$s"; best_rate=$p; fi
done
echo
printf 'PyTorch at its best: %.0f img/s (%s, fused AdamW); lens-train with its defaults: %.0f img/s, %.2fx\n' \
  "$best_rate" "$best" "$(rate default)" "$(echo "$(rate default) / $best_rate" | bc -l)"

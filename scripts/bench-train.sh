#!/usr/bin/env bash
# Training images/second of lens-train against the reference recipe in PyTorch (timm + DataLoader + AdamW + cosine,
# scripts/bench_reference_train.py) on the same pack, model, batch and precision, side by side, ROUNDS times in
# turn; prints medians, ratios and peak memory (max RSS of the whole process).
#   usage: scripts/bench-train.sh [PACK=demo/train.pack] [MODEL=convnext_tiny] [BATCH=64] [EPOCHS=1] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
PACK=${1:-demo/train.pack}; MODEL=${2:-convnext_tiny}; BATCH=${3:-64}; EPOCHS=${4:-1}; ROUNDS=${5:-3}
export THREADS=${THREADS:-$(nproc)}
[ -f "$PACK/pack.json" ] || { echo "no pack at $PACK (make demo makes demo/train.pack)" >&2; exit 2; }
cargo build -q --release --bins
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ours() {  # precision layout -> "images/s maxrss_kB"
  local flags=(--precision "$1"); [ "$2" = contiguous ] && flags+=(--no-channels-last)
  rm -rf "$TMP/run"
  /usr/bin/time -f %M -o "$TMP/rss" target/release/lens-train -q -j "$THREADS" --pack "$PACK" --out "$TMP/run" \
    --model "$MODEL" --batch-size "$BATCH" --epochs "$EPOCHS" --val-split 0.2 "${flags[@]}" 2>/dev/null
  echo "$(awk -F, 'NR>1 {s+=$2; n+=$2*$3} END {printf "%.1f", n/s}' "$TMP/run/timing.csv") $(cat "$TMP/rss")"
}
reference() {
  local r; r=$(/usr/bin/time -f %M -o "$TMP/rss" .venv/bin/python scripts/bench_reference_train.py "$PACK" "$MODEL" "$BATCH" "$EPOCHS" "$1" "$2")
  echo "$r $(cat "$TMP/rss")"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); torch threads: $THREADS"
echo "pack: $PACK ($(grep -o '"count": [0-9]*' "$PACK/pack.json")), model $MODEL, batch $BATCH, $EPOCHS epoch(s), median of $ROUNDS rounds"
echo
echo "| precision | layout | lens-train img/s | reference img/s | ratio | lens-train peak RSS | reference peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for setting in "fp32 contiguous" "bf16 channels_last"; do
  o=(); p=(); om=(); pm=()
  for r in $(seq "$ROUNDS"); do
    set -- $(ours $setting); o+=("$1"); om+=("$2")
    set -- $(reference $setting); p+=("$1"); pm+=("$2")
  done
  mo=$(printf '%s\n' "${o[@]}" | median); mp=$(printf '%s\n' "${p[@]}" | median)
  printf '| %s | %s | %.0f | %.0f | %.2f | %d MB | %d MB |\n' $setting "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)" \
    $(( $(printf '%s\n' "${om[@]}" | median | cut -d. -f1) / 1024 )) $(( $(printf '%s\n' "${pm[@]}" | median | cut -d. -f1) / 1024 ))
done

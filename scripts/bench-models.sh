#!/usr/bin/env bash
# Images/second of lensfind's model against timm's in PyTorch eager on the same CPU, side by side: forward
# (inference) and forward+backward, fp32 and bf16 autocast, contiguous and channels_last. Each setting runs ROUNDS
# times, alternating ours and timm's; prints medians and ratios.
#   usage: scripts/bench-models.sh [MODEL=convnext_tiny] [BATCH=64] [ITERS=10] [ROUNDS=3]
#   environment: THREADS (default all cores); BF16_ROUNDS (rounds of the bf16 settings, default ROUNDS; make bench
#   sets 1 on CPUs without bf16 instructions, where those runs take 10 to 20 times longer)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
MODEL=${1:-convnext_tiny}; BATCH=${2:-64}; ITERS=${3:-10}; ROUNDS=${4:-3}
BF16_ROUNDS=${BF16_ROUNDS:-$ROUNDS}
export THREADS=${THREADS:-$(nproc)}
cargo build -q --release -p lensfind-nn --example bench_models
OURS=target/release/examples/bench_models
machine "$(torch_versions); torch threads: $THREADS"
echo "model: $MODEL, batch $BATCH, $ITERS iterations after 2 warm-up, median of $ROUNDS alternating rounds$([ "$BF16_ROUNDS" != "$ROUNDS" ] && echo " ($BF16_ROUNDS for bf16)")"
echo
echo "| precision | layout | fwd ours | fwd timm | ours/timm | fwd+bwd ours | fwd+bwd timm | ours/timm |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for precision in fp32 bf16; do
  for layout in contiguous channels_last; do
    of=(); ob=(); tf=(); tb=()
    rounds=$ROUNDS; [ $precision = bf16 ] && rounds=$BF16_ROUNDS
    for r in $(seq "$rounds"); do
      # $(...) waits for the process to exit; `read < <(...)` would not, and the next run would overlap
      # with Python's teardown.
      out=$($OURS "$MODEL" "$BATCH" "$ITERS" $precision $layout); of+=("${out% *}"); ob+=("${out#* }")
      out=$(.venv/bin/python scripts/bench_timm_model.py "$MODEL" "$BATCH" "$ITERS" $precision $layout)
      tf+=("${out% *}"); tb+=("${out#* }")
    done
    mof=$(printf '%s\n' "${of[@]}" | median); mob=$(printf '%s\n' "${ob[@]}" | median)
    mtf=$(printf '%s\n' "${tf[@]}" | median); mtb=$(printf '%s\n' "${tb[@]}" | median)
    printf '| %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n' $precision $layout "$mof" "$mtf" \
      "$(echo "$mof / $mtf" | bc -l)" "$mob" "$mtb" "$(echo "$mob / $mtb" | bc -l)"
  done
done

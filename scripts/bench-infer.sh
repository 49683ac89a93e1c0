#!/usr/bin/env bash
# From a directory of blind-format FITS files to submission.csv: lens-index + lens-pack + lens-infer (TTA flips) +
# lens-ensemble against the reference's predict path in PyTorch as its users run it
# (scripts/bench_reference_predict.py: a DataLoader with REF_WORKERS worker processes, 2 by default, reading each
# object with astropy; 3 views, fp32), with the same trained weights, side by side, ROUNDS times in turn; medians.
# Also the inference images/second of both (lens-infer's whole process; the reference's model calls only). Needs a
# run (make demo makes demo/runs/atto).
#   usage: scripts/bench-infer.sh [RUN=demo/runs/atto] [OBJECTS_PER_CLASS=2500] [ROUNDS=3]
#   environment: THREADS (torch threads, default all cores), REF_WORKERS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
RUN=${1:-demo/runs/atto}; N=${2:-2500}; ROUNDS=${3:-3}
export THREADS=${THREADS:-$(nproc)}
REF_WORKERS=${REF_WORKERS:-2}
[ -f "$RUN/model.safetensors" ] || { echo "no trained run at $RUN (make demo makes one)" >&2; exit 2; }
cargo build -q --release --bins
BIN=target/release; DIR=bench/infer-$N
if [ ! -f "$DIR/blind/labels.csv" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  $BIN/lens-synth -q --out "$DIR/blind" --objects "$N" --seed 11 --blind
fi
cat "$DIR"/blind/*.fits > /dev/null   # warm the page cache for both
ours=(); ref=(); ours_inf=(); ref_inf=()
for r in $(seq "$ROUNDS"); do
  rm -rf "$DIR/test.pack"
  t0=$(now)
  $BIN/lens-index -q "$DIR/blind" -o "$DIR/index.csv" 2>/dev/null
  $BIN/lens-pack -q "$DIR/index.csv" -o "$DIR/test.pack" 2>/dev/null
  t1=$(now)
  $BIN/lens-infer -q --run "$RUN" --pack "$DIR/test.pack" --tta flips -o "$DIR/ours.logits.csv"
  t2=$(now)
  $BIN/lens-ensemble "$DIR/ours.logits.csv" -o "$DIR/ours.submission.csv"
  t3=$(now)
  ours+=("$(echo "$t3 - $t0" | bc -l)"); ours_inf+=("$(echo "$t2 - $t1" | bc -l)")
  # $(...) waits for Python (and its DataLoader workers) to exit before the next timed run.
  out=$(.venv/bin/python scripts/bench_reference_predict.py "$DIR/blind" "$RUN" "$DIR/ref.submission.csv" \
    --num-workers "$REF_WORKERS")
  set -- $out; ref+=("$2"); ref_inf+=("$3"); OBJ=$1
done
o=$(printf '%s\n' "${ours[@]}" | median); p=$(printf '%s\n' "${ref[@]}" | median)
oi=$(printf '%s\n' "${ours_inf[@]}" | median); pi=$(printf '%s\n' "${ref_inf[@]}" | median)
machine "$(torch_versions); torch threads: $THREADS"
echo "run: $RUN ($(grep -o '"model": "[a-z_0-9]*"' "$RUN/config.json")), $OBJ blind objects ($((OBJ * 5)) FITS files, warm page cache), 3 views, median of $ROUNDS rounds"
echo
echo "| | lensfind | reference (DataLoader, $REF_WORKERS workers) | ratio |"
echo "| --- | --- | --- | --- |"
printf '| end to end, FITS directory to submission.csv | %.2f s | %.2f s | %.1fx |\n' "$o" "$p" "$(echo "$p / $o" | bc -l)"
printf '| inference, 3 views per image | %.0f images/s (whole lens-infer process, its defaults) | %.0f images/s (model calls only, fp32) | %.1fx |\n' \
  "$(echo "$OBJ / $oi" | bc -l)" "$(echo "$OBJ / $pi" | bc -l)" "$(echo "$pi / $oi" | bc -l)"
echo
.venv/bin/python - "$DIR" <<'PY'
import csv, sys
d = sys.argv[1]
a = {r["id"]: float(r["pred"]) for r in csv.DictReader(open(f"{d}/ours.submission.csv"))}
b = {r["id"]: float(r["pred"]) for r in csv.DictReader(open(f"{d}/ref.submission.csv"))}
diff = max(abs(a[k] - b[k]) for k in b)
print(f"same ids: {set(a) == set(b)}; max |pred difference| (lens-infer's defaults vs the fp32 reference): {diff:.4f}")
PY

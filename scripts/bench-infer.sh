#!/usr/bin/env bash
# From a directory of blind-format FITS files to submission.csv: lens-index + lens-pack + lens-infer (TTA flips) +
# lens-ensemble against the reference's predict path in PyTorch (scripts/bench_reference_predict.py: astropy per
# object, 3 views, fp32), with the same trained weights, side by side, ROUNDS times in turn; medians. Also the pure
# inference images/second of both (model time only). Needs a run (make demo makes demo/runs/atto).
#   usage: scripts/bench-infer.sh [RUN=demo/runs/atto] [OBJECTS_PER_CLASS=2500] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RUN=${1:-demo/runs/atto}; N=${2:-2500}; ROUNDS=${3:-3}
export THREADS=${THREADS:-$(nproc)}
[ -f "$RUN/model.safetensors" ] || { echo "no trained run at $RUN (make demo makes one)" >&2; exit 2; }
cargo build -q --release --bins
BIN=target/release; DIR=bench/infer-$N
if [ ! -f "$DIR/blind/labels.csv" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  $BIN/lens-synth -q --out "$DIR/blind" --objects "$N" --seed 11 --blind
fi
cat "$DIR"/blind/*.fits > /dev/null   # warm the page cache for both
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
ours=(); ref=(); ours_inf=(); ref_inf=()
for r in $(seq "$ROUNDS"); do
  rm -rf "$DIR/test.pack"
  t0=$(now)
  $BIN/lens-index -q "$DIR/blind" -o "$DIR/index.csv"
  $BIN/lens-pack -q "$DIR/index.csv" -o "$DIR/test.pack"
  t1=$(now)
  $BIN/lens-infer -q --run "$RUN" --pack "$DIR/test.pack" --tta flips -o "$DIR/ours.logits.csv"
  t2=$(now)
  $BIN/lens-ensemble "$DIR/ours.logits.csv" -o "$DIR/ours.submission.csv"
  t3=$(now)
  ours+=("$(echo "$t3 - $t0" | bc -l)"); ours_inf+=("$(echo "$t2 - $t1" | bc -l)")
  out=$(.venv/bin/python scripts/bench_reference_predict.py "$DIR/blind" "$RUN" "$DIR/ref.submission.csv")
  set -- $out; ref+=("$2"); ref_inf+=("$3"); OBJ=$1
done
o=$(printf '%s\n' "${ours[@]}" | median); p=$(printf '%s\n' "${ref[@]}" | median)
oi=$(printf '%s\n' "${ours_inf[@]}" | median); pi=$(printf '%s\n' "${ref_inf[@]}" | median)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); torch threads: $THREADS"
echo "run: $RUN ($(grep -o '"model": "[a-z_0-9]*"' "$RUN/config.json")), $OBJ blind objects ($((OBJ * 5)) FITS files), 3 views, median of $ROUNDS"
printf 'end to end, FITS dir -> submission.csv: lensfind %.2f s, reference %.2f s: %.1fx\n' "$o" "$p" "$(echo "$p / $o" | bc -l)"
printf 'lens-infer (whole process, bf16 channels-last): %.0f images/s x 3 views; reference model time (fp32): %.0f images/s x 3 views\n' \
  "$(echo "$OBJ / $oi" | bc -l)" "$(echo "$OBJ / $pi" | bc -l)"
.venv/bin/python - "$DIR" <<'PY'
import csv, sys
d = sys.argv[1]
a = {r["id"]: float(r["pred"]) for r in csv.DictReader(open(f"{d}/ours.submission.csv"))}
b = {r["id"]: float(r["pred"]) for r in csv.DictReader(open(f"{d}/ref.submission.csv"))}
diff = max(abs(a[k] - b[k]) for k in b)
print(f"same ids: {set(a) == set(b)}; max |pred difference| (bf16 ours vs fp32 reference): {diff:.4f}")
PY

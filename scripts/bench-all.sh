#!/usr/bin/env bash
# `make bench`: every benchmark of BENCHMARKS.md on the machine at hand, in one report (bench/REPORT.md): lens-pack
# (warm and, as root, cold page cache), lens-index on a million files, the models against timm, lens-train against
# the reference (its own CPU setting, and PyTorch at its best; convnext_atto and convnext_tiny), 1 and 2 training
# processes, a FITS directory to a submission against the reference's predict path (both models) with the ceiling
# that matrix products put on convnext_tiny's inference on this CPU (bench-ceiling.sh), and the training
# recipes at equal wall-clock time; gpu-check.sh too where there is an NVIDIA GPU. Each section
# gives its command and output; every table starts with the CPU model and the date. The training and inference
# benchmarks use the demo's pack and run (make bench makes the demo first when they are missing). On a CPU without
# bf16 instructions (bench-common.sh's has_bf16_instructions) bf16 runs take 10 to 20 times an fp32 one, and
# the bf16 settings (the reference's training setting among them) run one round instead of several: their ratios
# are far beyond the spread between rounds. Run it on a quiet machine (figures measured while other jobs run are
# noise); the duration of each section is in the report.
#   usage: scripts/bench-all.sh [REPORT=bench/REPORT.md]
#   QUICK=1: every script once on tiny inputs (its own small demo under bench/quick), to check that they run; the
#   figures mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
REPORT=${1:-bench/REPORT.md}
mkdir -p "$(dirname "$REPORT")"
cargo build -q --release --bins --examples
BIN=target/release

if [ -n "${QUICK:-}" ]; then
  D=bench/quick
  if [ ! -f $D/runs/atto/model.safetensors ]; then
    rm -rf $D && mkdir -p $D
    $BIN/lens-synth -q --out $D/train --objects 40 --seed 1
    $BIN/lens-index -q $D/train -o $D/train.index.csv
    $BIN/lens-pack -q $D/train.index.csv -o $D/train.pack
    $BIN/lens-train -q --pack $D/train.pack --out $D/runs/atto --model convnext_atto --epochs 1 --batch-size 32
  fi
  PACK=$D/train.pack RUN=$D/runs/atto
  RUNS=(
    "scripts/bench-pack.sh 20 1 40"
    "scripts/bench-index.sh 2000 1"
    "scripts/bench-models.sh convnext_atto 8 1 1"
    "scripts/bench-train.sh $PACK convnext_atto 32 1 1"
    "scripts/bench-dist.sh $PACK convnext_atto 16 1"
    "scripts/bench-infer.sh $RUN 20 1"
    "scripts/bench-ceiling.sh convnext_tiny 8 1"
    "env OBJECTS=40 BLIND=40 EPOCHS=2 BATCH=32 DIR=$D/recipes scripts/bench-recipes.sh"
  )
else
  has_bf16_instructions || export BF16_ROUNDS=1
  PACK=demo/train.pack RUN=demo/runs/atto
  [ -f $PACK/pack.json ] && [ -f $RUN/model.safetensors ] || make demo
  # convnext_tiny trains at a few images/s in bf16 on a CPU without bf16 instructions, and the training comparison
  # runs the reference in bf16: its pack is 1,000 objects. Its inference comparison needs a convnext_tiny run; one
  # epoch is enough (speed does not depend on the weights).
  T=bench/tiny
  if [ ! -f $T/run/model.safetensors ]; then
    rm -rf $T && mkdir -p $T
    $BIN/lens-synth -q --out $T/train --objects 250 --seed 3
    $BIN/lens-index -q $T/train -o $T/train.index.csv 2> /dev/null
    $BIN/lens-pack -q $T/train.index.csv -o $T/train.pack 2> /dev/null
    $BIN/lens-train -q --pack $T/train.pack --out $T/run --model convnext_tiny --epochs 1 --batch-size 64 \
      --precision fp32 --memory-format contiguous
  fi
  RUNS=(
    "scripts/bench-pack.sh 5000 3 2000"
    "scripts/bench-index.sh 200000 3"
    "scripts/bench-models.sh convnext_tiny 64 3 5"
    "scripts/bench-train.sh $PACK convnext_atto 128 1 3"
    "scripts/bench-train.sh $T/train.pack convnext_tiny 128 1 5"
    "scripts/bench-dist.sh $PACK convnext_tiny 32 3"
    "scripts/bench-infer.sh $RUN 2500 3"
    "scripts/bench-infer.sh $T/run 2500 3"
    "scripts/bench-ceiling.sh convnext_tiny 256 7"
    "scripts/bench-recipes.sh"
  )
fi
if nvidia-smi -L > /dev/null 2>&1; then
  RUNS+=("scripts/gpu-check.sh")
fi

# Plain lines become paragraphs of their own, tables stay tables (Markdown joins adjacent lines otherwise).
as_markdown() {
  awk '/^\|/ { if (!table) print ""; table = 1; print; next }
       { if (table) print ""; table = 0; if (NF) { print; print "" } }'
}

# Each script builds what it runs, so an edit made during the run would be measured unannounced: the report says
# when the tree changed (a content hash of the tracked and untracked sources, checked after every section).
revision() { git describe --always --dirty 2>/dev/null || echo '?'; }
tree_state() { (revision; git status --porcelain 2>/dev/null | sort |
  while read -r _ f; do [ -f "$f" ] && sha1sum "$f"; done) | sha1sum | cut -c1-12; }
START=$(revision); STATE=$(tree_state)
TMP=$(mktemp); trap 'rm -f "$TMP"' EXIT
{
  echo "# lensfind benchmarks${QUICK:+ (QUICK: tiny inputs, to check the scripts; the figures mean nothing)}"
  echo
  machine
  echo
  [ -n "${BF16_ROUNDS:-}" ] && echo "No bf16 instructions on this CPU: the bf16 settings run $BF16_ROUNDS round (BF16_ROUNDS)." && echo
  echo "Made by \`make bench\` (scripts/bench-all.sh) in $START;"
  echo "each section is one script: its command, then its output."
} > "$TMP"
for cmd in "${RUNS[@]}"; do
  echo "bench: $cmd" >&2
  start=$(now)
  out=$($cmd 2>&1) || { echo "$out" >&2; echo "bench: $cmd failed" >&2; exit 2; }
  {
    echo
    echo "## \`$cmd\`"
    echo
    echo "$out" | as_markdown
    printf '\n(%.0f s)\n' "$(echo "$(now) - $start" | bc -l)"
    if [ "$(tree_state)" != "$STATE" ]; then
      printf '\n**The working tree changed during this section** (now %s): later sections measure other code.\n' \
        "$(revision)"
      STATE=$(tree_state)
    fi
  } >> "$TMP"
done
mv "$TMP" "$REPORT"
trap - EXIT
echo "bench: wrote $REPORT" >&2

#!/usr/bin/env bash
# Training recipes compared on the hard synthetic benchmark (lens-synth --difficulty hard): each preset of
# lens-train --recipe trains the same model on the same training set with the same epochs and the same wall-clock
# budget (--time-limit: a run stops at the end of the epoch after which another would pass the budget), then
# scores the blind set (its seeing/noise domain mix shifted from training's) with lens-infer and lens-eval. Prints
# a table: epochs done, training wall time, test AUC, TPR at FPR 1e-2 and 1e-3 (each run's lens-train log: RUN.train.log
# beside its run directory).
#   usage: scripts/bench-recipes.sh            (settings from the environment; defaults in brackets)
#   OBJECTS [2000]  training objects per directory (4 directories: 4 x OBJECTS, 20% held out for validation)
#   BLIND [1000]    blind objects per label (2 x BLIND: BLIND lenses and BLIND non-lenses)
#   MODEL [convnext_atto]  BATCH [128]  EPOCHS [50] (given to every preset, so that their schedules end alike)
#   BUDGET [match]  seconds of training per preset (--time-limit); BUDGET=match: the first recipe trains to its own
#                   end (early stopping included) and its training wall time is the budget of the others
#   RECIPES ["reference scratch"], plus finetune when PRETRAINED names a timm checkpoint (safetensors) of MODEL
#   PRECISION [fp32]  MEMORY_FORMAT [contiguous]: the same for every preset (auto would time itself per run)
#   TTA [flips]  SEED [1]  THREADS [all cores]  DIR [bench/recipes]: data and runs (the data is kept and reused)
#   TRAIN_SEEDS [SEED]: lens-train --seed of each run, several for the spread between seeds (the data's seed stays
#                   SEED; the split's is lens-train's default); with more than one, a line per recipe gives the mean
#                   and the sample standard deviation of each test figure
#   KEEP [0]        1: a run whose directory already holds its blind-set figures for this TTA is not trained
#                   again (its training time is read from RUN.seconds)
#   TRAIN_FLAGS []  more lens-train flags for every run (one lever measured alone); LABEL names the runs'
#                   directories and rows [the recipe's name]
#   STANDARDIZE [cube]  lens-pack --standardize of both packs (another than cube: packs of their own beside the
#                   default ones, made once)
#   BIN [target/release, built first]  where the tools are: a copy lets a long benchmark run while the tree is
#                   rebuilt
#   A quick check that it runs: OBJECTS=40 BLIND=40 EPOCHS=2 BATCH=32 scripts/bench-recipes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench-common.sh
OBJECTS=${OBJECTS:-2000}; BLIND=${BLIND:-1000}; MODEL=${MODEL:-convnext_atto}; BATCH=${BATCH:-128}
EPOCHS=${EPOCHS:-50}; BUDGET=${BUDGET:-match}; RECIPES=${RECIPES:-reference scratch}; PRECISION=${PRECISION:-fp32}
MEMORY_FORMAT=${MEMORY_FORMAT:-contiguous}; TTA=${TTA:-flips}; SEED=${SEED:-1}; THREADS=${THREADS:-$(nproc)}
DIR=${DIR:-bench/recipes}; PRETRAINED=${PRETRAINED:-}; TRAIN_SEEDS=${TRAIN_SEEDS:-$SEED}; KEEP=${KEEP:-0}
STANDARDIZE=${STANDARDIZE:-cube}
read -r -a TRAIN_FLAGS <<< "${TRAIN_FLAGS:-}"
if [ -n "$PRETRAINED" ]; then
  RECIPES="$RECIPES finetune"
fi
if [ -z "${BIN:-}" ]; then
  cargo build -q --release --bins
  BIN=target/release
fi

# The benchmark's data, made once per setting (the directory names say which).
DATA=$DIR/hard-$OBJECTS-$BLIND-$SEED
if [ ! -f "$DATA/blind.pack/pack.json" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA"
  $BIN/lens-synth -q --difficulty hard --out "$DATA/train" --objects "$OBJECTS" --seed "$SEED"
  $BIN/lens-synth -q --difficulty hard --out "$DATA/blind" --objects "$BLIND" --seed $((SEED + 1000)) --blind
  for set in train blind; do
    $BIN/lens-index -q "$DATA/$set" -o "$DATA/$set.index.csv" 2> /dev/null
    $BIN/lens-pack -q "$DATA/$set.index.csv" -o "$DATA/$set.pack" 2> /dev/null
  done
fi
PACKS=""
if [ "$STANDARDIZE" != cube ]; then
  PACKS=".$STANDARDIZE"
  for set in train blind; do
    if [ ! -f "$DATA/$set$PACKS.pack/pack.json" ]; then
      $BIN/lens-pack -q --standardize "$STANDARDIZE" "$DATA/$set.index.csv" -o "$DATA/$set$PACKS.pack" 2> /dev/null
    fi
  done
fi

metric() { .venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['all'][sys.argv[2]])" "$@"; }
ROWS=()
SPREAD=()
for recipe in $RECIPES; do
 FIGURES=()
 for train_seed in $TRAIN_SEEDS; do
  label=${LABEL:-$recipe}
  run=$DIR/runs/$label-$OBJECTS-$SEED-$train_seed
  logits=$run/blind.$TTA.logits.csv
  figures_json=$run/blind.$TTA.metrics.json
  extra=("${TRAIN_FLAGS[@]}")
  if [ "$recipe" = finetune ]; then
    extra=(--pretrained "$PRETRAINED")
  fi
  if [ "$BUDGET" != match ]; then
    extra+=(--time-limit "$BUDGET")
  fi
  if [ "$KEEP" = 1 ] && [ -f "$run/model.safetensors" ] && [ -f "$run.seconds" ]; then
    seconds=$(cat "$run.seconds")
  else
    rm -rf "$run"
    mkdir -p "$(dirname "$run")"
    start=$(now)
    $BIN/lens-train -q -j "$THREADS" --pack "$DATA/train$PACKS.pack" --out "$run" --model "$MODEL" --recipe "$recipe" \
      --batch-size "$BATCH" --epochs "$EPOCHS" --seed "$train_seed" --precision "$PRECISION" \
      --memory-format "$MEMORY_FORMAT" "${extra[@]}" 2> "$run.train.log" || { cat "$run.train.log" >&2; exit 2; }
    seconds=$(echo "$(now) - $start" | bc -l)
    echo "$seconds" > "$run.seconds"
  fi
  longest=$(echo "if (${longest:-0} > $seconds) ${longest:-0} else $seconds" | bc -l)
  if [ ! -f "$figures_json" ]; then
    $BIN/lens-infer -q -j "$THREADS" --run "$run" --pack "$DATA/blind$PACKS.pack" --tta "$TTA" -o "$logits"
    $BIN/lens-eval --pred "$logits" --truth "$DATA/blind/labels.csv" > "$figures_json.tmp" 2> /dev/null
    mv "$figures_json.tmp" "$figures_json"
  fi
  done_epochs=$(($(wc -l < "$run/metrics.csv") - 1))
  lr=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['lr'])" "$run/config.json")
  figures="$(metric "$figures_json" auc) $(metric "$figures_json" tpr_at_fpr_1e2) $(metric "$figures_json" tpr_at_fpr_1e3)"
  FIGURES+=("$figures")
  read -r auc tpr2 tpr3 <<< "$figures"
  ROWS+=("$(printf '| %s | %s | %s | %d/%d | %.0f s | %.4f | %.3f | %.3f |' "$label" "$train_seed" "$lr" \
    "$done_epochs" "$EPOCHS" "$seconds" "$auc" "$tpr2" "$tpr3")")
 done
 # The first recipe, every seed to its end; the others within its longest wall time.
 if [ "$BUDGET" = match ]; then
  BUDGET=$(printf '%.0f' "$longest")
  BUDGET_NOTE="the first recipe to its end, the others within its longest wall time (${BUDGET} s)"
 fi
 if [ "${#FIGURES[@]}" -gt 1 ]; then
  SPREAD+=("$(printf '%s\n' "${FIGURES[@]}" | .venv/bin/python -c "
import statistics as s, sys
cols = list(zip(*(map(float, l.split()) for l in sys.stdin if l.strip())))
print('| $label | mean of ' + str(len(cols[0])) + ' seeds | | | | ' + ' | '.join(
    f'{s.mean(c):.4f} ± {s.stdev(c):.4f}' for c in cols) + ' |')")")
 fi
done

machine "threads: $THREADS"
echo "hard synthetic benchmark (lens-synth --difficulty hard, seed $SEED): $((4 * OBJECTS)) training objects (20% held out for validation), $((2 * BLIND)) blind ($BLIND lenses; domain mix shifted); $MODEL, batch $BATCH, $PRECISION $MEMORY_FORMAT, $EPOCHS epochs or ${BUDGET_NOTE:-${BUDGET} s of training each}, whichever ends first; test-time augmentation $TTA; packs standardised $STANDARDIZE${TRAIN_FLAGS[*]:+; lens-train ${TRAIN_FLAGS[*]}}"
echo
echo "| recipe | seed | lr | epochs | training wall time | test AUC | TPR@FPR 1e-2 | TPR@FPR 1e-3 |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
if [ "${#SPREAD[@]}" -gt 0 ]; then
  printf '%s\n' "${SPREAD[@]}"
fi

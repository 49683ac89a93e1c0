#!/usr/bin/env bash
# Scale: lens-index and lens-pack on training-layout trees of N objects (5N files) for each N in SIZES, with wall
# time and peak memory (/usr/bin/time -v). Shows that time grows linearly and that memory does not hold the images
# (a pack of 200k objects is 6.7 GB; lens-pack streams it in chunks of 1024 objects).
#
#   scripts/scale.sh ["40000 100000 200000"] [UNIQUE=10000]
#
# lens-synth writes UNIQUE distinct objects once (about 20 kB per file); each tree is made of hard links to them
# under N distinct names, so a million files cost directory entries, not 20 GB of disk. Every file is still
# opened, read and parsed by lens-pack; since the same 5*UNIQUE files are read over and over, they are in the page
# cache after the first pass: the figures are for a warm cache (CPU-bound), not for disk reads.
# Work directory: $SCALE_DIR (default bench/scale); trees and packs are deleted after each size.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-"40000 100000 200000"}
UNIQUE=${2:-10000}
WORK=${SCALE_DIR:-bench/scale}
BIN=target/release
. scripts/env.sh
cargo build -q --release -p lens-synth -p lens-index -p lens-pack
mkdir -p "$WORK"

if [ ! -f "$WORK/unique/.complete" ]; then
  rm -rf "$WORK/unique"
  t0=$(date +%s.%N)
  $BIN/lens-synth -q --objects $((UNIQUE / 4)) --seed 1 --out "$WORK/unique"
  t1=$(date +%s.%N)
  printf 'lens-synth: %d objects (%d files) in %.1f s\n' "$UNIQUE" $((5 * UNIQUE)) "$(echo "$t1 - $t0" | bc -l)"
  touch "$WORK/unique/.complete"
fi

# Prints "<seconds> <max RSS in MB>" for a `/usr/bin/time -v` report.
measure() {
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$1" | awk '{print $NF}' | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(grep 'Maximum resident set size' "$1" | awk '{print int($NF / 1024)}')
  echo "$wall $rss"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '| objects | files | lens-index s | lens-index MB | lens-pack s | lens-pack MB | objects/s | pack GB |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for N in $SIZES; do
  tree="$WORK/tree-$N"
  rm -rf "$tree"
  python3 - "$WORK/unique" "$tree" "$N" "$UNIQUE" <<'PY'
import os, sys
unique, tree, n, u = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for d, prefix in [("slsim_lenses", "D1_L"), ("slsim_nonlenses", "D1_N"), ("hsc_lenses", "D2_L"), ("hsc_nonlenses", "D2_N")]:
    os.makedirs(os.path.join(tree, d))
    for i in range(n // 4):
        for b in "grizy":
            src = os.path.join(unique, d, f"{prefix}_{i % (u // 4):08d}_{b}.fits")
            os.link(src, os.path.join(tree, d, f"{prefix}_{i:08d}_{b}.fits"))
PY
  files=$(find "$tree" -name '*.fits' | wc -l)
  /usr/bin/time -v $BIN/lens-index -q "$tree" -o "$WORK/index-$N.csv" 2> "$WORK/index-$N.time"
  read -r index_s index_mb < <(measure "$WORK/index-$N.time")
  /usr/bin/time -v $BIN/lens-pack -q "$WORK/index-$N.csv" -o "$WORK/pack-$N.pack" 2> "$WORK/pack-$N.time"
  read -r pack_s pack_mb < <(measure "$WORK/pack-$N.time")
  count=$(grep -m1 '"count"' "$WORK/pack-$N.pack/pack.json" | tr -dc 0-9)
  [ "$count" -eq "$N" ] || { echo "pack of $N objects holds $count" >&2; exit 1; }
  gb=$(echo "$(stat -c %s "$WORK/pack-$N.pack/images.npy") / 1000000000" | bc -l)
  printf '| %d | %d | %.2f | %d | %.1f | %d | %.0f | %.2f |\n' "$N" "$files" "$index_s" "$index_mb" "$pack_s" "$pack_mb" \
    "$(echo "$N / $pack_s" | bc -l)" "$gb"
  rm -rf "$tree" "$WORK/pack-$N.pack" "$WORK/index-$N.csv"
done

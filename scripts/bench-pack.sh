#!/usr/bin/env bash
# lens-pack throughput against (a) the reference's astropy reader and (b) `cat` of the same files, the floor.
# Run side by side in one go, each REPEAT times in turn, on warm page cache; prints medians and ratios. As root it
# also measures lens-pack and cat once each from a cold page cache (caches dropped before each).
#   usage: scripts/bench-pack.sh [OBJECTS_PER_CLASS=5000] [REPEAT=3] [ASTROPY_LIMIT=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
N=${1:-5000}; REPEAT=${2:-3}; ALIMIT=${3:-2000}
BIN=target/release; DIR=bench/pack-$N; PY=.venv/bin/python
CORES=$(nproc)
[ -x $BIN/lens-pack ] || cargo build --release --bins
if [ ! -f $DIR/index.csv ]; then
  rm -rf $DIR && mkdir -p $DIR
  $BIN/lens-synth -q --out $DIR/data --objects "$N" --seed 7
  $BIN/lens-index -q $DIR/data -o $DIR/index.csv 2>/dev/null
fi
OBJECTS=$(($(wc -l < $DIR/index.csv) - 1))
tail -n +2 $DIR/index.csv | cut -d, -f4-8 | tr ',' '\n' > $DIR/files.txt
BYTES=$(xargs -a $DIR/files.txt stat -c %s | awk '{s += $1} END {print s}')
xargs -a $DIR/files.txt -n 5000 cat > /dev/null   # warm the page cache

cat_t=(); pack_t=(); astro_r=()
for i in $(seq "$REPEAT"); do
  t0=$(now); xargs -a $DIR/files.txt -P "$CORES" -n 5000 cat > /dev/null; t1=$(now)
  cat_t+=("$(echo "$t1 - $t0" | bc -l)")
  rm -rf $DIR/out.pack
  t0=$(now); $BIN/lens-pack -q $DIR/index.csv -o $DIR/out.pack 2>/dev/null; t1=$(now)
  pack_t+=("$(echo "$t1 - $t0" | bc -l)")
  # $(...) waits for Python to exit, so its teardown does not overlap the next timed run.
  out=$($PY scripts/bench_astropy_read.py $DIR/index.csv --limit "$ALIMIT" --workers "$CORES"); n=${out% *}; s=${out#* }
  astro_r+=("$(echo "$n / $s" | bc -l)")
done
cat_s=$(printf '%s\n' "${cat_t[@]}" | median)
pack_s=$(printf '%s\n' "${pack_t[@]}" | median)
astro=$(printf '%s\n' "${astro_r[@]}" | median)
pack=$(echo "$OBJECTS / $pack_s" | bc -l); floor=$(echo "$OBJECTS / $cat_s" | bc -l)
# Cold page cache: every file read from the disk (root only: dropping the caches needs it).
cold=""
drop() { [ "$(id -u)" -eq 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }
if drop; then
  rm -rf $DIR/out.pack
  t0=$(now); $BIN/lens-pack -q $DIR/index.csv -o $DIR/out.pack 2>/dev/null; t1=$(now)
  cold_pack=$(echo "$t1 - $t0" | bc -l)
  drop
  t0=$(now); xargs -a $DIR/files.txt -P "$CORES" -n 5000 cat > /dev/null; t1=$(now)
  cold_cat=$(echo "$t1 - $t0" | bc -l)
  cold=1
fi
machine
echo "data: $OBJECTS objects, $((OBJECTS * 5)) files, $((BYTES / 1000000)) MB, warm page cache; medians of $REPEAT runs"
printf 'cat floor (xargs -P%s cat)        : %8.0f objects/s  (%.2f s)\n' "$CORES" "$floor" "$cat_s"
printf 'lens-pack                         : %8.0f objects/s  (%.2f s)\n' "$pack" "$pack_s"
printf 'astropy reference reader (%s procs): %8.0f objects/s  (on the first %s objects)\n' "$CORES" "$astro" "$ALIMIT"
printf 'lens-pack / astropy = %.1fx    cat floor / lens-pack = %.2fx\n' "$(echo "$pack / $astro" | bc -l)" "$(echo "$floor / $pack" | bc -l)"
if [ -n "$cold" ]; then
  printf 'cold page cache (caches dropped before each, one run): lens-pack %.0f objects/s (%.2f s), cat %.0f objects/s (%.2f s)\n' \
    "$(echo "$OBJECTS / $cold_pack" | bc -l)" "$cold_pack" "$(echo "$OBJECTS / $cold_cat" | bc -l)" "$cold_cat"
else
  echo "cold page cache: not measured (dropping the caches needs root)"
fi

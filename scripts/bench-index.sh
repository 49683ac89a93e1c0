#!/usr/bin/env bash
# lens-index on a million files: 200k objects x 5 bands in the challenge's four directories. lens-index reads names,
# not contents, so the files are empty (made once). Prints the median of REPEAT runs (warm dentry cache) and the
# first (after dropping caches when run as root).
#   usage: scripts/bench-index.sh [OBJECTS=200000] [REPEAT=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
OBJECTS=${1:-200000}; REPEAT=${2:-3}
BIN=target/release; DIR=bench/index-$OBJECTS
[ -x $BIN/lens-index ] || cargo build --release --bins
if [ ! -f $DIR/.complete ]; then
  rm -rf $DIR
  python3 - "$DIR" "$OBJECTS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
dirs = [("slsim_lenses", "D1_L"), ("slsim_nonlenses", "D1_N"), ("hsc_lenses", "D2_L"), ("hsc_nonlenses", "D2_N")]
for d, prefix in dirs:
    os.makedirs(os.path.join(root, d))
    for i in range(n // 4):
        for b in "grizy":
            open(os.path.join(root, d, f"{prefix}_{i:08d}_{b}.fits"), "wb").close()
PY
  touch $DIR/.complete
fi
FILES=$(find $DIR -name '*.fits' | wc -l)
if [ "$(id -u)" -eq 0 ] && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  t0=$(date +%s.%N); $BIN/lens-index -q $DIR > /dev/null 2>&1; t1=$(date +%s.%N)
  cold=$(echo "$t1 - $t0" | bc -l)
else
  cold=""
fi
times=()
for i in $(seq "$REPEAT"); do
  /usr/bin/time -f "%e %M" -o $DIR/time.txt $BIN/lens-index -q $DIR > $DIR/index.csv 2>/dev/null
  times+=("$(cut -d' ' -f1 $DIR/time.txt)"); rss=$(cut -d' ' -f2 $DIR/time.txt)
done
med=$(printf '%s\n' "${times[@]}" | median)
machine
echo "lens-index: $FILES files -> $(($(wc -l < $DIR/index.csv) - 1)) objects"
printf 'warm cache: median %.2f s of %s runs (%.0f files/s), max RSS %d MB\n' "$med" "$REPEAT" "$(echo "$FILES / $med" | bc -l)" $((rss / 1024))
[ -n "$cold" ] && printf 'cold cache (caches dropped): %.2f s\n' "$cold"
exit 0

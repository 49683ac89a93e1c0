#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 240), one at a time, and prints a summary line per target
# (executions, executions/s, coverage, findings). Needs the nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly && cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Seeds: fuzz/seeds/<target> (committed) plus, for fits_band, files that lens-synth writes now (both training
# layouts, with and without TDIM, and the blind layout). The growing corpus is fuzz/corpus/<target>, crashes go
# to fuzz/artifacts/<target>; logs to fuzz/logs/<target>.log. Every finding becomes a test (RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
secs=${1:-240}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(file_name index_csv scores_csv pack_manifest fits_band)

cargo build -q --bin lens-synth
seed_tmp=$(mktemp -d)
trap 'rm -rf "$seed_tmp"' EXIT
target/debug/lens-synth -q --objects 1 --seed 3 --out "$seed_tmp/train"
target/debug/lens-synth -q --objects 1 --seed 4 --blind --out "$seed_tmp/blind"
mkdir -p fuzz/corpus/fits_band
cp "$seed_tmp"/train/slsim_lenses/*_g.fits "$seed_tmp"/train/hsc_lenses/*_r.fits "$seed_tmp"/blind/object_*_i.fits \
  fuzz/corpus/fits_band/

mkdir -p fuzz/logs
cd fuzz
# An impossible allocation (cfitsio sizing a buffer from a garbage header) returns NULL, as glibc's malloc does in
# production, instead of aborting the run: cfitsio checks for NULL and reports a status, which we turn into an
# error. Allocations that succeed but exceed -rss_limit_mb still count as findings (libFuzzer's malloc limit).
export ASAN_OPTIONS=allocator_may_return_null=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  # One process on one core (no -jobs or -workers): the machine is shared. Limits: 2 GB of memory and 10 s per input count as findings.
  cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    > "logs/$t.log" 2>&1 && status=ok || status="FAILED (exit $?)"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "logs/$t.log" | tail -1 || echo "?")
  found=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  printf '%-14s %s: %s executions, %s/s, %s, corpus %s inputs, %s artifact(s)\n' \
    "$t" "$status" "$execs" "$rate" "$cov" "$(ls "corpus/$t" | wc -l)" "$found"
done

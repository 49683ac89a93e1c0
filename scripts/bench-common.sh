# Sourced by the scripts/bench-*.sh benchmarks: what every table starts with, and small helpers.

# The machine and the day, the first line of every table: figures from another CPU are other figures.
machine() {
  local cpu mem
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  mem=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
  echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, ${mem} GiB; $(date -u +%Y-%m-%d)${1:+; $1}"
}

# The versions of the Python side, for the benchmarks that compare with PyTorch.
torch_versions() {
  .venv/bin/python -c 'import torch, timm; print(f"torch {torch.__version__}, timm {timm.__version__}")'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }

# Sourced by the scripts/bench-*.sh benchmarks: what every table starts with, and small helpers.

# The machine and the day, the first line of every table: figures from another CPU are other figures.
machine() {
  local cpu mem
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  mem=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
  echo "machine: ${cpu:-unknown CPU} ($(vector_isa)), $(nproc) cores, ${mem} GiB; $(date -u +%Y-%m-%d)${1:+; $1}"
}

# The vector instructions that decide which kernels oneDNN runs (a model name such as "AMD EPYC" covers CPUs with
# and without AVX-512 and bf16): the widest of AVX2/AVX-512, then bf16 and AMX support.
vector_isa() {
  local flags isa
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  isa=SSE
  [[ $flags == *" avx2 "* ]] && isa=AVX2
  [[ $flags == *" avx512f "* ]] && isa=AVX-512
  [[ $flags == *" avx512_bf16 "* ]] && isa="$isa, AVX512-BF16"
  [[ $flags == *" amx_tile "* ]] && isa="$isa, AMX"
  has_bf16_instructions || isa="$isa, no bf16 instructions"
  echo "$isa"
}

# Whether the CPU computes in bf16 natively (AVX512-BF16, AMX or AVX-NE-CONVERT); without, bf16 is emulated and 10
# to 20 times slower than fp32.
has_bf16_instructions() {
  grep -m1 '^flags' /proc/cpuinfo | grep -qwE 'avx512_bf16|amx_bf16|avx_ne_convert'
}

# The versions of the Python side, for the benchmarks that compare with PyTorch.
torch_versions() {
  .venv/bin/python -c 'import torch, timm; print(f"torch {torch.__version__}, timm {timm.__version__}")'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }

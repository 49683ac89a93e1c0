#!/usr/bin/env bash
# The one prepared check of lensfind on a machine with an NVIDIA GPU. Such machines (the lent H200 among them) have
# python3 with a CUDA build of torch, but often no Rust, no cfitsio and no network: lensfind is built on a
# development machine against the GPU machine's libtorch and copied over as a small archive.
#
#   scripts/gpu-check.sh build ARCHIVE [TORCH_VERSION=2.11.0]    here: a clean clone of HEAD built for the GPU machine
#   scripts/gpu-check.sh run ARCHIVE [SECTIONS] [OBJECTS_PER_CLASS=12500]    there, from any directory
#
# SECTIONS (comma-separated, default all): train, infer, peers, vit, c10d, errors. `run` prints the GPU, what
# lens-train's defaults pick and train at (images/s while training and per whole epoch, start-up), explicit settings,
# lens-infer's whole-process time, PyTorch's best beside them (gpu_peers.py: the reference's recipe, eager at its best,
# inference), ViT at 224 and c10d (NCCL, Gloo), each step under its own time limit. It ends with exit status 1 and a
# FAILED list when any lensfind step failed (a crash such as the fused-AdamW one is not a figure to read past).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

build() {
  # Built with the torch wheel that the GPU machine has (its libtorch is what the binaries load there):
  #  - wheels, no dependencies: torch (PyPI's default build is CUDA 13.0, as on the lent H200), and the CUDA headers
  #    the shim's NCCL part needs: nvidia-cuda-cccl/crt/runtime 13.0, nvidia-nccl-cu13, and the include/ of
  #    nvidia-cublas/cusolver/cusparse, which ATen/cuda/CUDAContextLight.h pulls in;
  #  - patch 1: tch 0.26's torch-sys is generated for libtorch 2.13 and wraps ops that an older libtorch lacks (15 of
  #    them against 2.11: philox_*, _upsample_lanczos2d_aa*, _flash_attention_forward_no_dropout_inplace, an MPS op).
  #    A copy of torch-sys whose failing wrappers throw "not in this libtorch" instead (lensfind calls none of them)
  #    is wired in with [patch.crates-io], and LIBTORCH_BYPASS_VERSION_CHECK=1 lets it build against 2.11;
  #  - patch 2: fitsio with its fitsio-src feature (cfitsio compiled in: the GPU machine has no libcfitsio);
  #  - link flags: libtorch's own CUDA libraries (cuDNN, cuBLAS, NCCL...) are not here, so undefined symbols inside
  #    shared libraries are allowed (they resolve there), and bzip2's symbol that cfitsio and the bzip2 crate both
  #    define is allowed twice.
  local tarball torch_version wd src
  tarball=$(realpath -m "$1")
  torch_version=${2:-2.11.0}
  local root; root=$(cd "$here/.." && pwd)
  wd=${GPU_BUILD_DIR:-$root/target/gpu-build}
  mkdir -p "$wd/whl" "$wd/site"
  (
    set -euo pipefail
    cd "$wd/whl"
    if [ ! -d "$wd/site/torch" ] || ! grep -q "^Version: $torch_version" "$wd"/site/torch-*.dist-info/METADATA 2>/dev/null; then
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 "torch==$torch_version" \
        "nvidia-cuda-cccl==13.0.85.*" "nvidia-cuda-crt==13.0.88.*" "nvidia-cuda-runtime==13.0.96.*" \
        "nvidia-nccl-cu13==2.28.9" "nvidia-cublas==13.1.0.3.*" "nvidia-cusolver==12.0.4.66.*" \
        "nvidia-cusparse==12.6.3.3.*" -d .
      rm -rf "$wd/site" && mkdir -p "$wd/site"
      for w in torch-"$torch_version"* nvidia_cuda_* nvidia_nccl*; do unzip -q -o "$w" -d "$wd/site"; done
      for w in nvidia_cublas* nvidia_cusolver* nvidia_cusparse*; do unzip -q -o "$w" 'nvidia/*/include/*' -d "$wd/site"; done
    fi
    # A clean clone of what is committed: the archive is what HEAD builds, not the working tree.
    rm -rf "$wd/src"
    git clone -q "$root" "$wd/src"
    cd "$wd/src"
    cargo fetch -q
    local registry_copy; registry_copy=$(ls -d ~/.cargo/registry/src/*/torch-sys-0.26.0 | head -1)
    if [ ! -f "$wd/torch-sys/.patched-for-$torch_version" ]; then
      rm -rf "$wd/torch-sys" && cp -r "$registry_copy" "$wd/torch-sys"
    fi
    sed -i 's/^fitsio = "0.21"/fitsio = { version = "0.21", features = ["fitsio-src"] }/' Cargo.toml
    printf '\n[patch.crates-io]\ntorch-sys = { path = "%s/torch-sys" }\n' "$wd" >> Cargo.toml
    export LIBTORCH=$wd/site/torch LIBTORCH_BYPASS_VERSION_CHECK=1 LIBTORCH_CXX11_ABI=1 CARGO_TARGET_DIR=$wd/target
    unset LIBTORCH_USE_PYTORCH VIRTUAL_ENV
    export RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined -C link-arg=-Wl,--unresolved-symbols=ignore-in-shared-libs -C link-arg=-Wl,--allow-multiple-definition"
    if [ ! -f "$wd/torch-sys/.patched-for-$torch_version" ]; then
      # First build: collect the wrappers that do not compile against this libtorch and stub them.
      cargo build -q --release -p torch-sys 2> "$wd/torch-sys.log" || true
      grep -oE 'torch_api_generated.cpp:[0-9]+:[0-9]+: error' "$wd/torch-sys.log" | cut -d: -f2 | sort -un > "$wd/errlines"
      python3 "$here/gpu_stub_wrappers.py" "$wd/torch-sys/libtch/torch_api_generated.cpp" "$wd/errlines"
      touch "$wd/torch-sys/.patched-for-$torch_version"
    fi
    cargo build -q --release --bins --examples
    rm -rf "$wd/pack" && mkdir -p "$wd/pack/bin"
    for b in lens-synth lens-index lens-pack lens-train lens-infer; do strip -o "$wd/pack/bin/$b" "$wd/target/release/$b"; done
    strip -o "$wd/pack/bin/allreduce" "$wd/target/release/examples/allreduce"
    cp "$here/gpu-check.sh" "$here/gpu_peers.py" "$wd/pack/"
    git -C "$root" rev-parse --short HEAD > "$wd/pack/REVISION"
    mkdir -p "$(dirname "$tarball")"
    tar cJf "$tarball" -C "$wd/pack" .
  ) || { echo "gpu-check build: failed" >&2; exit 1; }
  echo "$tarball: $(du -h "$tarball" | cut -f1), lensfind $(cat "$wd/pack/REVISION") for torch $torch_version"
}

run() {
  local archive sections n
  archive=$(realpath "$1")
  sections=${2:-all}
  n=${3:-12500}
  local d; d=$(mktemp -d)
  tar xJf "$archive" -C "$d" || { echo "cannot unpack $archive"; exit 1; }
  local B=$d/bin P=$d/gpu_peers.py W=$d/work
  mkdir -p "$W"
  failed=()
  want() { [ "$sections" = all ] || [[ ",$sections," == *",$1,"* ]]; }
  step() { echo "== $(date +%T) $*"; }
  now() { date +%s.%N; }
  dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
  export LD_LIBRARY_PATH
  LD_LIBRARY_PATH=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')/lib
  echo "lensfind $(cat "$d/REVISION")"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)'
  "$B/lens-train" --version || { echo "lens-train does not start"; exit 1; }

  step "data: $n objects per class"
  local s; s=$(now)
  "$B/lens-synth" -q --out "$W/data" --objects "$n" --seed 1 -j "$(nproc)" && "$B/lens-index" -q "$W/data" -o "$W/index.csv" &&
    "$B/lens-pack" -q "$W/index.csv" -o "$W/train.pack" || { echo "data FAILED"; exit 1; }
  awk 'NR == 1 || NR % 10 == 0' "$W/index.csv" > "$W/small.csv" && "$B/lens-pack" -q "$W/small.csv" -o "$W/small.pack"
  rm -rf "$W/data"
  echo "synth + index + pack: $(dt "$s" "$(now)") s"

  tr() {  # label, lens-train args... -> timing.csv, start-up, what auto chose; a failure is recorded
    local label=$1; shift
    rm -rf "$W/run"; local s e
    s=$(now)
    if ! timeout 150 "$B/lens-train" --device cuda --pack "$W/train.pack" --out "$W/run" --seed 1 "$@" > "$W/tr.log" 2>&1; then
      echo "$label FAILED:"; grep -v '^frame #\|^  \|^stack\|^note' "$W/tr.log" | grep -v 'images (' | head -8
      failed+=("$label"); return 1
    fi
    e=$(now)
    grep -iE 'warn|deprecat' "$W/tr.log" | head -3 | sed 's/^/  stderr: /'
    grep 'dropped' "$W/tr.log" | sed 's/^/  /'
    echo "$label: wall $(dt "$s" "$e") s; timing.csv:"; tail -n +2 "$W/run/timing.csv" | sed 's/^/  /'
    awk -F, -v wall="$(dt "$s" "$e")" 'NR > 1 { sum += $6 } END { printf "  outside the epochs (start-up, end): %.2f s\n", wall - sum }' "$W/run/timing.csv"
    python3 -c "import json; c = json.load(open('$W/run/config.json')); a = c.get('autotune') or {}; print('  precision', c.get('precision'), 'channels_last', c.get('channels_last'), 'data_on_device', c.get('data_on_device')); [print('  auto:', t) for t in a.get('timings', []) + a.get('failed', [])]"
  }
  inf() {  # label, run, lens-infer args... -> whole-process time
    local label=$1 run=$2; shift 2
    local s; s=$(now)
    if ! timeout 120 "$B/lens-infer" -q --device cuda --run "$run" --pack "$W/train.pack" -o "$W/logits.csv" "$@" > "$W/inf.log" 2>&1; then
      echo "$label FAILED:"; head -5 "$W/inf.log"; failed+=("$label"); return 1
    fi
    echo "$label: $(($(wc -l < "$W/logits.csv") - 1)) objects in $(dt "$s" "$(now)") s (whole process)"
  }
  peer() { timeout "$1" python3 "$P" "$W/train.pack" "${@:2}" 2>&1 | grep -v Warning || echo "peer ${*:2} did not finish"; }

  if want train; then
    step "lens-train: defaults (auto precision and memory format, auto data placement), then explicit settings"
    tr "convnext_tiny defaults b256" --model convnext_tiny --epochs 3 --batch-size 256 --no-autotune-cache
    tr "convnext_tiny defaults b1024" --model convnext_tiny --epochs 3 --batch-size 1024 --no-autotune-cache &&
      cp -r "$W/run" "$W/tiny"
    tr "convnext_atto defaults b256" --model convnext_atto --epochs 3 --batch-size 256 --no-autotune-cache
    tr "convnext_tiny bf16 channels-last b1024 never on device" --model convnext_tiny --epochs 3 --batch-size 1024 \
      --precision bf16 --memory-format channels-last --data-on-device never
  fi
  if want peers; then
    step "PyTorch beside it: eager at its best (data on the GPU, bf16, channels-last, fused AdamW), inference"
    peer 100 convnext_tiny best 256 3
    peer 100 convnext_tiny best 1024 3
    peer 60 convnext_atto best 256 3
    peer 60 convnext_tiny infer 1024
    [ "$sections" = all ] && peer 150 convnext_tiny ref 512 1
  fi
  if want infer; then
    step "lens-infer"
    [ -d "$W/tiny" ] || { tr "convnext_tiny bf16 b1024" --model convnext_tiny --epochs 1 --batch-size 1024 --precision bf16 &&
      cp -r "$W/run" "$W/tiny"; }
    for tta in none flips d4; do inf "lens-infer convnext_tiny --tta $tta" "$W/tiny" --tta "$tta"; done
    inf "lens-infer convnext_tiny --tta flips --batch-size 1024" "$W/tiny" --tta flips --batch-size 1024
  fi
  if want vit; then
    step "ViT at 224"
    tr "vit_small@224 defaults b128" --model vit_small_patch16_224 --epochs 1 --batch-size 128 --val-pack "$W/small.pack" &&
      inf "lens-infer vit_small --tta none" "$W/run" --tta none
    peer 90 vit_small_patch16_224 infer 1024
  fi
  if want c10d; then
    step c10d
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29731 timeout 60 "$B/allreduce" convnext_tiny 20 nccl cuda || failed+=("nccl all-reduce")
    local pids=() r
    for r in 1 0; do
      RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29733 timeout 120 "$B/lens-train" -q --device cuda \
        --dist-backend gloo --pack "$W/small.pack" --out "$W/ddp" --model convnext_tiny --epochs 2 --batch-size 128 \
        > "$W/ddp$r.log" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}" || failed+=("2 ranks gloo")
    echo "2 ranks gloo, one GPU: $(tail -n +2 "$W/ddp/timing.csv" 2>/dev/null || grep -v '^frame' "$W/ddp0.log" | head -5)"
  fi
  if want errors; then
    step "errors a user meets: a GPU that is not there, a batch that cannot fit"
    local gpus; gpus=$(nvidia-smi -L | wc -l)
    "$B/lens-train" -q --device "cuda:$gpus" --pack "$W/small.pack" --out "$W/nogpu" --model convnext_atto --epochs 1 \
      2>&1 | head -3
    timeout 120 "$B/lens-train" -q --device cuda --pack "$W/train.pack" --out "$W/oom" --model vit_small_patch16_224 \
      --epochs 1 --batch-size 40000 --precision fp32 --memory-format contiguous 2>&1 | grep -v '^frame\|^ ' | head -4
  fi
  rm -rf "$d"
  step done
  if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
  fi
}

case "${1:-}" in
  build) shift; [ $# -ge 1 ] || { echo "usage: $0 build ARCHIVE [TORCH_VERSION]" >&2; exit 2; }; build "$@" ;;
  run) shift; [ $# -ge 1 ] || { echo "usage: $0 run ARCHIVE [SECTIONS] [OBJECTS_PER_CLASS]" >&2; exit 2; }; run "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

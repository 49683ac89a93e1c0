#!/usr/bin/env bash
# Data-parallel lens-train under torchrun, as the reference runs PyTorch DDP: torchrun sets RANK, WORLD_SIZE,
# LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process; lens-train reads them (no Python in the processes).
#   scripts/torchrun-train.sh NPROC PACK RUN [lens-train options...]
#   scripts/torchrun-train.sh 4 train.pack runs/tiny --model convnext_tiny --epochs 50
# Several nodes: on each, the same `torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d
# --rdzv-endpoint FIRST_NODE:29400 --rdzv-id JOB --no-python $(command -v lens-train) ...` (README, Slurm).
# On CPUs, give each process its share of the cores with -j (e.g. 2 processes x -j 8 on 16 cores).
# lens-train runs with --auto-resume: the same command again continues RUN from its checkpoint (as does a group
# that `torchrun --max-restarts N` restarts after a worker died: from the last checkpoint, see --checkpoint-every).
set -euo pipefail
ROOT=$(cd -P "$(dirname "$0")/.." && pwd)
NPROC=$1; PACK=$2; RUN=$3; shift 3
LENS_TRAIN=$(command -v lens-train || echo "$ROOT/target/release/lens-train")
TORCHRUN=$(command -v torchrun || echo "$ROOT/.venv/bin/torchrun")
exec "$TORCHRUN" --standalone --nproc-per-node "$NPROC" --no-python "$LENS_TRAIN" \
  --auto-resume --pack "$PACK" --out "$RUN" "$@"

#!/usr/bin/env bash
# Installs everything lensfind needs on a Debian machine (run as root, or with sudo available):
#   - C libraries and tools: cfitsio (FITS), pkg-config, a C/C++ compiler, bc and time (benchmark scripts),
#     fonts-dejavu-core (the labels of lens-eval --plot), libgloo-dev (the gloo headers of c10d's Gloo process
#     group, whose code is in libtorch), and a one-machine Slurm (munge, slurmctld, slurmd, slurm-client;
#     iproute2's ss finds free ports) on which scripts/slurm/local-cluster.sh runs the batch scripts in the tests;
#   - the project's Python environment .venv: numpy (tests open packs with it), astropy (the benchmark's reference
#     reader), torch==2.13.0 (the libtorch that tch 0.26 builds against; LIBTORCH_USE_PYTORCH=1) and timm (the
#     parity fixtures and the model benchmarks compare against it), scikit-learn (lens-eval is checked against it),
#     and cuda-toolkit's CUDA headers (crt, cccl), with which the shim compiles c10d's NCCL process group.
# Quick when everything is already there: it checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libcfitsio-dev pkg-config build-essential python3-venv bc time fonts-dejavu-core libgloo-dev
  munge slurmctld slurmd slurm-client iproute2)
PY_PACKAGES=(numpy astropy "torch==2.13.0" timm scikit-learn "cuda-toolkit[crt,cccl]==13.0.3")
# Checked from the installed metadata, without importing torch (which takes seconds).
PY_CHECK="from importlib.metadata import version as v; [v(p) for p in ('numpy', 'astropy', 'timm', 'scikit-learn')]; assert v('torch').split('+')[0] == '2.13.0'; assert v('cuda-toolkit').startswith('13.0.3')"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "$PY_CHECK" 2>/dev/null; then
  echo "setup: installing ${PY_PACKAGES[*]} into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

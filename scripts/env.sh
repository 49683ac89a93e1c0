# Source this to build with plain cargo outside make: `. scripts/env.sh && cargo test --workspace`.
# It points tch's build at the torch wheel in the project's .venv (the Makefile exports the same).
_lensfind_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
export VIRTUAL_ENV="$_lensfind_root/.venv"
export PATH="$_lensfind_root/.venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset _lensfind_root

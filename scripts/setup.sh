#!/usr/bin/env bash
# Create .venv and install edgecv into it (editable). Usage: scripts/setup.sh [EXTRAS], e.g. "test".
# Everything edgecv needs comes from PyPI; no apt packages or services are required. The test set-up
# also installs torch==2.13.0 (CPU build) for the training tests.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
if [[ ",$extras," == *",test,"* ]]; then
  # the tests of `edgecv models train` train for seconds: torch's CPU build, pinned (a plain `torch` would
  # pull a multi-GB CUDA build); never a dependency of edgecv itself
  .venv/bin/python -m pip install --quiet torch==2.13.0
fi
echo "edgecv installed in .venv ($(.venv/bin/edgecv --version))"

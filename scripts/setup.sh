#!/usr/bin/env bash
# Create .venv and install edgecv into it (editable). Usage: scripts/setup.sh [EXTRAS], e.g. "test".
# Everything edgecv needs comes from PyPI; no apt packages or services are required.
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
echo "edgecv installed in .venv ($(.venv/bin/edgecv --version))"

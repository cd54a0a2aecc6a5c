#!/usr/bin/env bash
# Set up .venv with the test extras, lint, and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"

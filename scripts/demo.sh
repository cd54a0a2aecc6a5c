#!/usr/bin/env bash
# Set up edgecv, fill a demo inbox with generated shelf, facade and damage photos, and run the agent
# on the shipped models until the inbox is processed. `scripts/demo.sh --watch` keeps it running
# (drop more images into .demo/inbox; Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p .demo/inbox
for kind in shelves facades damage; do
  if [ ! -d ".demo/inbox/$kind" ]; then
    .venv/bin/python scripts/generate.py "$kind" --out ".demo/generated/$kind" --count 3 --seed 990000 >/dev/null
    mkdir -p ".demo/inbox/$kind"
    cp ".demo/generated/$kind/images/"*.jpg ".demo/inbox/$kind/"
  fi
done
mode="--once"
[ "${1:-}" = "--watch" ] && mode=""
.venv/bin/edgecv --config scripts/demo.toml agent $mode
.venv/bin/edgecv --config scripts/demo.toml jobs list --limit 20

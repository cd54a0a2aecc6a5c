#!/usr/bin/env bash
# The peer for scripts/bench.py (part `peer`): Ultralytics in a virtual environment of its own, so that
# neither PyTorch nor Ultralytics ever enters edgecv's. Not needed by the agent or the tests.
#
#   scripts/setup_peer.sh [VENV]          # default .peer-venv
#
# Ultralytics needs torch and torchvision. PyPI's torchvision does not load beside the CPU-only torch 2.13.0
# that edgecv's training extra uses, so the peer takes the matched pair torch 2.14.1 / torchvision 0.29.1
# (several GB: a CUDA build on x86_64; the CPU does the work here all the same).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.peer-venv}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 ultralytics openvino
"$VENV/bin/python" -c "import ultralytics, openvino; print('peer ready: ultralytics', ultralytics.__version__, 'openvino', openvino.__version__)"

#!/usr/bin/env bash
# Create .venv and install edgecv into it (editable). Usage: scripts/setup.sh [EXTRAS], e.g. "test".
# Everything edgecv needs comes from PyPI. With the test extras, the tests' MQTT broker (Debian's
# mosquitto; the tests start their own on a free loopback port) is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [[ ",$extras," == *",test,"* ]] && [ ! -x /usr/sbin/mosquitto ] && ! command -v mosquitto >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt="apt-get -q -o DPkg::Lock::Timeout=600"
    $apt update >/dev/null && DEBIAN_FRONTEND=noninteractive $apt install -y --no-install-recommends mosquitto >/dev/null
  else
    echo "note: the MQTT tests need Debian's mosquitto (sudo apt-get install mosquitto); without it they are skipped" >&2
  fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "edgecv installed in .venv ($(.venv/bin/edgecv --version))"

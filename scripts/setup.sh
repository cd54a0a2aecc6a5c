#!/usr/bin/env bash
# Create .venv and install edgecv into it (editable). Usage: scripts/setup.sh [EXTRAS], e.g. "test".
# Everything edgecv needs comes from PyPI. The "test" extras also need Debian packages: chromium and
# chromium-driver (the dashboard's browser tests) and mosquitto (the MQTT tests start their own broker on a
# free loopback port). They are installed here with apt-get when missing (as root, or through passwordless
# sudo; without either those tests are skipped and say why).
# The test set-up also installs torch==2.13.0 (CPU build) for the training tests.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

apt_install() {  # apt_install PACKAGE... (fails as root; warns where it cannot become root)
  local run=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      run=(sudo -n)
    else
      echo "warning: cannot install $* (not root, no passwordless sudo); tests that need them are skipped" >&2
      return 0
    fi
  fi
  local apt=(apt-get -q -o DPkg::Lock::Timeout=600)  # another apt may hold the lock for a while
  ${run[@]+"${run[@]}"} "${apt[@]}" update -qq
  ${run[@]+"${run[@]}"} env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

if [[ ",$extras," == *",test,"* ]] && command -v apt-get >/dev/null; then
  need=()
  { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || need+=(chromium chromium-driver)
  { [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null; } || need+=(mosquitto)
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
  fi
fi
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

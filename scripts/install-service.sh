#!/usr/bin/env bash
# Install edgecv as a supervised systemd service on a fresh device (run as root).
#
#   scripts/install-service.sh dist/edgecv-0.1.0-py3-none-any.whl [--find-links DIR] [--inbox DIR]
#
# Creates the system user `edgecv`, a venv in /opt/edgecv/venv with the wheel (dependencies from the
# configured package index or mirror, or only from --find-links DIR when offline), writes
# /etc/systemd/system/edgecv.service and /etc/edgecv/edgecv.toml (kept if present), creates the
# inbox, then enables and starts the service and runs `edgecv doctor` as the service user.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0 ...)" >&2; exit 1; }
[ $# -ge 1 ] || usage
wheel="$1"; shift
find_links=""; inbox="/srv/edgecv/inbox"
while [ $# -gt 0 ]; do
  case "$1" in
    --find-links) find_links="$2"; shift 2 ;;
    --inbox) inbox="$2"; shift 2 ;;
    *) usage ;;
  esac
done
venv=/opt/edgecv/venv

id edgecv >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/edgecv --shell /usr/sbin/nologin edgecv
python3 -m venv "$venv"
if [ -n "$find_links" ]; then
  "$venv/bin/python" -m pip install --quiet --no-index --find-links "$find_links" "$wheel"
else
  "$venv/bin/python" -m pip install --quiet "$wheel"
fi
"$venv/bin/edgecv" service install --inbox "$inbox"
install -d -o edgecv -g edgecv -m 2770 "$inbox"
chgrp edgecv /etc/edgecv /etc/edgecv/edgecv.toml && chmod 0750 /etc/edgecv && chmod 0640 /etc/edgecv/edgecv.toml
systemctl daemon-reload
systemctl enable --now edgecv
sudo -u edgecv EDGECV_CONFIG=/etc/edgecv/edgecv.toml "$venv/bin/edgecv" doctor || true
echo "edgecv is running: systemctl status edgecv; journalctl -u edgecv -f; $venv/bin/edgecv status"

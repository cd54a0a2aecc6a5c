"""The systemd service: the unit edgecv ships, and ``edgecv service install|uninstall``.

The unit runs ``edgecv agent`` as the system user ``edgecv`` with the config in
``/etc/edgecv/edgecv.toml`` and the data in ``/var/lib/edgecv`` (``StateDirectory=``). Only the data
dir and the inbox are writable; the rest of the file system is read-only to it. ``scripts/edgecv.service``
is :func:`render_unit` with the default paths (a test keeps the two identical).

Installing writes files only (under ``root``, ``/`` on a real device): it never runs ``useradd`` or
``systemctl``; it returns the commands to run, so the same code path is testable and reviewable.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgecv.config import CONFIG_ENV
from edgecv.logging_setup import log_name

log = logging.getLogger(__name__)

SERVICE_NAME = "edgecv"
SERVICE_USER = "edgecv"
UNIT_DIR = Path("/etc/systemd/system")
CONFIG_PATH = Path("/etc/edgecv/edgecv.toml")
ENV_FILE = Path("/etc/edgecv/env")
DATA_DIR = Path("/var/lib/edgecv")
INBOX = Path("/srv/edgecv/inbox")
DEFAULT_EXEC = "/opt/edgecv/venv/bin/edgecv agent"
_HIDDEN_ROOTS = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")  # ProtectHome/PrivateTmp hide them

UNIT_TEMPLATE = """\
# edgecv agent as a systemd service (written by `edgecv service install`; see docs/install.md).
# Local changes: `systemctl edit edgecv` (a drop-in survives reinstalls), e.g. for GPU/NPU access:
#   [Service]
#   SupplementaryGroups=render video
[Unit]
Description=edgecv edge CV agent (watch folder, on-device inference, upstream sync)
Wants=network-online.target
After=network-online.target local-fs.target
# Crash loops: systemd >= 254 grows the delay 10 s -> 5 min (RestartSteps); older versions keep 10 s.
# No start limit: an unattended device keeps trying until the cause (full disk, missing mount) is gone.
StartLimitIntervalSec=0

[Service]
Type=exec
User={user}
Group={user}
Environment={config_env}={config_path}
Environment=PYTHONUNBUFFERED=1
EnvironmentFile=-{env_file}
ExecStart={exec_start}
Restart=on-failure
RestartSec=10s
RestartSteps=6
RestartMaxDelaySec=5min
# SIGTERM: each worker finishes the job in hand (a job lease is at most lease_s) before the exit.
KillSignal=SIGTERM
TimeoutStopSec=120s

StateDirectory=edgecv
StateDirectoryMode=0750
ConfigurationDirectory=edgecv
WorkingDirectory={data_dir}
UMask=0027

# Hardening: the agent writes only its data dir and the inbox.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={data_dir} {inbox}
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
LockPersonality=yes
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=
# Not set on purpose: MemoryDenyWriteExecute (OpenVINO's CPU plugin generates code at run time) and
# PrivateDevices/DevicePolicy (GPU and NPU inference need /dev/dri and /dev/accel).

[Install]
WantedBy=multi-user.target
"""


def render_unit(
    exec_start: str = DEFAULT_EXEC,
    *,
    inbox: Path = INBOX,
    data_dir: Path = DATA_DIR,
    config_path: Path = CONFIG_PATH,
    user: str = SERVICE_USER,
) -> str:
    """The unit text for these paths."""
    return UNIT_TEMPLATE.format(
        exec_start=exec_start,
        inbox=_unit_path(inbox),
        data_dir=_unit_path(data_dir),
        config_path=config_path,
        config_env=CONFIG_ENV,
        env_file=ENV_FILE,
        user=user,
    )


def _unit_path(path: Path) -> str:
    text = str(path)
    if any(c.isspace() for c in text):
        return f'"{text}"'
    return text


def exec_start_for(python: str | Path = sys.executable) -> str:
    """``ExecStart`` for the interpreter (its venv) that runs this edgecv."""
    return f"{shlex.quote(str(Path(python).absolute()))} -m edgecv agent"


def config_text(data_dir: Path = DATA_DIR, inbox: Path = INBOX) -> str:
    """The commented ``edgecv.toml`` template with ``data_dir`` and ``inbox`` filled in."""
    template = resources.files("edgecv").joinpath("config_template.toml").read_text(encoding="utf-8")
    template = template.replace(f'data_dir = "{DATA_DIR}"', f"data_dir = {_toml_str(data_dir)}", 1)
    return template.replace(f'inbox = "{INBOX}"', f"inbox = {_toml_str(inbox)}", 1)


def _toml_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, *, data_dir: Path = DATA_DIR, inbox: Path = INBOX, force: bool = False) -> bool:
    """Write the template to ``path`` (mode 0640: it may hold secrets). False if it exists and not ``force``."""
    path = Path(path)
    if path.exists() and not force:
        return False
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o750)  # the service group reads the config; other users see nothing
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(config_text(data_dir, inbox))
    tmp.chmod(0o640)
    tmp.replace(path)
    return True


@dataclass
class InstallReport:
    unit_path: Path
    config_path: Path
    config_created: bool
    inbox: Path
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _inside(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def install_service(
    root: Path = Path("/"),
    *,
    python: str | Path = sys.executable,
    inbox: Path | None = None,
    user: str = SERVICE_USER,
) -> InstallReport:
    """Write the unit and (if missing) ``/etc/edgecv/edgecv.toml`` under ``root``; return the next steps.

    The inbox comes from ``inbox``, else from an existing config file, else ``/srv/edgecv/inbox``.
    """
    root = Path(root)
    config_file = _inside(root, CONFIG_PATH)
    inbox = Path(inbox) if inbox is not None else _configured_inbox(config_file) or INBOX
    exec_start = exec_start_for(python)
    unit = render_unit(exec_start, inbox=inbox, user=user)
    unit_path = _inside(root, UNIT_DIR) / f"{SERVICE_NAME}.service"
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(unit, encoding="utf-8")
    unit_path.chmod(0o644)
    created = write_config(config_file, data_dir=DATA_DIR, inbox=inbox)
    inbox_dir = _inside(root, inbox)
    if not inbox_dir.exists():
        inbox_dir.mkdir(parents=True)
        inbox_dir.chmod(0o2770)  # uploaders in the service group drop images; other users see nothing
    log.info("wrote %s (ExecStart=%s)", log_name(unit_path), log_name(exec_start))

    report = InstallReport(unit_path, config_file, created, inbox)
    if str(Path(python).absolute()).startswith(_HIDDEN_ROOTS):
        report.warnings.append(
            f"{python} is under a folder the service cannot see (ProtectHome/PrivateTmp); install edgecv "
            "into /opt/edgecv/venv and run `edgecv service install` from there"
        )
    if not _user_exists(user):
        report.commands.append(
            f"useradd --system --user-group --home-dir {DATA_DIR} --shell /usr/sbin/nologin {user}"
        )
    report.commands += [
        f"install -d -o {user} -g {user} -m 2770 {shlex.quote(str(inbox))}",
        f"chgrp {user} {CONFIG_PATH.parent} {CONFIG_PATH} && chmod 0750 {CONFIG_PATH.parent} && chmod 0640 {CONFIG_PATH}",
        "systemctl daemon-reload",
        f"systemctl enable --now {SERVICE_NAME}",
        f"sudo -u {user} {CONFIG_ENV}={CONFIG_PATH} {shlex.quote(str(Path(python).absolute()))} -m edgecv doctor",
        f"journalctl -u {SERVICE_NAME} -f",
    ]
    return report


def _configured_inbox(config_file: Path) -> Path | None:
    if not config_file.is_file():
        return None
    from edgecv.config import read_toml

    value = read_toml(config_file).get("inbox")
    return Path(value) if isinstance(value, str) and Path(value).is_absolute() else None


def uninstall_service(root: Path = Path("/")) -> tuple[bool, list[str]]:
    """Remove the unit file and its enablement link (config, data and user stay).

    Returns ``(removed, commands to run next)``: systemd still knows a loaded unit whose file is gone,
    so ``systemctl stop`` works afterwards.
    """
    unit_dir = _inside(Path(root), UNIT_DIR)
    unit_path = unit_dir / f"{SERVICE_NAME}.service"
    wants = unit_dir / "multi-user.target.wants" / f"{SERVICE_NAME}.service"
    if wants.is_symlink() or wants.exists():
        wants.unlink()
    if not unit_path.exists():
        return False, []
    unit_path.unlink()
    return True, [f"systemctl stop {SERVICE_NAME}", "systemctl daemon-reload"]

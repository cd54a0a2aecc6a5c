"""``edgecv doctor``: checks that tell a technician what is wrong with an installed device.

Each check returns one or more :class:`Check` results (name, OK/WARN/FAIL, detail, fix hint). A check
that crashes becomes a FAIL naming the exception, so one broken probe never hides the others. Nothing
here writes to the job log, and the database is opened read-only.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from edgecv.config import Config
from edgecv.errors import EdgecvError, SchemaTooNew
from edgecv.paths import readable_by_others
from edgecv.runtime.installed import installed_models, model_dirs, unknown_models
from edgecv.runtime.package import MANIFEST_NAMES, load_package
from edgecv.status import describe_agent, running_agent, with_agent_settings
from edgecv.store import readonly as db
from edgecv.store import schema_version
from edgecv.upstream.budget import MIB, dir_bytes, format_size, free_space_reason

log = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the job log itself may fail to grow
WAL_WARN_BYTES = 64 * 1024 * 1024
CLOCK_MIN_YEAR = 2024
CLOCK_SKEW = timedelta(minutes=5)
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "fuse.rclone", "davfs")
MAX_WATCHES_PATH = Path("/proc/sys/fs/inotify/max_user_watches")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK | WARN | FAIL
    detail: str
    hint: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return f"{text}\n     fix: {self.hint}" if self.hint and self.status != OK else text

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# -- checks ------------------------------------------------------------------------------------------


def check_agent(config: Config) -> list[Check]:
    """Whether an agent runs on this data dir, and with which settings (the other checks use them)."""
    return [Check("agent", OK, describe_agent(config, running_agent(config)))]


def check_versions(config: Config) -> list[Check]:
    py = sys.version.split()[0]
    out = [
        Check("python", OK, f"{py} ({sys.executable})")
        if sys.version_info >= (3, 10)
        else Check("python", FAIL, f"{py} is too old", "install Python 3.10 or newer")
    ]
    required = {"openvino": "openvino", "onnx": "onnxruntime"}.get(config.backend)
    found = 0
    for name in ("openvino", "onnxruntime"):
        try:
            module = __import__(name)
        except Exception as exc:  # ImportError, or a broken native library
            out.append(
                Check(
                    name,
                    FAIL if name == required else WARN,
                    f"cannot be imported: {exc}",
                    f"pip install {name} into the venv that runs edgecv",
                )
            )
            continue
        out.append(Check(name, OK, str(getattr(module, "__version__", "unknown version"))))
        found += 1
    if not found:
        out.append(
            Check("runtime", FAIL, "neither OpenVINO nor ONNX Runtime can be imported", "reinstall edgecv")
        )
    return out


def check_devices(config: Config) -> list[Check]:
    try:
        import openvino as ov

        core = ov.Core()
        available = list(core.available_devices)
    except Exception as exc:
        return [
            Check(
                "devices", WARN, f"OpenVINO cannot list devices: {exc}", "only ONNX Runtime on CPU is usable"
            )
        ]
    names = []
    for dev in available:
        try:
            names.append(f"{dev} ({core.get_property(dev, 'FULL_DEVICE_NAME')})")
        except Exception:
            names.append(dev)
    wanted = config.device
    if wanted in ("CPU", "AUTO") or any(d.split(".")[0] == wanted for d in available):
        return [Check("devices", OK, f"{', '.join(names) or 'none'}; configured device {wanted}")]
    return [
        Check(
            "devices",
            WARN,
            f"device {wanted} is configured but not present (found: {', '.join(names) or 'none'}); "
            "jobs run on CPU",
            f"install the {wanted} driver and add the service user to the 'render' group, or set device = \"CPU\"",
        )
    ]


def _package_dirs(config: Config) -> dict[str, Path]:
    """Every folder that looks like a model package, by name; the first models dir holding a name wins."""
    found: dict[str, Path] = {}
    for root in model_dirs(config):
        if not Path(root).is_dir():
            continue
        for pkg in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            if pkg.name not in found and any((pkg / m).is_file() for m in MANIFEST_NAMES):
                found[pkg.name] = pkg
    return found


def check_models(config: Config, *, load: bool = True) -> list[Check]:
    """Each package: manifest valid, every sha256 right, and (``load``) a Detector opens on it."""
    packages = _package_dirs(config)
    out: list[Check] = []
    installed = ", ".join(sorted(installed_models(config))) or "none"
    for key, name in unknown_models(config).items():
        out.append(
            Check(
                key,
                FAIL,
                f"{name!r} is not installed (installed: {installed}); its images would all fail",
                f"set {key} to an installed model, or `edgecv models add` it",
            )
        )
    for name, path in packages.items():
        try:
            package = load_package(path, verify=True)
            detail = f"{package.version} at {path}, sha256 ok"
            if load:
                from edgecv.runtime.detector import Detector

                detector = Detector.open(
                    package, backend=config.backend, precision=config.precision, device=config.device
                )
                detail += f", loads ({detector.backend}/{detector.precision} on {detector.device})"
            out.append(Check(f"model {name}", OK, detail))
        except Exception as exc:
            out.append(
                Check(
                    f"model {name}",
                    FAIL,
                    str(exc),
                    f"reinstall the package (`edgecv models add`), or remove {path}",
                )
            )
    return out


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_data_dir(config: Config) -> list[Check]:
    data_dir = config.data_dir
    if not data_dir.exists():
        parent = _existing_parent(data_dir)
        if os.access(parent, os.W_OK):
            return [Check("data dir", OK, f"{data_dir} does not exist yet; it is created on first start")]
        return [
            Check(
                "data dir",
                FAIL,
                f"{data_dir} does not exist and {parent} is not writable",
                f"create it: install -d -o edgecv -g edgecv {data_dir}",
            )
        ]
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return [
            Check(
                "data dir",
                FAIL,
                f"{data_dir} is not writable: {exc.strerror}",
                f"chown -R edgecv:edgecv {data_dir} (or run doctor as the agent's user: sudo -u edgecv edgecv doctor)",
            )
        ]
    return [Check("data dir", OK, f"{data_dir} is writable")]


def check_permissions(config: Config) -> list[Check]:
    """FAIL for a data dir, job log or config file that other local users can read: the job log holds
    webhook secrets and the config the upstream key."""
    results = []
    candidates = [
        ("data dir", config.data_dir, "chmod 0700"),
        ("job log", config.db_path, "chmod 0600"),
        ("config file", config.source_file, "chmod 0600"),
    ]
    for what, path, fix in candidates:
        if path is None or not Path(path).exists():
            continue
        if readable_by_others(Path(path)):
            mode = stat.S_IMODE(Path(path).stat().st_mode)
            results.append(
                Check(
                    "permissions",
                    FAIL,
                    f"{what} {path} is readable by other local users (mode {mode:04o})",
                    f"{fix} {path} (0750/0640 with the service group also do); the agent also tightens its data dir at start",
                )
            )
    if not results:
        results.append(Check("permissions", OK, "data dir, job log and config file are private to this user"))
    return results


def check_disk(config: Config) -> list[Check]:
    where = _existing_parent(config.data_dir)
    free = shutil.disk_usage(where).free
    used = dir_bytes(config.data_dir) if config.data_dir.exists() else 0
    budget = config.sync.disk_budget_mb * MIB
    detail = f"{format_size(free)} free on {where}; data dir uses {format_size(used)} of a {format_size(budget)} budget"
    paused = free_space_reason(where, config.min_free_mb * MIB)
    if paused is not None:
        return [Check("disk", FAIL, paused, f"free space on {where}: the agent takes no new images until then")]
    if free < MIN_FREE_BYTES:
        return [Check("disk", WARN, detail + " (little room left)", f"free space on {where}")]
    if free < budget - used:
        return [
            Check(
                "disk",
                WARN,
                detail + " (the disk fills before the budget is reached)",
                f"lower sync.disk_budget_mb to at most {max(1, (free + used) // MIB // 2)}",
            )
        ]
    return [Check("disk", OK, detail)]


def check_database(config: Config) -> list[Check]:
    path = config.db_path
    if not path.exists():
        return [Check("job log", OK, f"{path} not created yet (the agent creates it on first start)")]
    try:
        health = db.database_health(path)
    except EdgecvError as exc:
        hint = (
            "restart the agent, or `edgecv restore FILE`"
            if "damaged" in str(exc)
            else "run doctor as the agent's user: sudo -u edgecv edgecv doctor"
        )
        return [Check("job log", FAIL, str(exc), hint)]
    known = schema_version()
    out: list[Check] = []
    if health.user_version > known:
        out.append(
            Check(
                "job log schema",
                FAIL,
                f"schema {health.user_version} was written by a newer edgecv (this one knows {known})",
                "upgrade edgecv; the database is not modified by this version",
            )
        )
    elif health.user_version < known:
        out.append(
            Check(
                "job log schema",
                WARN,
                f"schema {health.user_version}; the agent migrates it to {known} on start",
            )
        )
    if health.integrity == "ok":
        out.append(
            Check(
                "job log",
                OK,
                f"{path} integrity ok, {format_size(health.size_bytes)}, schema {health.user_version}",
            )
        )
    else:
        out.append(
            Check(
                "job log",
                FAIL,
                f"integrity_check: {health.integrity[:300]}",
                "restart the agent: it sets the damaged log aside in damaged/ and rebuilds it from the "
                "readable rows and the spool; or stop it and `edgecv restore FILE` from a backup",
            )
        )
    damaged = sorted(config.damaged_dir.glob("*.reason")) if config.damaged_dir.is_dir() else []
    if damaged:
        out.append(
            Check(
                "job log damage",
                WARN,
                f"{len(damaged)} damaged job log(s) set aside at start-up, newest {damaged[-1].with_suffix('')}",
                f"read {damaged[-1]}; keep the file for support, delete it once no longer needed",
            )
        )
    wal = f"WAL {format_size(health.wal_bytes)}"
    if health.wal_bytes > WAL_WARN_BYTES:
        out.append(
            Check(
                "job log WAL",
                WARN,
                f"{wal}: checkpoints are not keeping up (a long-running reader?)",
                "restart the agent; close other programs that hold the database open",
            )
        )
    else:
        out.append(Check("job log WAL", OK, wal))
    return out


def _mount_fstype(path: Path) -> str | None:
    """The file system type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    best, fstype = "", None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        if (target == mount_point or target.startswith(mount_point.rstrip("/") + "/")) and len(
            mount_point
        ) > len(best):
            best, fstype = mount_point, right.split()[0]
    return fstype


def _count_dirs(root: Path, cap: int) -> int:
    count = 0
    for _dirpath, dirnames, _files in os.walk(root):
        count += 1
        if count > cap:
            break
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return count


def check_inbox(config: Config) -> list[Check]:
    inbox = config.inbox
    if inbox is None:
        return [
            Check(
                "inbox",
                FAIL,
                "not set; the agent refuses to start",
                'set inbox = "/srv/edgecv/inbox" in edgecv.toml',
            )
        ]
    if not inbox.is_dir():
        return [
            Check("inbox", FAIL, f"{inbox} does not exist", f"install -d -o edgecv -g edgecv -m 2770 {inbox}")
        ]
    if not os.access(inbox, os.R_OK | os.W_OK | os.X_OK):
        return [
            Check(
                "inbox",
                FAIL,
                f"{inbox} is not readable and writable by this user (the agent moves files out of it)",
                f"chown edgecv:edgecv {inbox} && chmod 2770 {inbox}",
            )
        ]
    fstype = _mount_fstype(inbox)
    if config.poll:
        return [
            Check("inbox", OK, f"{inbox} ({fstype or 'unknown fs'}), polled every {config.poll_interval_s}s")
        ]
    if fstype in NETWORK_FILESYSTEMS or (fstype or "").startswith("fuse"):
        return [
            Check(
                "inbox",
                WARN,
                f"{inbox} is on {fstype}: inotify does not see files written by other machines",
                "set poll = true in edgecv.toml (or run `edgecv agent --poll`)",
            )
        ]
    try:
        limit = int(MAX_WATCHES_PATH.read_text().strip())
    except (OSError, ValueError):
        return [Check("inbox", OK, f"{inbox} exists ({fstype or 'unknown fs'}); inotify limit unknown")]
    folders = _count_dirs(inbox, limit * 4)
    detail = f"{inbox} exists, {folders} folder(s) to watch, inotify max_user_watches {limit}"
    if folders >= limit:
        return [
            Check(
                "inbox",
                FAIL,
                detail,
                f"raise the limit: echo fs.inotify.max_user_watches={folders * 4} > /etc/sysctl.d/60-edgecv.conf "
                "&& sysctl --system (or set poll = true)",
            )
        ]
    if folders > limit // 2:
        return [
            Check(
                "inbox",
                WARN,
                detail + " (other programs share the limit)",
                f"raise fs.inotify.max_user_watches to {folders * 4} in /etc/sysctl.d/",
            )
        ]
    return [Check("inbox", OK, detail)]


def check_upstream(config: Config) -> list[Check]:
    """Reachable, and the API key accepted: ``GET /v1/tenants/{tenant}/cv/jobs?limit=1`` with the key."""
    settings = config.sync
    if not settings.url:
        return [Check("upstream", OK, "sync disabled (no sync.url); results stay on this device")]
    from edgecv.upstream.transport import Transport

    try:
        transport = Transport(settings.url, min(settings.timeout_s, 10.0))
    except EdgecvError as exc:
        return [Check("upstream", FAIL, str(exc), "fix sync.url in edgecv.toml")]
    headers = {"Accept": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    path = f"/v1/tenants/{quote(config.tenant_id, safe='')}/cv/jobs?limit=1"
    try:
        resp = transport.request("GET", path, None, headers)
    except EdgecvError as exc:
        return [
            Check(
                "upstream",
                FAIL,
                f"{settings.url} unreachable: {exc}",
                "check the network, DNS, proxy and firewall to sync.url; results wait in the outbox meanwhile",
            )
        ]
    finally:
        transport.close()
    if resp.status in (401, 403):
        return [
            Check("upstream", OK, f"{settings.url} reachable"),
            Check(
                "upstream auth",
                FAIL,
                f"HTTP {resp.status}: the API key was refused ({resp.error_text()})"
                if settings.api_key
                else f"HTTP {resp.status}: the upstream needs an API key and none is set",
                "set sync.api_key in /etc/edgecv/edgecv.toml (or EDGECV_SYNC_API_KEY in /etc/edgecv/env)",
            ),
        ]
    if 200 <= resp.status < 300:
        return [
            Check("upstream", OK, f"{settings.url} reachable"),
            Check("upstream auth", OK, "API key accepted" if settings.api_key else "no API key needed"),
        ]
    return [
        Check("upstream", OK, f"{settings.url} reachable"),
        Check(
            "upstream auth",
            WARN,
            f"GET {path} answered HTTP {resp.status} ({resp.error_text()}); the key could not be confirmed",
            "check that sync.url is the tenant API base URL (with its path prefix, if any)",
        ),
    ]


def check_mqtt(config: Config) -> list[Check]:
    """With ``[mqtt]`` host set: log in to the broker once (own client id), and the events waiting."""
    settings = config.mqtt
    if not settings.host:
        return [Check("mqtt", OK, "off (no mqtt.host)")]
    from edgecv.mqtt import broker_address, probe
    from edgecv.store import mqtt as mqtt_sql

    host, port = broker_address(settings)
    waiting = ""
    if config.db_path.exists():
        with db.open_readonly(config.db_path) as store:
            backlog = db.optional(mqtt_sql.backlog, store, default=0)
        waiting = f"; {backlog} event(s) waiting in the job log" if backlog else ""
    try:
        problem = probe(settings)
    except EdgecvError as exc:
        return [Check("mqtt", FAIL, str(exc), "fix [mqtt] in edgecv.toml")]
    if problem is None:
        tls = " over TLS" if settings.tls else ""
        who = f" as {settings.username}" if settings.username else ""
        return [Check("mqtt", OK, f"logged in to {host}:{port}{tls}{who}{waiting}")]
    hint = {
        "login": "set mqtt.username and mqtt.password (or EDGECV_MQTT_PASSWORD, mqtt.password_file) "
        "to an account the broker knows",
        "tls": "point mqtt.ca_file at the CA that signed the broker's certificate; check mqtt.host and port",
    }.get(problem.kind, "check that the broker runs and that mqtt.host and mqtt.port reach it")
    return [Check("mqtt", FAIL, problem.text + waiting, hint)]


def check_clock(config: Config, now: datetime | None = None) -> list[Check]:
    now = now or datetime.now(timezone.utc)
    hint = "enable time sync: timedatectl set-ntp true (and check the RTC battery)"
    if now.year < CLOCK_MIN_YEAR:
        return [Check("clock", FAIL, f"system time is {now:%Y-%m-%d %H:%M}Z, before {CLOCK_MIN_YEAR}", hint)]
    newest = None
    if config.db_path.exists():
        try:
            with db.open_readonly(config.db_path) as store:
                newest = db.newest_job_time(store)
        except EdgecvError:
            newest = None
    if newest:
        stamp = datetime.fromisoformat(newest.replace("Z", "+00:00"))
        if stamp > now + CLOCK_SKEW:
            return [
                Check(
                    "clock",
                    FAIL,
                    f"system time {now:%Y-%m-%dT%H:%M:%S}Z is behind the newest job ({newest}); "
                    "the clock went backwards",
                    hint,
                )
            ]
    return [Check("clock", OK, f"{now:%Y-%m-%dT%H:%M:%S}Z")]


CHECKS: dict[str, Callable[[Config], list[Check]]] = {
    "agent": check_agent,
    "versions": check_versions,
    "devices": check_devices,
    "models": check_models,
    "data-dir": check_data_dir,
    "disk": check_disk,
    "database": check_database,
    "permissions": check_permissions,
    "inbox": check_inbox,
    "upstream": check_upstream,
    "mqtt": check_mqtt,
    "clock": check_clock,
}


def run_checks(config: Config, *, skip: Iterable[str] = ()) -> list[Check]:
    """Every check in :data:`CHECKS` order except those named in ``skip``."""
    skipped = set(skip)
    unknown = skipped - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(sorted(unknown))}; known: {', '.join(CHECKS)}")
    # a running agent's inbox, models and poll mode are what matter, not the config file's
    config = with_agent_settings(config, running_agent(config))
    results: list[Check] = []
    for name, check in CHECKS.items():
        if name in skipped:
            continue
        try:
            results.extend(check(config))
        except SchemaTooNew as exc:
            results.append(Check(name, FAIL, str(exc), "upgrade edgecv"))
        except Exception as exc:  # one broken probe must not hide the others
            log.debug("doctor check %s crashed", name, exc_info=True)
            results.append(Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}"))
    return results


def failed(results: Iterable[Check]) -> bool:
    return any(r.status == FAIL for r in results)

"""What ``edgecv status`` reports: a snapshot of the job log, the sync relay and the running agent.

The job log is opened read-only (nothing is migrated or created). The running agent publishes what it
loaded in ``<data_dir>/agent-state.json`` (:func:`write_agent_state`); whether it is still running is
read from its data-dir lock, which the kernel releases when the process dies.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edgecv import __version__
from edgecv.catalog.folder import scan
from edgecv.config import Config
from edgecv.errors import is_disk_full
from edgecv.hard_images import share_bytes
from edgecv.records import Job, utc_now
from edgecv.runtime.installed import installed_models
from edgecv.store import hard_images as hard_sql
from edgecv.store import readonly as db
from edgecv.store import retention as retention_sql
from edgecv.store import schema_version
from edgecv.store.counts import HasConn, finished_by_minute, jobs_by_status, outbox_by_state
from edgecv.upstream.budget import MIB, DiskBudget, format_size, free_space_reason

log = logging.getLogger(__name__)

AGENT_STATE_NAME = "agent-state.json"
_state_lock = threading.Lock()


def agent_state_path(config: Config) -> Path:
    return config.data_dir / AGENT_STATE_NAME


def agent_settings(config: Config) -> dict[str, Any]:
    """The settings a running agent works with, as published in its state file (never a secret)."""
    return {
        "dataDir": str(config.data_dir),
        "inbox": None if config.inbox is None else str(config.inbox),
        "defaultModel": config.default_model,
        "folders": dict(config.folders),
        "modelsDirs": [str(p) for p in config.models_dirs],
        "workers": config.workers,
        "poll": config.poll,
        "pollIntervalS": config.poll_interval_s,
        "device": config.device,
        "backend": config.backend,
        "api": {"enabled": config.api.enabled, "host": config.api.host, "port": config.api.port},
        "sync": bool(config.sync.url),
    }


def write_agent_state(config: Config, detectors: Mapping[str, Any], *, api_url: str | None = None) -> Path:
    """Publish this process's pid, effective settings and loaded models (``name → Detector``) for
    ``edgecv status`` and ``edgecv doctor``.

    Call it when the agent starts (with ``{}``) and after a model is loaded. Models already recorded by
    the same process (another worker's pool) are kept, so each pool can report only its own; so is the
    API's URL. The file is replaced atomically, and removed on a clean stop (:func:`remove_agent_state`).
    """
    path = agent_state_path(config)
    with _state_lock:
        previous = read_agent_state(config) or {}
        same_process = previous.get("pid") == os.getpid()
        models = dict(previous.get("models", {})) if same_process else {}
        for name, detector in detectors.items():
            package = getattr(detector, "package", None)
            models[name] = {
                "version": getattr(package, "version", None),
                "backend": getattr(detector, "backend", None),
                "precision": getattr(detector, "precision", None),
                "device": getattr(detector, "device", None),
            }
        doc = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "version": __version__,
            "startedAt": previous.get("startedAt") if same_process else utc_now(),
            "updatedAt": utc_now(),
            "devicePreference": config.device,
            "settings": agent_settings(config),
            "apiUrl": api_url or (previous.get("apiUrl") if same_process else None),
            "models": models,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a full disk must not stop the agent: status then shows less
            tmp.unlink(missing_ok=True)
            if not is_disk_full(exc):
                raise
            log.warning("agent state %s not written: disk full", path)
    return path


def remove_agent_state(config: Config) -> None:
    """Forget this process's state file on a clean stop (one written by another process stays)."""
    state = read_agent_state(config)
    if state is not None and state.get("pid") == os.getpid():
        agent_state_path(config).unlink(missing_ok=True)


def read_agent_state(config: Config) -> dict[str, Any] | None:
    try:
        return json.loads(agent_state_path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def running_agent(config: Config) -> dict[str, Any] | None:
    """The state of the agent running on ``config.data_dir`` (``{}`` while it starts up), or None
    when none runs (a state file left by a killed agent is ignored: the kernel released its lock)."""
    if not agent_running(config.data_dir):
        return None
    state = read_agent_state(config) or {}
    return state if "settings" in state else {}


def with_agent_settings(config: Config, state: Mapping[str, Any] | None) -> Config:
    """``config`` with the running agent's effective settings (inbox, models, poll …) in place."""
    settings = (state or {}).get("settings")
    if not settings:
        return config
    api = settings.get("api", {})
    merged = dataclasses.replace(
        config,
        inbox=None if settings.get("inbox") is None else Path(settings["inbox"]),
        default_model=settings.get("defaultModel", config.default_model),
        folders=dict(settings.get("folders", config.folders)),
        models_dirs=[Path(p) for p in settings.get("modelsDirs", config.models_dirs)],
        workers=settings.get("workers", config.workers),
        poll=settings.get("poll", config.poll),
        poll_interval_s=settings.get("pollIntervalS", config.poll_interval_s),
        device=settings.get("device", config.device),
        backend=settings.get("backend", config.backend),
        api=dataclasses.replace(
            config.api,
            enabled=api.get("enabled", config.api.enabled),
            host=api.get("host", config.api.host),
            port=api.get("port", config.api.port),
        ),
    )
    merged.source_file = config.source_file
    return merged


def describe_agent(config: Config, state: Mapping[str, Any] | None) -> str:
    """``agent running (pid N) since T, inbox X, …`` or ``no agent running on DATA_DIR``."""
    if state is None:
        return f"no agent running on {config.data_dir}"
    if not state:
        return f"agent running on {config.data_dir}, still starting up"
    settings = state["settings"]
    api = settings.get("api", {})
    url = state.get("apiUrl") or f"http://{api.get('host')}:{api.get('port')}"
    api_text = f"API on {url}" if api.get("enabled") else "API off"
    watch = f"polled every {settings.get('pollIntervalS')}s" if settings.get("poll") else "inotify"
    return (
        f"agent running (pid {state.get('pid')}) since {state.get('startedAt')}, "
        f"inbox {settings.get('inbox')} ({watch}), default model {settings.get('defaultModel')}, "
        f"{settings.get('workers')} worker(s), {api_text}"
    )


def agent_running(data_dir: Path) -> bool:
    """True when a process holds the agent's data-dir lock (``agent.lock``)."""
    lock = Path(data_dir) / "agent.lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _job_brief(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    brief: dict[str, Any] = {"id": job.id, "model": job.model, "completedAt": job.completed_at}
    if job.status == "completed":
        brief["detections"] = len((job.result or {}).get("detections", []))
        brief["device"] = job.device
        brief["inferenceMs"] = job.inference_ms
    else:
        brief["error"] = {"code": job.error_code, "message": job.error_message}
    return brief


def _agent(config: Config) -> dict[str, Any]:
    running = agent_running(config.data_dir)
    state = read_agent_state(config)
    doc: dict[str, Any] = {"running": running}
    if state is not None:
        doc.update(
            {
                "pid": state.get("pid"),
                "startedAt": state.get("startedAt"),
                "version": state.get("version"),
                "modelsLoaded": state.get("models", {}),
                "stale": not running,  # the file outlived its process
            }
        )
        if running and "settings" in state:
            doc.update(settings=state["settings"], apiUrl=state.get("apiUrl"))
    return doc


def _models(config: Config) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "version": pkg.version,
            "weights": [f"{w.backend}/{w.precision}" for w in pkg.weights],
            "path": str(pkg.path),
        }
        for name, pkg in sorted(installed_models(config).items())
    ]


def _sync(config: Config, store: db.ReadOnlyStore) -> dict[str, Any]:
    from edgecv.store import outbox

    backlog = db.optional(lambda: outbox.backlog(store).to_dict())
    if backlog is None:  # an older schema without sync_images: count the outbox alone
        counts = outbox_by_state(store)
        backlog = {**counts, "imagesPending": 0}
    saved = db.optional(outbox.load_status, store) or {}
    return {
        "configured": bool(config.sync.url),
        "url": config.sync.url,
        "state": saved.get("state", "never-run" if config.sync.url else "disabled"),
        "online": None if saved.get("online") is None else bool(saved["online"]),
        "lastError": saved.get("last_error"),
        "lastSuccessAt": saved.get("last_success_at"),
        "backoffUntil": saved.get("backoff_until"),
        "backlog": backlog,
    }


def status_snapshot(config: Config) -> dict[str, Any]:
    """Everything ``edgecv status`` prints. Raises SchemaTooNew for a database from a newer edgecv."""
    agent = _agent(config)
    config = with_agent_settings(config, agent)  # a running agent's inbox and models, not the config's
    snapshot: dict[str, Any] = {
        "version": __version__,
        "dataDir": str(config.data_dir),
        "inbox": None if config.inbox is None else str(config.inbox),
        "agent": agent,
        "models": _models(config),
        "catalog": _catalog(config),
        "intake": _intake(config),
    }
    if not config.db_path.exists():
        snapshot.update(
            database={"path": str(config.db_path), "exists": False},
            queue={"depth": 0, "processing": 0},
            jobs=dict.fromkeys(("queued", "processing", "completed", "failed"), 0),
            lastCompleted=None,
            lastFailed=None,
            sync=_sync_without_db(config),
            retention=_retention(config, None),
            mqtt=_mqtt(config, None),
            hardImages=_hard_images(config, ({}, 0), {}),
        )
        return snapshot
    with db.open_readonly(config.db_path) as store:
        version = db.check_schema(store, schema_version())
        counts = jobs_by_status(store)
        snapshot.update(
            database={"path": str(config.db_path), "exists": True, "schemaVersion": version},
            queue={"depth": counts["queued"], "processing": counts["processing"]},
            jobs=counts,
            lastCompleted=_job_brief(db.last_job(store, "completed")),
            lastFailed=_job_brief(db.last_job(store, "failed")),
            sync=_sync(config, store),
            retention=_retention(config, db.optional(retention_sql.last_sweep, store)),
            mqtt=_mqtt(config, store),
            hardImages=_hard_images(
                config,
                db.optional(hard_sql.totals, store, default=({}, 0)),
                db.optional(hard_sql.upload_counts, store, default={}),
            ),
        )
    return snapshot


def activity(store: HasConn, *, now: datetime | None = None, minutes: int = 60, failures: int = 5) -> dict[str, Any]:
    """What the job log did lately (the dashboard's status page): completed and failed jobs per minute
    over the last ``minutes`` (every minute listed, oldest first) and the ``failures`` latest failures."""
    now = now or datetime.now(timezone.utc)
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    keys = [(start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M") for i in range(minutes)]
    per_minute = {key: {"minute": key, "completed": 0, "failed": 0} for key in keys}
    for minute, status, count in finished_by_minute(store, keys[0]):
        if minute in per_minute:
            per_minute[minute][status] = count
    series = list(per_minute.values())
    completed = sum(m["completed"] for m in series)
    return {
        "minutes": minutes,
        "since": keys[0] + ":00Z",
        "completed": completed,
        "failed": sum(m["failed"] for m in series),
        "perMinute": series,
        "jobsPerMinute": round(completed / minutes, 2),
        "lastErrors": [_job_brief(job) for job in db.recent_failures(store, failures)],
    }


def disk(config: Config, budget: DiskBudget) -> dict[str, Any]:
    """Spool + job log against ``sync.disk_budget_mb``, free space on the data dir's filesystem, and why
    intake is paused (None when it is not)."""
    try:
        free = shutil.disk_usage(config.data_dir).free
    except OSError:
        free = None
    return {
        "usedBytes": budget.used_bytes(),
        "budgetBytes": config.sync.disk_budget_mb * MIB,
        "freeBytes": free,
        "minFreeBytes": config.min_free_mb * MIB,
        "paused": budget.pause_reason(),
    }


def _mqtt(config: Config, store: db.ReadOnlyStore | None) -> dict[str, Any]:
    """The MQTT publisher's saved view (edgecv.mqtt): connected, last error, events waiting."""
    from edgecv.store import mqtt as mqtt_sql

    saved = (db.optional(mqtt_sql.load_status, store) if store is not None else None) or {}
    mqtt = config.mqtt
    broker = f"{mqtt.host}:{mqtt.port or (8883 if mqtt.tls else 1883)}" if mqtt.host else None
    if saved.get("enabled"):  # what the agent publishes to (its env may differ from this shell's)
        broker = saved.get("broker") or broker
    return {
        "configured": broker is not None,
        "broker": broker,
        "connected": None if saved.get("connected") is None else bool(saved["connected"]),
        "connectedSince": saved.get("connected_since"),
        "lastError": saved.get("last_error"),
        "lastErrorAt": saved.get("last_error_at"),
        "backlog": (db.optional(mqtt_sql.backlog, store, default=0) if store is not None else 0),
        "delivered": saved.get("delivered", 0),
        "lastDeliveredAt": saved.get("last_delivered_at"),
    }


def _mqtt_line(mqtt: Mapping[str, Any], agent_running: bool) -> str:
    waiting = f"backlog {mqtt['backlog']} event(s), {mqtt['delivered']} delivered"
    if not mqtt["configured"]:
        kept = f"; {mqtt['backlog']} event(s) kept until it is set again" if mqtt["backlog"] else ""
        return f"off (no mqtt.host){kept}"
    error = f"; last error ({mqtt['lastErrorAt']}): {mqtt['lastError']}" if mqtt["lastError"] else ""
    if not agent_running:
        return f"{mqtt['broker']}: not publishing (no agent running); {waiting}{error}"
    if mqtt["connected"]:
        return f"connected to {mqtt['broker']} since {mqtt['connectedSince']}; {waiting}"
    if mqtt["connected"] is None:
        return f"{mqtt['broker']}: not connected yet; {waiting}"
    return f"NOT connected to {mqtt['broker']}; {waiting}{error}"




def _hard_images(config: Config, totals: tuple[dict[str, int], int], uploads: dict[str, int]) -> dict[str, Any]:
    """Images kept for labelling (edgecv.hard_images): count by reason, bytes, their disk share, uploads."""
    by_reason, size = totals
    return {
        "kept": sum(by_reason.values()),
        "byReason": by_reason,
        "bytes": size,
        "shareBytes": share_bytes(config),
        "sampling": config.hard_images.enabled,
        "upload": config.hard_images.upload and bool(config.sync.url),
        "uploads": uploads,
    }


def _catalog(config: Config) -> dict[str, Any]:
    """The product catalogue's folder, SKU count and problems (a folder scan: nothing is embedded)."""
    skus, problems = scan(config.catalog_dir)
    return {
        "folder": str(config.catalog_dir),
        "skus": len(skus),
        "problems": sum(1 for p in problems if p.severity == "error"),
    }


def _retention(config: Config, last: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "imagesDays": config.retention.images_days,
        "jobsDays": config.retention.jobs_days,
        "lastSweep": last,
    }


def _intake(config: Config) -> dict[str, Any]:
    """Whether new images are taken: paused while the disk is full (free space measured now) or the
    disk budget refuses them (the relay's saved state is reported under ``sync``)."""
    reason = free_space_reason(config.data_dir, config.min_free_mb * MIB)
    return {"paused": reason is not None, "reason": reason}


def _sync_without_db(config: Config) -> dict[str, Any]:
    return {
        "configured": bool(config.sync.url),
        "url": config.sync.url,
        "state": "never-run" if config.sync.url else "disabled",
        "online": None,
        "lastError": None,
        "lastSuccessAt": None,
        "backoffUntil": None,
        "backlog": {"pending": 0, "sent": 0, "parked": 0, "imagesPending": 0},
    }


def _retention_line(retention: Mapping[str, Any]) -> str:
    """The ``status`` line: the limits, then what the last sweep did."""
    images_days, jobs_days, last = retention["imagesDays"], retention["jobsDays"], retention["lastSweep"]
    if images_days <= 0 and jobs_days <= 0:
        return "off (results kept; images kept until the disk budget needs room)"
    limits = []
    if images_days > 0:
        limits.append(f"images {images_days} d")
    if jobs_days > 0:
        limits.append(f"results {jobs_days} d")
    text = ", ".join(limits) + " once synced"
    if last is None:
        return text + "; no sweep yet (the agent sweeps at start, then daily)"
    text += f"; last sweep {last['at']}: removed {last['imagesRemoved']} image(s), {last['jobsRemoved']} result(s)"
    waiting = last.get("imagesWaiting", 0) + last.get("jobsWaiting", 0)
    if waiting:
        text += f"; {waiting} kept until synced"
    return text


def status_lines(snapshot: dict[str, Any]) -> list[str]:
    """The human-readable lines of ``edgecv status``."""
    agent = snapshot["agent"]
    if agent["running"]:
        agent_line = f"running (pid {agent.get('pid', '?')}, since {agent.get('startedAt', '?')})"
        api = agent.get("settings", {}).get("api")
        if api is not None:
            url = agent.get("apiUrl") or f"http://{api['host']}:{api['port']}"
            agent_line += f", API on {url}" if api["enabled"] else ", API off"
    else:
        agent_line = "no agent running (inbox and models below are from the config)"
    jobs = snapshot["jobs"]
    lines = [
        f"agent:      {agent_line}",
        f"data dir:   {snapshot['dataDir']}",
        f"inbox:      {snapshot['inbox'] or '(not set)'}",
        f"queue:      {snapshot['queue']['depth']} queued, {snapshot['queue']['processing']} processing",
        "jobs:       " + ", ".join(f"{n} {s}" for s, n in jobs.items()),
    ]
    intake = snapshot.get("intake") or {}
    if intake.get("paused"):
        lines.append(f"intake:     PAUSED: {intake['reason']}")
    done = snapshot["lastCompleted"]
    lines.append(
        f"last done:  {done['id']} {done['model']} at {done['completedAt']} ({done['detections']} detection(s))"
        if done
        else "last done:  none"
    )
    failed = snapshot["lastFailed"]
    lines.append(
        f"last fail:  {failed['id']} {failed['model']} at {failed['completedAt']}: "
        f"{failed['error']['code']}: {failed['error']['message']}"
        if failed
        else "last fail:  none"
    )
    sync = snapshot["sync"]
    backlog = sync["backlog"]
    if sync["configured"]:
        sync_line = (
            f"{sync['state']} → {sync['url']}; backlog {backlog['pending']} pending, "
            f"{backlog['parked']} parked, {backlog['imagesPending']} image(s)"
        )
        if sync["lastError"]:
            sync_line += f"; last error: {sync['lastError']}"
    else:
        sync_line = f"disabled (no sync.url); {backlog['pending']} result(s) kept locally"
    lines.append(f"sync:       {sync_line}")
    lines.append(f"retention:  {_retention_line(snapshot['retention'])}")
    if "mqtt" in snapshot:
        lines.append(f"mqtt:       {_mqtt_line(snapshot['mqtt'], agent['running'])}")
    catalog = snapshot.get("catalog") or {}
    if catalog.get("skus"):
        problems = f"; {catalog['problems']} problem(s): `edgecv catalog check`" if catalog["problems"] else ""
        lines.append(f"catalog:    {catalog['skus']} SKU(s) in {catalog['folder']}{problems}")
    else:
        lines.append(f"catalog:    none in {catalog.get('folder')} (products keep the detector's labels)")
    hard = snapshot.get("hardImages")
    if hard is not None:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(hard["byReason"].items()))
        lines.append(
            f"hard imgs:  {hard['kept']} kept for labelling{f' ({reasons})' if reasons else ''}, "
            f"{format_size(hard['bytes'])} of {format_size(hard['shareBytes'])}; "
            + ("sampling on" if hard["sampling"] else "sampling off (flags only)")
            + (
                f"; upload: {hard['uploads'].get('sent', 0)} sent, {hard['uploads'].get('pending', 0)} "
                f"pending, {hard['uploads'].get('parked', 0)} parked"
                if hard["upload"]
                else ""
            )
            + ("; `edgecv export --hard|--flagged`" if hard["kept"] else "")
        )
    loaded = agent.get("modelsLoaded", {}) if agent["running"] else {}
    if not snapshot["models"]:
        lines.append("models:     none installed")
    for model in snapshot["models"]:
        where = loaded.get(model["name"])
        on = (
            f"loaded on {where['device']} ({where['backend']}/{where['precision']})"
            if where
            else "not loaded"
        )
        lines.append(f"model:      {model['name']} {model['version']} [{', '.join(model['weights'])}] {on}")
    return lines

"""MQTT event SQL: the event outbox written with a job's completion, and the publisher's saved state.

The publishing loop lives in :mod:`edgecv.mqtt`; this module only reads and writes rows. An event row
is written by the transaction that finishes a job (``Store._on_finished`` calls
:func:`enqueue_job_event`) while the ``mqtt_status`` row says MQTT is enabled, and is deleted only once
the broker acknowledged it (:func:`mark_delivered`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecv.records import Job, utc_now

if TYPE_CHECKING:
    from edgecv.store import Store

_EVENT_STATUSES = ("completed", "failed")


@dataclass(frozen=True)
class MqttEvent:
    """One event to publish: its outbox row, and its job (None once retention removed the job)."""

    seq: int
    job_id: str
    status: str
    job: Job | None


def enqueue_job_event(conn: sqlite3.Connection, job: Job) -> None:
    """Inside the transaction that finishes ``job``: its event row (when MQTT is enabled), and the
    newest compliance score when its summary carries one."""
    if job.status not in _EVENT_STATUSES:
        return
    row = conn.execute("SELECT enabled FROM mqtt_status WHERE id = 1").fetchone()
    if row is None or not row[0]:
        return
    conn.execute(
        "INSERT INTO mqtt_outbox (job_id, status, created_at) VALUES (?, ?, ?)",
        (job.id, job.status, job.completed_at or utc_now()),
    )
    summary = (job.result or {}).get("summary") if isinstance(job.result, dict) else None
    score = summary.get("complianceScore") if isinstance(summary, dict) else None
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        conn.execute(
            "UPDATE mqtt_status SET last_compliance = ?, last_compliance_job = ? WHERE id = 1",
            (float(score), job.id),
        )


def set_enabled(store: Store, enabled: bool, broker: str | None = None) -> None:
    """Start (or stop) writing events for finished jobs. Stopping keeps the events not yet delivered:
    they are published when MQTT is configured again."""
    with store.transaction() as conn:
        if enabled:
            conn.execute(
                "INSERT INTO mqtt_status (id, enabled, broker, updated_at) VALUES (1, 1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET enabled = 1, broker = excluded.broker,"
                " updated_at = excluded.updated_at",
                (broker, utc_now()),
            )
        else:
            conn.execute(
                "UPDATE mqtt_status SET enabled = 0, connected = NULL, updated_at = ? WHERE id = 1 AND enabled = 1",
                (utc_now(),),
            )


def is_enabled(store: Any) -> bool:
    row = store.conn.execute("SELECT enabled FROM mqtt_status WHERE id = 1").fetchone()
    return bool(row and row[0])


def pending_events(store: Store, limit: int, after_seq: int = 0) -> list[MqttEvent]:
    """Events not yet acknowledged, in publishing order, after ``after_seq``."""
    from edgecv.store import _job  # the one place rows become records

    rows = store.conn.execute(
        "SELECT o.seq AS seq, o.job_id AS event_job_id, o.status AS event_status, j.* FROM mqtt_outbox o"
        " LEFT JOIN jobs j ON j.id = o.job_id WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
        (after_seq, limit),
    ).fetchall()
    return [
        MqttEvent(
            seq=r["seq"],
            job_id=r["event_job_id"],
            status=r["event_status"],
            job=_job(r) if r["id"] is not None else None,
        )
        for r in rows
    ]


def mark_delivered(store: Store, seqs: Sequence[int]) -> int:
    """The broker acknowledged these events: delete their rows and count them; returns how many."""
    if not seqs:
        return 0
    now = utc_now()
    deleted = 0
    with store.transaction() as conn:
        for start in range(0, len(seqs), 500):
            chunk = tuple(seqs[start : start + 500])
            marks = ",".join("?" * len(chunk))
            deleted += conn.execute(f"DELETE FROM mqtt_outbox WHERE seq IN ({marks})", chunk).rowcount
        conn.execute(
            "UPDATE mqtt_status SET delivered = delivered + ?, last_delivered_at = ?, updated_at = ? WHERE id = 1",
            (deleted, now, now),
        )
    return deleted


def save_connection(store: Store, *, connected: bool, error: str | None = None) -> None:
    """Record the broker connection: up (clears the last error) or down with ``error``."""
    now = utc_now()
    with store.transaction() as conn:
        if connected:
            conn.execute(
                "UPDATE mqtt_status SET connected = 1, connected_since = ?, last_error = NULL,"
                " last_error_at = NULL, updated_at = ? WHERE id = 1",
                (now, now),
            )
        else:
            conn.execute(
                "UPDATE mqtt_status SET connected = 0, connected_since = NULL,"
                " last_error = COALESCE(?, last_error), last_error_at = CASE WHEN ? IS NULL"
                " THEN last_error_at ELSE ? END, updated_at = ? WHERE id = 1",
                (error, error, now, now),
            )


def load_status(store: Any) -> dict[str, Any] | None:
    """The ``mqtt_status`` row as a dict (None before MQTT was ever configured)."""
    row = store.conn.execute("SELECT * FROM mqtt_status WHERE id = 1").fetchone()
    return dict(row) if row else None


def backlog(store: Any) -> int:
    """Events waiting for the broker's acknowledgement."""
    return store.conn.execute("SELECT COUNT(*) FROM mqtt_outbox").fetchone()[0]

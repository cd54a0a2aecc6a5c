"""Retention SQL: which images and results are old enough *and* synced to be removed, and removing them.

"Synced" means: every job of the observation finished, its result acknowledged by the upstream (outbox
row ``sent``, or forgotten after it was sent: every finished job gets an outbox row in the transaction
that finishes it, and only ``sent`` rows are ever deleted), no image upload pending, and for a result no
webhook delivery still pending. A parked result (rejected by the upstream) never reached it: it is kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgecv.records import utc_now

if TYPE_CHECKING:
    from edgecv.store import Store

SWEEP_KEY = "retention.last_sweep"

_JOB_UNSYNCED = (
    "(j.status IN ('queued', 'processing') OR EXISTS (SELECT 1 FROM outbox x WHERE x.job_id = j.id"
    " AND x.state IN ('pending', 'parked')))"
)
_IMAGE_SYNCED = (
    f"NOT EXISTS (SELECT 1 FROM jobs j WHERE j.observation_id = o.id AND {_JOB_UNSYNCED})"
    " AND NOT EXISTS (SELECT 1 FROM sync_images i WHERE i.observation_id = o.id AND i.state = 'pending')"
)
_NOT_PRUNED = (
    "NOT EXISTS (SELECT 1 FROM spool_retention r WHERE r.observation_id = o.id AND r.action = 'pruned')"
)
_JOB_SYNCED = (
    f"j.status IN ('completed', 'failed') AND NOT {_JOB_UNSYNCED}"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.job_id = j.id AND d.state = 'pending')"
)


def expired_images(store: Store, before: str, limit: int) -> list[tuple[str, str]]:
    """``(observation_id, spool_path)`` of images received before ``before`` (ISO) that are synced and
    still on disk, oldest first."""
    rows = store.conn.execute(
        f"SELECT o.id, o.spool_path FROM observations o WHERE o.created_at < ? AND {_NOT_PRUNED}"
        f" AND {_IMAGE_SYNCED} ORDER BY o.id LIMIT ?",
        (before, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def images_waiting(store: Store, before: str) -> int:
    """Images old enough to go that are kept because they are not synced yet."""
    return store.conn.execute(
        f"SELECT COUNT(*) FROM observations o WHERE o.created_at < ? AND {_NOT_PRUNED}"
        f" AND NOT ({_IMAGE_SYNCED})",
        (before,),
    ).fetchone()[0]


def expired_jobs(store: Store, before: str, limit: int) -> list[str]:
    """Ids of jobs finished before ``before`` (ISO) whose result is synced, oldest first."""
    rows = store.conn.execute(
        f"SELECT j.id FROM jobs j WHERE j.completed_at < ? AND {_JOB_SYNCED} ORDER BY j.id LIMIT ?",
        (before, limit),
    ).fetchall()
    return [r[0] for r in rows]


def jobs_waiting(store: Store, before: str) -> int:
    """Results old enough to go that are kept because they are not synced (or delivered) yet."""
    return store.conn.execute(
        f"SELECT COUNT(*) FROM jobs j WHERE j.completed_at < ? AND NOT ({_JOB_SYNCED})", (before,)
    ).fetchone()[0]


def delete_jobs(store: Store, job_ids: Sequence[str]) -> int:
    """Remove these jobs with their outbox rows and webhook deliveries; returns how many were removed."""
    if not job_ids:
        return 0
    marks = ",".join("?" * len(job_ids))
    with store.transaction() as conn:
        conn.execute(f"DELETE FROM webhook_deliveries WHERE job_id IN ({marks})", tuple(job_ids))
        conn.execute(f"DELETE FROM outbox WHERE job_id IN ({marks})", tuple(job_ids))
        return conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", tuple(job_ids)).rowcount


def delete_orphan_observations(store: Store) -> int:
    """Remove observations left without jobs whose image is already gone; returns how many."""
    with store.transaction() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT o.id FROM observations o"
                " WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.observation_id = o.id)"
                " AND EXISTS (SELECT 1 FROM spool_retention r WHERE r.observation_id = o.id AND r.action = 'pruned')"
            )
        ]
        for table, column in (
            ("sync_images", "observation_id"),
            ("spool_retention", "observation_id"),
            ("observations", "id"),
        ):
            conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
    return len(ids)


def save_sweep(store: Store, report: dict[str, Any]) -> None:
    """Remember the last sweep (for ``status``) in the settings table."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
            (SWEEP_KEY, json.dumps({**report, "at": report.get("at") or utc_now()})),
        )


def last_sweep(store: Any) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT value FROM settings WHERE key = ?", (SWEEP_KEY,)).fetchone()
    return json.loads(row[0]) if row else None

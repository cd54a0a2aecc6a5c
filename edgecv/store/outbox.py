"""Outbox and upstream-sync SQL: what the relay reads and how it records acknowledgements.

Functions take the :class:`~edgecv.store.Store`. An outbox row is written by the transaction that
finishes a job (``Store._on_finished`` calls :func:`enqueue_job_result`); the relay then moves it from
``pending`` to ``sent`` (the server acknowledged it) or ``parked`` (the server permanently rejected it). Nothing is
deleted before an acknowledgement; retention deletes only ``sent`` rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecv.records import Job, Observation, utc_now
from edgecv.store.counts import outbox_by_state

if TYPE_CHECKING:
    from edgecv.store import Store


@dataclass(frozen=True)
class OutboxEntry:
    """One pending result: the outbox row with its job and observation."""

    outbox_id: int
    idempotency_key: str
    attempts: int
    job: Job
    observation: Observation


@dataclass(frozen=True)
class Ack:
    outbox_id: int
    remote_id: str | None


@dataclass(frozen=True)
class Parked:
    outbox_id: int
    reason: str


@dataclass(frozen=True)
class ImageUpload:
    observation_id: str
    variant: str
    spool_path: str
    media_type: str
    attempts: int


@dataclass(frozen=True)
class Backlog:
    pending: int
    parked: int
    sent: int
    images_pending: int

    def to_dict(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "parked": self.parked,
            "sent": self.sent,
            "imagesPending": self.images_pending,
        }


def enqueue_job_result(conn: sqlite3.Connection, job: Job) -> None:
    """Inside the transaction that finishes ``job``: its outbox row, keyed ``<jobId>:v1`` once and for
    all (a retry of the finish inserts nothing)."""
    conn.execute(
        "INSERT OR IGNORE INTO outbox (job_id, idempotency_key, created_at) VALUES (?, ?, ?)",
        (job.id, f"{job.id}:v1", job.completed_at),
    )


def _converters() -> tuple[Any, Any]:
    from edgecv.store import _job, _observation  # the one place rows become records

    return _job, _observation


def pending_entries(store: Store, limit: int, after_id: int = 0) -> list[OutboxEntry]:
    """Up to ``limit`` pending entries in outbox order, with ``outbox_id > after_id``."""
    return _entries(store, "o.id > ? ORDER BY o.id LIMIT ?", (after_id, limit))


def entries_by_id(store: Store, outbox_ids: Sequence[int]) -> list[OutboxEntry]:
    """The pending entries (job and observation) for these outbox rows, in outbox order."""
    found: list[OutboxEntry] = []
    for chunk in _chunks(sorted(outbox_ids), 500):
        found.extend(_entries(store, f"o.id IN ({','.join('?' * len(chunk))}) ORDER BY o.id", tuple(chunk)))
    return found


def _entries(store: Store, where: str, params: tuple[Any, ...]) -> list[OutboxEntry]:
    to_job, to_observation = _converters()
    rows = store.conn.execute(
        "SELECT o.id AS outbox_id, o.idempotency_key, o.attempts AS outbox_attempts, j.*"
        f" FROM outbox o JOIN jobs j ON j.id = o.job_id WHERE o.state = 'pending' AND {where}",
        params,
    ).fetchall()
    obs_ids = sorted({r["observation_id"] for r in rows})
    observations: dict[str, Observation] = {}
    for chunk in _chunks(obs_ids, 500):
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(f"SELECT * FROM observations WHERE id IN ({marks})", chunk):
            observations[row["id"]] = to_observation(row)
    return [
        OutboxEntry(
            outbox_id=r["outbox_id"],
            idempotency_key=r["idempotency_key"],
            attempts=r["outbox_attempts"],
            job=to_job(r),
            observation=observations[r["observation_id"]],
        )
        for r in rows
    ]


def pending_payloads(store: Store, limit: int, after_id: int = 0) -> list[tuple[int, str, str, bytes | None]]:
    """``(outbox_id, idempotency_key, job_id, payload)`` of pending rows after ``after_id``; ``payload`` is
    the stored encoded item, or None when it was never encoded."""
    rows = store.conn.execute(
        "SELECT id, idempotency_key, job_id, payload FROM outbox WHERE state = 'pending' AND id > ?"
        " ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def unencoded_ids(store: Store, limit: int) -> list[int]:
    rows = store.conn.execute(
        "SELECT id FROM outbox WHERE state = 'pending' AND payload IS NULL ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [r[0] for r in rows]


def save_payloads(store: Store, payloads: Sequence[tuple[int, bytes]]) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE outbox SET payload = ? WHERE id = ? AND state = 'pending' AND payload IS NULL",
            [(body, oid) for oid, body in payloads],
        )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def record_replies(
    store: Store, acks: Sequence[Ack], parked: Sequence[Parked], image_variant: str | None
) -> None:
    """In one transaction: acknowledged rows → ``sent``, rejected rows → ``parked`` with the reason,
    and (when an image policy is on) each acknowledged result's image queued for upload."""
    now = utc_now()
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE outbox SET state = 'sent', acked_at = ?, remote_id = ?, last_error = NULL, payload = NULL"
            " WHERE id = ? AND state = 'pending'",
            [(now, a.remote_id, a.outbox_id) for a in acks],
        )
        conn.executemany(
            "UPDATE outbox SET state = 'parked', last_error = ?, attempts = attempts + 1"
            " WHERE id = ? AND state = 'pending'",
            [(p.reason, p.outbox_id) for p in parked],
        )
        if image_variant is not None and acks:
            _enqueue_images(conn, [a.outbox_id for a in acks], image_variant, now)


def _enqueue_images(conn: sqlite3.Connection, outbox_ids: Sequence[int], variant: str, now: str) -> None:
    for chunk in _chunks(list(outbox_ids), 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(
            "INSERT OR IGNORE INTO sync_images (observation_id, variant, created_at)"
            f" SELECT DISTINCT j.observation_id, ?, ? FROM outbox o JOIN jobs j ON j.id = o.job_id"
            f" WHERE o.id IN ({marks})",
            (variant, now, *chunk),
        )


def record_failure(store: Store, outbox_ids: Sequence[int], error: str, *, count_attempt: bool) -> None:
    """A batch that did not get through: remember why; ``count_attempt`` is False for auth pauses."""
    bump = 1 if count_attempt else 0
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE outbox SET attempts = attempts + ?, last_error = ? WHERE id = ? AND state = 'pending'",
            [(bump, error, oid) for oid in outbox_ids],
        )


def backlog(store: Store) -> Backlog:
    counts = outbox_by_state(store)
    images = store.conn.execute("SELECT COUNT(*) FROM sync_images WHERE state = 'pending'").fetchone()[0]
    return Backlog(counts["pending"], counts["parked"], counts["sent"], images)


def parked_entries(store: Store, limit: int = 20) -> list[tuple[str, str]]:
    """``(job_id, reason)`` of parked results, oldest first."""
    rows = store.conn.execute(
        "SELECT job_id, last_error FROM outbox WHERE state = 'parked' ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [(r[0], r[1] or "") for r in rows]


def requeue_parked(store: Store) -> int:
    """Put parked results back to ``pending`` (after the cause was fixed upstream). Returns how many."""
    with store.transaction() as conn:
        return conn.execute("UPDATE outbox SET state = 'pending' WHERE state = 'parked'").rowcount


def prune_sent(store: Store, acked_before: str) -> int:
    """Retention: forget outbox rows acknowledged before ``acked_before`` (ISO time). Jobs stay."""
    with store.transaction() as conn:
        return conn.execute(
            "DELETE FROM outbox WHERE state = 'sent' AND acked_at < ?", (acked_before,)
        ).rowcount


# -- images ----------------------------------------------------------------------------------------


def pending_images(store: Store, limit: int) -> list[ImageUpload]:
    rows = store.conn.execute(
        "SELECT i.observation_id, i.variant, i.attempts, o.spool_path, o.media_type"
        " FROM sync_images i JOIN observations o ON o.id = i.observation_id"
        " WHERE i.state = 'pending' ORDER BY i.created_at, i.observation_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        ImageUpload(r["observation_id"], r["variant"], r["spool_path"], r["media_type"], r["attempts"])
        for r in rows
    ]


def mark_image(
    store: Store,
    observation_id: str,
    state: str,
    *,
    sha256: str | None,
    error: str | None,
    privacy: dict[str, Any] | None = None,
) -> None:
    """``sent`` (with the hash of the bytes the server holds, and what the privacy filter did to them),
    ``missing`` (file gone, or it could not be checked for faces) or a failed try (state ``pending``,
    attempts + 1)."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE sync_images SET state = ?, sha256 = COALESCE(?, sha256), last_error = ?,"
            " attempts = attempts + ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,"
            " privacy = COALESCE(?, privacy) WHERE observation_id = ?",
            (
                state,
                sha256,
                error,
                1 if state == "pending" else 0,
                state,
                utc_now(),
                None if privacy is None else json.dumps(privacy, sort_keys=True),
                observation_id,
            ),
        )


# -- disk budget -----------------------------------------------------------------------------------

_DONE = (
    "EXISTS (SELECT 1 FROM jobs j WHERE j.observation_id = o.id) AND"
    " NOT EXISTS (SELECT 1 FROM jobs j WHERE j.observation_id = o.id AND j.status IN ('queued', 'processing'))"
)
_RESULTS_SENT = (
    "NOT EXISTS (SELECT 1 FROM jobs j JOIN outbox x ON x.job_id = j.id"
    " WHERE j.observation_id = o.id AND x.state = 'pending')"
)
_IMAGE_SENT = "NOT EXISTS (SELECT 1 FROM sync_images i WHERE i.observation_id = o.id AND i.state = 'pending')"


def synced_images(store: Store, limit: int) -> list[tuple[str, str]]:
    """``(observation_id, spool_path)`` of spooled images that are fully synced, oldest first: every job
    finished, every result acknowledged (or parked), the image uploaded or not wanted."""
    return _retention_candidates(store, f"{_DONE} AND {_RESULTS_SENT} AND {_IMAGE_SENT}", limit, ())


def unsynced_finished_images(store: Store, limit: int) -> list[tuple[str, str]]:
    """Images whose jobs all finished (so downscaling cannot change a result) but that still wait on
    the upstream, and that were not downscaled before; oldest first."""
    clause = f"{_DONE} AND NOT ({_RESULTS_SENT} AND {_IMAGE_SENT})"
    return _retention_candidates(store, clause, limit, ("downscaled",))


def _retention_candidates(
    store: Store, clause: str, limit: int, also_skip: tuple[str, ...]
) -> list[tuple[str, str]]:
    skip = ("pruned", *also_skip)
    marks = ",".join("?" * len(skip))
    rows = store.conn.execute(
        f"SELECT o.id, o.spool_path FROM observations o WHERE {clause}"
        f" AND NOT EXISTS (SELECT 1 FROM spool_retention r WHERE r.observation_id = o.id"
        f" AND r.action IN ({marks})) ORDER BY o.id LIMIT ?",
        (*skip, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def record_retention(store: Store, observation_id: str, action: str, before: int, after: int) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO spool_retention (observation_id, action, bytes_before, bytes_after, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (observation_id, action, before, after, utc_now()),
        )


def retention_counts(store: Store) -> dict[str, int]:
    counts = {"pruned": 0, "downscaled": 0}
    for row in store.conn.execute("SELECT action, COUNT(*) FROM spool_retention GROUP BY action"):
        counts[row[0]] = row[1]
    return counts


# -- relay status ----------------------------------------------------------------------------------

_STATUS_FIELDS = (
    "state",
    "online",
    "last_error",
    "last_error_at",
    "last_success_at",
    "backoff_until",
    "disk_used_bytes",
    "disk_refusing",
)


def save_status(store: Store, status: dict[str, Any]) -> None:
    """Upsert the one ``sync_status`` row (keys: see ``_STATUS_FIELDS``)."""
    values = [status.get(name) for name in _STATUS_FIELDS]
    cols = ", ".join(_STATUS_FIELDS)
    marks = ", ".join("?" * len(_STATUS_FIELDS))
    updates = ", ".join(f"{name} = excluded.{name}" for name in _STATUS_FIELDS)
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO sync_status (id, {cols}, updated_at) VALUES (1, {marks}, ?)"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
            (*values, utc_now()),
        )


def load_status(store: Store) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT * FROM sync_status WHERE id = 1").fetchone()
    return dict(row) if row else None

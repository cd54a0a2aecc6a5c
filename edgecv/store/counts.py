"""The job log's counts: jobs by status, finished jobs per minute, the sync outbox by state, the webhook
backlog.

One set of reads for everyone who counts (``edgecv status``, the agent, ``/metrics``, the relay's
backlog): each takes anything with a ``conn`` (a :class:`~edgecv.store.Store` or the read-only view
of :mod:`edgecv.store.readonly`), so the read-only status command and the live agent count alike.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from edgecv.records import JOB_STATUSES

OUTBOX_STATES = ("pending", "sent", "parked")


class HasConn(Protocol):
    @property
    def conn(self) -> sqlite3.Connection: ...


def jobs_by_status(store: HasConn) -> dict[str, int]:
    """Every job status (``queued``, ``processing``, ``completed``, ``failed``) → how many jobs."""
    return _grouped(store, "SELECT status, COUNT(*) FROM jobs GROUP BY status", JOB_STATUSES)


def outbox_by_state(store: HasConn) -> dict[str, int]:
    """Outbox rows by state: ``pending`` (not acknowledged upstream), ``sent``, ``parked``."""
    return _grouped(store, "SELECT state, COUNT(*) FROM outbox GROUP BY state", OUTBOX_STATES)


def webhook_backlog(store: HasConn) -> int:
    """Webhook deliveries still to send."""
    return store.conn.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'").fetchone()[0]


def finished_by_minute(store: HasConn, since: str) -> list[tuple[str, str, int]]:
    """``(minute, status, jobs)`` for jobs that completed or failed at or after ``since`` (ISO UTC);
    ``minute`` is ``YYYY-MM-DDTHH:MM``, oldest first. One range of the ``jobs_by_finish`` index."""
    rows = store.conn.execute(
        "SELECT substr(completed_at, 1, 16) AS minute, status, COUNT(*) FROM jobs "
        "WHERE status IN ('completed', 'failed') AND completed_at >= ? GROUP BY minute, status ORDER BY minute",
        (since,),
    )
    return [(row[0], row[1], row[2]) for row in rows]


def _grouped(store: HasConn, sql: str, keys: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for row in store.conn.execute(sql):
        counts[row[0]] = row[1]
    return counts

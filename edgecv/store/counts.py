"""The job log's counts: jobs by status, the sync outbox by state, the webhook backlog.

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


def _grouped(store: HasConn, sql: str, keys: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for row in store.conn.execute(sql):
        counts[row[0]] = row[1]
    return counts

"""Webhook SQL: endpoints, and the delivery rows written in the job-finishing transaction.

The delivery loop lives in :mod:`edgecv.webhook_delivery`; this module only reads and writes rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecv.errors import WebhookNotFound
from edgecv.ids import new_id
from edgecv.records import Job, utc_now

if TYPE_CHECKING:
    from edgecv.store import Store

EVENTS = ("job.completed", "job.failed")
_EVENT_FOR_STATUS = {"completed": "job.completed", "failed": "job.failed"}


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    secret: str
    events: list[str]
    source: str
    active: bool
    created_at: str

    def to_dict(self, *, with_secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "source": self.source,
            "createdAt": self.created_at,
        }
        if with_secret:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    endpoint_id: str
    url: str
    secret: str
    event: str
    job_id: str
    payload: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None


def _endpoint(row: sqlite3.Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        url=row["url"],
        secret=row["secret"],
        events=json.loads(row["events"]),
        source=row["source"],
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


def _delivery(row: sqlite3.Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        secret=row["secret"],
        event=row["event"],
        job_id=row["job_id"],
        payload=row["payload"],
        state=row["state"],
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )


def enqueue_job_event(conn: sqlite3.Connection, job: Job) -> int:
    """Called inside the transaction that finishes ``job``: one delivery per subscribed endpoint."""
    event = _EVENT_FOR_STATUS.get(job.status)
    if event is None:
        return 0
    endpoints = [
        row["id"]
        for row in conn.execute("SELECT id, events FROM webhook_endpoints WHERE active = 1 ORDER BY id")
        if event in json.loads(row["events"])
    ]
    if not endpoints:  # the common case: no subscriber, so no payload to encode (~0.5 ms a dense result)
        return 0
    body = json.dumps(
        {"type": event, "timestamp": job.completed_at or utc_now(), "data": job.to_dict()},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    count = 0
    for endpoint_id in endpoints:
        cur = conn.execute(
            "INSERT OR IGNORE INTO webhook_deliveries (id, endpoint_id, event, job_id, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (new_id("msg"), endpoint_id, event, job.id, body, utc_now()),
        )
        count += cur.rowcount
    return count


def create_endpoint(
    store: Store, url: str, secret: str, events: list[str], source: str = "api"
) -> WebhookEndpoint:
    endpoint_id = new_id("whk")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (id, url, secret, events, source, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (endpoint_id, url, secret, json.dumps(list(events)), source, utc_now()),
        )
        row = conn.execute("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    return _endpoint(row)


def sync_config_endpoints(store: Store, urls: list[str], secret: str, events: list[str]) -> None:
    """Make the ``source = 'config'`` endpoints match the config: add new URLs, update the secret and
    events of existing ones, deactivate the ones no longer listed (their rows stay for the history)."""
    with store.transaction() as conn:
        existing = {
            row["url"]: row["id"]
            for row in conn.execute("SELECT id, url FROM webhook_endpoints WHERE source = 'config'")
        }
        for url in urls:
            if url in existing:
                conn.execute(
                    "UPDATE webhook_endpoints SET secret = ?, events = ?, active = 1 WHERE id = ?",
                    (secret, json.dumps(list(events)), existing[url]),
                )
            else:
                conn.execute(
                    "INSERT INTO webhook_endpoints (id, url, secret, events, source, created_at)"
                    " VALUES (?, ?, ?, ?, 'config', ?)",
                    (new_id("whk"), url, secret, json.dumps(list(events)), utc_now()),
                )
        for url, endpoint_id in existing.items():
            if url not in urls:
                conn.execute("UPDATE webhook_endpoints SET active = 0 WHERE id = ?", (endpoint_id,))


def list_endpoints(store: Store) -> list[WebhookEndpoint]:
    rows = store.conn.execute("SELECT * FROM webhook_endpoints WHERE active = 1 ORDER BY id").fetchall()
    return [_endpoint(r) for r in rows]


def get_endpoint(store: Store, endpoint_id: str) -> WebhookEndpoint:
    row = store.conn.execute(
        "SELECT * FROM webhook_endpoints WHERE id = ? AND active = 1", (endpoint_id,)
    ).fetchone()
    if row is None:
        raise WebhookNotFound(f"webhook endpoint {endpoint_id} does not exist; list them with GET …/webhooks")
    return _endpoint(row)


def delete_endpoint(store: Store, endpoint_id: str) -> None:
    """Deactivate an API-registered endpoint and give up its pending deliveries."""
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT source FROM webhook_endpoints WHERE id = ? AND active = 1", (endpoint_id,)
        ).fetchone()
        if row is None:
            raise WebhookNotFound(
                f"webhook endpoint {endpoint_id} does not exist; list them with GET …/webhooks"
            )
        if row["source"] == "config":
            raise WebhookNotFound(
                f"webhook endpoint {endpoint_id} comes from the config file; remove it from [webhooks] endpoints",
                code="webhook_from_config",
            )
        conn.execute("UPDATE webhook_endpoints SET active = 0 WHERE id = ?", (endpoint_id,))
        conn.execute(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'endpoint deleted'"
            " WHERE endpoint_id = ? AND state = 'pending'",
            (endpoint_id,),
        )


_DELIVERY_SELECT = (
    "SELECT d.*, e.url AS url, e.secret AS secret FROM webhook_deliveries d"
    " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
)


def claim_due(
    store: Store,
    *,
    limit: int,
    lease_s: float,
    now: float | None = None,
    skip_endpoints: Collection[str] = (),
) -> list[WebhookDelivery]:
    """Pending deliveries whose time has come, oldest first, except those for ``skip_endpoints``.
    Claiming pushes ``next_attempt_at`` out by ``lease_s`` so a second dispatcher on the same database
    does not send them at the same time."""
    now = time.time() if now is None else now
    skip = list(skip_endpoints)
    not_skipped = f" AND endpoint_id NOT IN ({', '.join('?' * len(skip))})" if skip else ""
    with store.transaction() as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
                f"{not_skipped} ORDER BY next_attempt_at, id LIMIT ?",
                (now, *skip, limit),
            )
        ]
        for delivery_id in ids:
            conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?", (now + lease_s, delivery_id)
            )
        rows = [conn.execute(f"{_DELIVERY_SELECT} WHERE d.id = ?", (i,)).fetchone() for i in ids]
    return [_delivery(r) for r in rows]


def correct_retry_times(store: Store, step_s: float, horizon_s: float) -> int:
    """The system clock jumped by ``step_s``: move the retry times of pending deliveries written
    before the jump back to what they meant (forward: those now past; back: those further ahead than
    ``horizon_s``, the longest backoff or claim). Returns how many were moved."""
    now = time.time()
    if step_s > 0:
        where, params = "next_attempt_at <= ? AND next_attempt_at > 0", (now,)
    else:
        where, params = "next_attempt_at > ?", (now + horizon_s,)
    with store.transaction() as conn:
        return conn.execute(
            f"UPDATE webhook_deliveries SET next_attempt_at = next_attempt_at + ? WHERE state = 'pending' AND {where}",
            (step_s, *params),
        ).rowcount


def mark_delivered(store: Store, delivery_id: str, status: int) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, last_status = ?,"
            " last_error = NULL, delivered_at = ? WHERE id = ?",
            (status, utc_now(), delivery_id),
        )


def mark_attempt_failed(
    store: Store, delivery_id: str, *, status: int | None, error: str, next_attempt_at: float | None
) -> None:
    """Record a failed attempt: retry at ``next_attempt_at``, or give up when it is ``None``."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?,"
            " state = ?, next_attempt_at = ? WHERE id = ?",
            (
                status,
                error[:500],
                "pending" if next_attempt_at is not None else "failed",
                next_attempt_at if next_attempt_at is not None else 0,
                delivery_id,
            ),
        )


def get_delivery(store: Store, delivery_id: str) -> WebhookDelivery:
    row = store.conn.execute(f"{_DELIVERY_SELECT} WHERE d.id = ?", (delivery_id,)).fetchone()
    if row is None:
        raise WebhookNotFound(f"webhook delivery {delivery_id} does not exist")
    return _delivery(row)


def deliveries_for_job(store: Store, job_id: str) -> list[WebhookDelivery]:
    rows = store.conn.execute(f"{_DELIVERY_SELECT} WHERE d.job_id = ? ORDER BY d.id", (job_id,)).fetchall()
    return [_delivery(r) for r in rows]

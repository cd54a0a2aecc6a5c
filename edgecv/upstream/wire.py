"""The wire format of ``POST …/sync/results`` (``sync/openapi.yaml``): canonical JSON, one encoded item
per outbox entry, batches capped by count and bytes, and ``Retry-After`` parsing.

An item is encoded once (its payload hash is computed over exactly the bytes that are sent), so a
retry sends the same bytes under the same idempotency key.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from edgecv.store.outbox import OutboxEntry

_ENVELOPE = len(b'{"items":[]}')


def canonical(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes a payload hash is computed over (server does the same)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Encoded:
    """One outbox entry as it goes on the wire."""

    outbox_id: int
    key: str
    job_id: str
    body: bytes


def encode_entry(entry: OutboxEntry, device_id: str) -> Encoded:
    """The wire item: key, payload hash, and the canonical payload (encoded once, hashed and sent as is)."""
    payload = {"deviceId": device_id, "job": entry.job.to_dict(), "observation": entry.observation.to_dict()}
    body = canonical(payload)
    digest = hashlib.sha256(body).hexdigest()
    key = json.dumps(entry.idempotency_key).encode()
    item = b'{"idempotencyKey":' + key + b',"payloadHash":"' + digest.encode() + b'",' + body[1:]
    return Encoded(entry.outbox_id, entry.idempotency_key, entry.job.id, item)


def split_by_bytes(items: Sequence[Encoded], max_items: int, max_bytes: int) -> list[list[Encoded]]:
    """Consecutive batches of at most ``max_items`` items and ``max_bytes`` body bytes (an item larger
    than ``max_bytes`` travels alone)."""
    batches: list[list[Encoded]] = []
    current: list[Encoded] = []
    size = _ENVELOPE
    for item in items:
        grows = len(item.body) + (1 if current else 0)
        if current and (len(current) >= max_items or size + grows > max_bytes):
            batches.append(current)
            current, size, grows = [], _ENVELOPE, len(item.body)
        current.append(item)
        size += grows
    if current:
        batches.append(current)
    return batches


def batch_body(batch: Sequence[Encoded]) -> bytes:
    return b'{"items":[' + b",".join(i.body for i in batch) + b"]}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)

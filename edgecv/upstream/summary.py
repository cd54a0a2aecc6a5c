"""What ``edgecv sync`` and ``edgecv sync --status`` report: push everything once, and the saved state.

The CLI runs these in its own process, next to (or instead of) a running agent: ``sync_all`` drives
one :class:`~edgecv.upstream.relay.Relay` to the end of the backlog, ``sync_status`` reads what the
agent's relay saved in the job log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edgecv.config import Config
from edgecv.store import Store, outbox
from edgecv.upstream.budget import DiskBudget
from edgecv.upstream.relay import BACKING_OFF, OFFLINE, PAUSED_AUTH, Relay

PROGRESS_MIN_ITEMS = 500


@dataclass
class SyncSummary:
    sent: int
    duplicate: int
    rejected: int
    pending: int
    images_pending: int
    images_uploaded: int
    state: str
    last_error: str | None

    @property
    def complete(self) -> bool:
        return self.pending == 0 and self.images_pending == 0


def sync_all(
    store: Store,
    config: Config,
    *,
    deadline_s: float = 300.0,
    max_failures: int = 5,
    progress: bool | None = None,
    relay: Relay | None = None,
) -> SyncSummary:
    """Push everything pending once. Retries transient failures with the relay's backoff until
    ``max_failures`` in a row or ``deadline_s``; stops at once on 401/403. ``progress``: None = a bar
    on a long backlog when stderr is a terminal."""
    from tqdm import tqdm

    relay = relay or Relay.from_config(store, config)
    total = outbox.backlog(store).pending
    disable = (total < PROGRESS_MIN_ITEMS or None) if progress is None else not progress
    deadline = time.monotonic() + deadline_s
    failures = 0
    with tqdm(total=total, unit="result", desc="sync", disable=disable) as bar:
        while True:
            before = relay.counts.acknowledged
            delay = relay.run_once()
            bar.update(relay.counts.acknowledged - before)
            if relay.state == PAUSED_AUTH or _drained(store):
                break
            if relay.state in (BACKING_OFF, OFFLINE):
                failures += 1
                if failures >= max_failures or time.monotonic() + delay > deadline:
                    break
                time.sleep(delay)
            else:
                failures = 0
            if time.monotonic() > deadline:
                break
    relay.close()
    return _summary(store, relay)


def _drained(store: Store) -> bool:
    backlog = outbox.backlog(store)
    return backlog.pending == 0 and backlog.images_pending == 0


def _summary(store: Store, relay: Relay) -> SyncSummary:
    backlog = outbox.backlog(store)
    return SyncSummary(
        sent=relay.counts.created,
        duplicate=relay.counts.duplicate,
        rejected=relay.counts.rejected,
        pending=backlog.pending,
        images_pending=backlog.images_pending,
        images_uploaded=relay.counts.images_uploaded + relay.counts.images_skipped,
        state=relay.state,
        last_error=relay.last_error,
    )


def sync_status(store: Store, config: Config) -> dict[str, Any]:
    """What ``edgecv sync --status`` prints: the relay's last saved state, backlog, parked results, disk."""
    saved = outbox.load_status(store) or {}
    budget = DiskBudget.from_config(store, config)
    return {
        "url": config.sync.url,
        "state": saved.get("state", "never-run"),
        "online": None if saved.get("online") is None else bool(saved["online"]),
        "lastError": saved.get("last_error"),
        "lastErrorAt": saved.get("last_error_at"),
        "lastSuccessAt": saved.get("last_success_at"),
        "backoffUntil": saved.get("backoff_until"),
        "updatedAt": saved.get("updated_at"),
        "backlog": outbox.backlog(store).to_dict(),
        "parked": [{"jobId": job_id, "reason": reason} for job_id, reason in outbox.parked_entries(store)],
        "disk": {
            "usedBytes": budget.used_bytes(),
            "budgetBytes": budget.budget_bytes,
            "refusingNewImages": saved.get("disk_refusing"),
            **outbox.retention_counts(store),
        },
    }

"""Retention by age: spooled images and job results older than ``retention.images_days`` /
``retention.jobs_days`` are removed once they are synced upstream, never before.

What "synced" means is in :mod:`edgecv.store.retention`. An image or result that is old enough but not
synced (upstream offline for weeks, a parked result, no upstream configured at all) stays and is
counted as *waiting*, so ``edgecv status`` can say why nothing was removed. The agent runs
:meth:`RetentionSweeper.run_forever`: one sweep at start, then one a day (:data:`SWEEP_INTERVAL_S`).
The disk budget (:mod:`edgecv.upstream.budget`) is a separate rule: it prunes synced images by space.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edgecv.config import RetentionSettings
from edgecv.store import Store, outbox
from edgecv.store import retention as sql

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 24 * 3600.0
BATCH = 500


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RetentionSweeper:
    """Removes expired, synced images and results from one job log and its spool."""

    def __init__(self, store: Store, data_dir: Path, settings: RetentionSettings) -> None:
        self.store, self.data_dir, self.settings = store, Path(data_dir), settings

    @property
    def enabled(self) -> bool:
        return self.settings.images_days > 0 or self.settings.jobs_days > 0

    def sweep(self, now: datetime | None = None) -> dict[str, Any]:
        """One pass; returns (and saves, for ``status``) what it removed and what waits on the upstream."""
        now = now or datetime.now(timezone.utc)
        report: dict[str, Any] = {"at": _iso(now), "imagesRemoved": 0, "bytesFreed": 0, "jobsRemoved": 0}
        if self.settings.images_days > 0:
            before = _iso(now - timedelta(days=self.settings.images_days))
            while batch := sql.expired_images(self.store, before, BATCH):
                for obs_id, rel in batch:
                    path = self.data_dir / rel
                    size = path.stat().st_size if path.exists() else 0
                    path.unlink(missing_ok=True)
                    outbox.record_retention(self.store, obs_id, "pruned", size, 0)
                    report["imagesRemoved"] += 1
                    report["bytesFreed"] += size
            report["imagesWaiting"] = sql.images_waiting(self.store, before)
        if self.settings.jobs_days > 0:
            before = _iso(now - timedelta(days=self.settings.jobs_days))
            while batch := sql.expired_jobs(self.store, before, BATCH):
                report["jobsRemoved"] += sql.delete_jobs(self.store, batch)
            report["jobsWaiting"] = sql.jobs_waiting(self.store, before)
        sql.delete_orphan_observations(self.store)
        sql.save_sweep(self.store, report)
        if report["imagesRemoved"] or report["jobsRemoved"]:
            log.info(
                "retention: removed %d image(s) (%d bytes) and %d job result(s) past their age limit (synced)",
                report["imagesRemoved"],
                report["bytesFreed"],
                report["jobsRemoved"],
            )
        waiting = report.get("imagesWaiting", 0) + report.get("jobsWaiting", 0)
        if waiting:
            log.info("retention: %d item(s) past their age limit are kept until they are synced", waiting)
        return report

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sweep()
            except Exception:  # a bad sweep must not end the loop; the next one tries again
                log.exception("retention sweep failed; trying again in a day")
            stop.wait(SWEEP_INTERVAL_S)

"""The one owner of the spool's disk budget: spool images + the job log against ``sync.disk_budget_mb``.

The agent creates one :class:`DiskBudget` and hands it to ingest (the watcher's intake and the local
API) and to the relay, so every question and every clean-up goes through one object and one lock:
two owners would measure and clean the same spool at once. Order when the budget is reached
(:meth:`DiskBudget.enforce`), oldest first at each step:

1. delete spooled images that are fully synced (every job finished, every result acknowledged, the
   image uploaded or not wanted by the image policy);
2. downscale images whose jobs all finished but that still wait on the upstream (halve each side;
   results are never touched, and boxes were computed on the original);
3. refuse new images: :meth:`DiskBudget.may_accept_image` answers ``(False, reason)`` and ingest
   leaves the file in the inbox with that reason logged.

Ingest asks before it accepts a file::

    ok, reason = budget.may_accept_image(size_bytes)
    if not ok: raise DiskBudgetExceeded(reason)   # the file waits in the inbox

Cleaning runs on the thread that finds the budget reached (ingest's or the relay's), while holding
the lock, so a second caller waits for the first clean-up instead of starting its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from edgecv.config import Config
from edgecv.store import Store, outbox

log = logging.getLogger(__name__)

USAGE_CACHE_S = 10.0
MIB = 1024 * 1024


def format_size(n: float) -> str:
    """Bytes for people, in one binary unit everywhere (the disk budget is ``sync.disk_budget_mb`` MiB):
    ``2048.0 MiB``; ``72.5 GiB`` from 10 GiB on."""
    return f"{n / MIB:.1f} MiB" if n < 10 * 1024 * MIB else f"{n / (1024 * MIB):.1f} GiB"


def dir_bytes(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


class DiskBudget:
    """Spool + job log bytes against ``sync.disk_budget_mb``: one per agent, shared by ingest and the
    relay. Every measurement, decision and clean-up happens under its one lock."""

    def __init__(self, store: Store, data_dir: Path, spool_dir: Path, budget_bytes: int) -> None:
        self.store, self.data_dir, self.spool_dir = store, Path(data_dir), Path(spool_dir)
        self.budget_bytes = budget_bytes
        self.last_used: int | None = None
        self.refusing: str | None = None  # the reason new images are refused, None = accepting
        self._measured_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, store: Store, config: Config) -> DiskBudget:
        return cls(store, config.data_dir, config.spool_dir, config.sync.disk_budget_mb * MIB)

    def used_bytes(self, *, fresh: bool = False) -> int:
        """Spool folder + database files; measured at most every ``USAGE_CACHE_S`` unless ``fresh``."""
        with self._lock:
            return self._measure(fresh=fresh)

    def _measure(self, *, fresh: bool = False) -> int:
        now = time.monotonic()
        if fresh or self.last_used is None or now - self._measured_at > USAGE_CACHE_S:
            db = sum(p.stat().st_size for p in self._db_files() if p.exists())
            self.last_used = dir_bytes(self.spool_dir) + db
            self._measured_at = now
        return self.last_used

    def _db_files(self) -> list[Path]:
        return self.store.files()

    def may_accept_image(self, size_bytes: int = 0) -> tuple[bool, str | None]:
        """May ingest accept a new image of ``size_bytes``? ``(True, None)`` or ``(False, reason)``.

        Cheap to call per file: usage is cached for a few seconds and counts the images accepted since.
        Runs the retention order above (under the lock) before it says no."""
        with self._lock:
            if self._measure() + size_bytes > self.budget_bytes:
                self._enforce_locked(size_bytes)
            elif self.refusing is not None:
                log.info("disk budget: back under %d bytes; accepting new images", self.budget_bytes)
                self.refusing = None
            if self.refusing is None:
                self.last_used = (self.last_used or 0) + size_bytes
                return True, None
            return False, self.refusing

    def enforce(self, headroom: int = 0) -> str | None:
        """Apply the retention order until ``headroom`` bytes fit; returns the refusal reason or None."""
        with self._lock:
            return self._enforce_locked(headroom)

    def _enforce_locked(self, headroom: int) -> str | None:
        over = self._measure(fresh=True) + headroom - self.budget_bytes
        if over > 0:
            over -= self._drop_synced(over)
        if over > 0:
            over -= self._downscale_unsynced(over)
        self._measure(fresh=True)
        if over > 0:
            reason = (
                f"disk budget reached: {self.last_used / 1e6:.1f} MB used of {self.budget_bytes / 1e6:.1f} MB "
                "(sync.disk_budget_mb) and nothing synced is left to delete; new images are refused until "
                "the upstream is reachable again or the budget is raised"
            )
            if self.refusing is None:
                log.error("%s", reason)
            self.refusing = reason
        elif self.refusing is not None:
            log.info("disk budget: back under %d bytes; accepting new images", self.budget_bytes)
            self.refusing = None
        return self.refusing

    def _drop_synced(self, need: int) -> int:
        freed = 0
        while freed < need:
            batch = outbox.synced_images(self.store, 200)
            if not batch:
                break
            for obs_id, rel in batch:
                path = self.data_dir / rel
                size = path.stat().st_size if path.exists() else 0
                path.unlink(missing_ok=True)
                outbox.record_retention(self.store, obs_id, "pruned", size, 0)
                freed += size
                if freed >= need:
                    break
        if freed:
            log.warning("disk budget: deleted %d bytes of synced images", freed)
        return freed

    def _downscale_unsynced(self, need: int) -> int:
        from edgecv.upstream.images import downscale_file  # cv2 only once the budget is reached

        freed = 0
        while freed < need:
            batch = outbox.unsynced_finished_images(self.store, 50)
            if not batch:
                break
            for obs_id, rel in batch:
                before, after = downscale_file(self.data_dir / rel)
                outbox.record_retention(self.store, obs_id, "downscaled", before, after)
                freed += before - after
                if freed >= need:
                    break
        if freed:
            log.warning("disk budget: downscaled unsynced images, freed %d bytes", freed)
        return freed

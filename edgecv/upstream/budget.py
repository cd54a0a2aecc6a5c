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

The same object guards the filesystem itself: while the data dir's disk has less free space than
``min_free_mb`` (or a write just failed with "disk full": :meth:`DiskBudget.disk_full`), intake
pauses (:meth:`DiskBudget.may_accept_image` says no with the reason, which the log, ``status``,
``doctor`` and ``/readyz`` show), and it resumes by itself once space returns.

Cleaning runs on the thread that finds the budget reached (ingest's or the relay's), while holding
the lock, so a second caller waits for the first clean-up instead of starting its own.
"""

from __future__ import annotations

import logging
import os
import shutil
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


def free_space_reason(data_dir: Path, min_free_bytes: int, *, need: int = 0) -> str | None:
    """Why intake must pause for lack of free space on ``data_dir``'s filesystem, or None."""
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return None  # the data dir does not exist yet: nothing to measure
    if free - need >= min_free_bytes:
        return None
    return (
        f"disk full: {format_size(free)} free on the filesystem of {data_dir}, under min_free_mb "
        f"({format_size(min_free_bytes)}); intake is paused and new images wait in the inbox. Free space "
        "there (or lower min_free_mb); intake resumes by itself, and nothing accepted is lost"
    )


def dir_bytes(path: Path, seen: set | None = None) -> int:
    """Bytes of the files under ``path``; with ``seen`` (a set shared between calls), a file with
    several links (a kept hard image and its spooled original) counts once."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        if seen is not None and st.st_nlink > 1:
                            if (st.st_dev, st.st_ino) in seen:
                                continue
                            seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
        except FileNotFoundError:
            continue
    return total


class DiskBudget:
    """Spool + job log bytes against ``sync.disk_budget_mb``: one per agent, shared by ingest and the
    relay. Every measurement, decision and clean-up happens under its one lock."""

    def __init__(
        self, store: Store, data_dir: Path, spool_dir: Path, budget_bytes: int, min_free_bytes: int = 0
    ) -> None:
        self.store, self.data_dir, self.spool_dir = store, Path(data_dir), Path(spool_dir)
        self.budget_bytes = budget_bytes
        self.min_free_bytes = min_free_bytes
        self.kept_dir: Path | None = None  # images kept for labelling (edgecv.hard_images) count too
        self.last_used: int | None = None
        self.refusing: str | None = None  # the reason new images are refused, None = accepting
        self.disk_full_reason: str | None = None  # intake paused for lack of free space, None = not
        self._resume_above = 0  # after a failed write: free bytes needed before intake resumes
        self._measured_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, store: Store, config: Config) -> DiskBudget:
        budget = cls(
            store,
            config.data_dir,
            config.spool_dir,
            config.sync.disk_budget_mb * MIB,
            config.min_free_mb * MIB,
        )
        budget.kept_dir = config.hard_images_dir
        return budget

    def may_keep(self, kept_bytes: int, size_bytes: int, share_bytes: int) -> tuple[bool, str | None]:
        """May an image of ``size_bytes`` be kept for labelling, beside ``kept_bytes`` already kept?
        Within the kept images' share (``share_bytes``), the whole budget and ``min_free_mb``."""
        with self._lock:
            if self._check_free(size_bytes) is not None:
                return False, self.disk_full_reason
            if kept_bytes + size_bytes > share_bytes:
                return False, (
                    f"images kept for labelling use {format_size(kept_bytes)} of their "
                    f"{format_size(share_bytes)} (hard_images.max_mb / max_percent of sync.disk_budget_mb); "
                    "export them (`edgecv export`) and delete the folder, or raise the share"
                )
            if self._measure() + size_bytes > self.budget_bytes:
                return False, (
                    f"disk budget reached ({format_size(self.last_used or 0)} of "
                    f"{format_size(self.budget_bytes)}, sync.disk_budget_mb); no image is kept for labelling"
                )
            self.last_used = (self.last_used or 0) + size_bytes
            return True, None

    # -- free space on the filesystem -------------------------------------------------------------

    def _check_free(self, need: int = 0) -> str | None:
        """Measure free space now; log when intake pauses or resumes. Call under the lock."""
        reason = free_space_reason(self.data_dir, max(self.min_free_bytes, self._resume_above), need=need)
        if reason is not None and self.disk_full_reason is None:
            log.error("intake paused: %s", reason)
        elif reason is None and self.disk_full_reason is not None:
            log.warning("intake resumed: free space is back on the filesystem of %s", self.data_dir)
            self._resume_above = 0
        if reason is None or self.disk_full_reason is None or not self._resume_above:
            self.disk_full_reason = reason  # keep the message naming the write that failed
        return self.disk_full_reason if reason is not None else None

    def disk_full(self, where: str) -> None:
        """A write failed because the disk is full (``where`` says which): pause intake until space returns.

        The next :meth:`may_accept_image` measures again, so it resumes by itself; it pauses at least
        until free space exceeds ``min_free_mb`` plus the image it was given."""
        with self._lock:
            if self.disk_full_reason is None:
                try:  # resume only once clearly more is free than when the write failed
                    self._resume_above = shutil.disk_usage(self.data_dir).free + MIB
                except OSError:
                    self._resume_above = self.min_free_bytes
                self.disk_full_reason = (
                    f"disk full: writing {where} failed (no space left on the filesystem of {self.data_dir}); "
                    "intake is paused and new images wait in the inbox. Free space there; intake resumes "
                    "by itself, and nothing accepted is lost"
                )
                log.error("intake paused: %s", self.disk_full_reason)

    def pause_reason(self) -> str | None:
        """Why intake is paused right now (free space measured now, then the budget), or None."""
        with self._lock:
            if self._check_free() is not None:
                return self.disk_full_reason
            return self.refusing

    def used_bytes(self, *, fresh: bool = False) -> int:
        """Spool folder + database files; measured at most every ``USAGE_CACHE_S`` unless ``fresh``."""
        with self._lock:
            return self._measure(fresh=fresh)

    def _measure(self, *, fresh: bool = False) -> int:
        now = time.monotonic()
        if fresh or self.last_used is None or now - self._measured_at > USAGE_CACHE_S:
            db = sum(p.stat().st_size for p in self._db_files() if p.exists())
            seen: set = set()
            kept = dir_bytes(self.kept_dir, seen) if self.kept_dir is not None else 0
            self.last_used = dir_bytes(self.spool_dir, seen) + kept + db
            self._measured_at = now
        return self.last_used

    def _db_files(self) -> list[Path]:
        return self.store.files()

    def may_accept_image(self, size_bytes: int = 0) -> tuple[bool, str | None]:
        """May ingest accept a new image of ``size_bytes``? ``(True, None)`` or ``(False, reason)``.

        Cheap to call per file: usage is cached for a few seconds and counts the images accepted since.
        Runs the retention order above (under the lock) before it says no; says no while the disk
        has less than ``min_free_mb`` free once the image is written."""
        with self._lock:
            if self._check_free(size_bytes) is not None:
                return False, self.disk_full_reason
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

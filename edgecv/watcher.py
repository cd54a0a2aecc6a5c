"""Inbox watching: a watchdog adapter, a pure path filter, and the intake that schedules ingest.

When is a file complete?
- inotify (default on Linux): ``IN_CLOSE_WRITE`` (watchdog's closed event) and ``IN_MOVED_TO``
  (moved event) count. ``cp`` of a large file and a writer that pauses mid-file produce neither
  until the writer closes; write-to-temp-then-rename produces one moved event for the final name.
  The observer runs with ``generate_full_events`` so that a move from outside the inbox (an
  ``IN_MOVED_TO`` without its ``IN_MOVED_FROM``: ``mv`` from a sibling folder) is a moved event with
  an empty source, not a created event. A created event (``IN_CREATE``) counts only for what no close
  will follow: a symlink, or a hard link to an existing file (link count above one); a plain new
  file is waited for until its writer closes it.
- polling (``--poll``, for network shares): a file counts once its size and mtime have been unchanged
  for ``settle_s``.
- Both: ingest re-checks the image's end-of-image marker and waits for a recently modified file
  that is still incomplete.

Sidecars: ``NAME.json`` beside an image is consumed with it whichever arrives first. An image whose
sidecar is already there is ingested at once. An image without one is ingested at once too, unless
its folder has seen sidecars (or ``expect_sidecars`` is set): then it waits up to ``sidecar_wait_s``
for its sidecar.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

try:
    from watchdog.observers.inotify import InotifyObserver
except ImportError:  # not Linux
    InotifyObserver = None

from edgecv.config import Config
from edgecv.ingest import (
    IngestResult,
    NotReady,
    find_sidecar,
    images_for_sidecar,
    ingest_file,
    is_ignored_name,
    is_image_name,
    is_sidecar_name,
)
from edgecv.logging_setup import log_name
from edgecv.store import Store
from edgecv.threads import start_thread
from edgecv.upstream.budget import DiskBudget

log = logging.getLogger(__name__)


def classify(path: Path, inbox: Path) -> str | None:
    """``"image"``, ``"sidecar"`` or None (ignored): the pure filter for "does this path count?"."""
    try:
        rel = path.relative_to(inbox)
    except ValueError:
        return None
    if any(is_ignored_name(part) for part in rel.parts):
        return None
    if is_image_name(path.name):
        return "image"
    if is_sidecar_name(path.name):
        return "sidecar"
    return None


class _Handler(FileSystemEventHandler):
    """Files: closed-after-writing and moved-in count. Folders: a new or moved-in folder is scanned,
    because files can land in it before its inotify watch exists (their events are never seen)."""

    def __init__(self, intake: Intake, polling: bool) -> None:
        self._intake = intake
        self._polling = polling

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._intake.submit(Path(os.fsdecode(event.src_path)))

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.dest_path:
            return  # moved out of the inbox
        dest = Path(os.fsdecode(event.dest_path))
        if event.is_directory:
            self._intake.scan(dest)
        else:
            self._intake.submit(dest)

    def on_created(self, event: FileSystemEvent) -> None:
        path = Path(os.fsdecode(event.src_path))
        if event.is_directory:
            self._intake.scan(path)
        elif self._polling or _is_link(path):
            self._intake.submit(path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if self._polling and not event.is_directory:
            self._intake.submit(Path(os.fsdecode(event.src_path)))


def _is_link(path: Path) -> bool:
    """A symlink, or a hard link to an existing file: created whole, so no close event follows."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISLNK(st.st_mode) or st.st_nlink > 1


class Intake:
    """Schedules inbox paths for ingest on its own thread (the store wakes workers for each new job)."""

    def __init__(
        self,
        store: Store,
        config: Config,
        inbox: Path,
        *,
        settle_s: float = 0.0,
        sidecar_wait_s: float = 2.0,
        expect_sidecars: bool = False,
        budget: DiskBudget | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.budget = budget  # the agent's one disk-budget owner, asked before each new image
        self.inbox = inbox
        self.settle_s = settle_s
        self.sidecar_wait_s = sidecar_wait_s
        self.expect_sidecars = expect_sidecars
        self._heap: list[tuple[float, int, Path]] = []
        self._due: dict[Path, float] = {}
        self._stat: dict[Path, tuple[int, int]] = {}
        self._sidecar_dirs: set[Path] = set()
        self._seq = 0
        self._busy = False
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- scheduling ---------------------------------------------------------------------------

    def submit(self, path: Path, delay: float = 0.0) -> None:
        kind = classify(path, self.inbox)
        if kind is None:
            return
        if kind == "sidecar":
            self._sidecar_dirs.add(path.parent)
            for image in images_for_sidecar(path):
                self._schedule(image, 0.0, replace=True)
            return
        if delay == 0.0 and self._should_wait_for_sidecar(path):
            delay = self.sidecar_wait_s
        self._schedule(path, max(delay, self.settle_s))

    def _should_wait_for_sidecar(self, image: Path) -> bool:
        if find_sidecar(image) is not None:
            return False
        return self.expect_sidecars or image.parent in self._sidecar_dirs

    def _schedule(self, path: Path, delay: float, *, replace: bool = False) -> None:
        due = time.monotonic() + delay
        with self._cond:
            current = self._due.get(path)
            if current is not None and (not replace or due >= current):
                return
            self._due[path] = due
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, path))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._due)

    def idle(self) -> bool:
        """Nothing scheduled and nothing being ingested right now."""
        with self._cond:
            return not self._due and not self._busy

    def scan(self, folder: Path | None = None) -> int:
        """Submit every image already under ``folder`` (default: the whole inbox, the start-up catch-up).
        An image still being written is waited for by ingest. Returns how many images."""
        count = 0
        if folder is not None and classify(folder / "x.jpg", self.inbox) is None:
            return 0  # outside the inbox, or a hidden folder
        for root, dirs, files in os.walk(folder or self.inbox):
            dirs[:] = [d for d in dirs if not is_ignored_name(d)]
            for name in files:
                path = Path(root) / name
                if classify(path, self.inbox) == "sidecar":
                    self._sidecar_dirs.add(path.parent)
            for name in sorted(files):
                path = Path(root) / name
                if classify(path, self.inbox) == "image":
                    self._schedule(path, self.settle_s)
                    count += 1
        return count

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = start_thread("edgecv-intake", self._run)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _next_due(self) -> Path | None:
        with self._cond:
            while not self._stop:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded entry
                if self._heap and self._heap[0][0] <= time.monotonic():
                    _, _, path = heapq.heappop(self._heap)
                    del self._due[path]
                    self._busy = True
                    return path
                timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(timeout)
            return None

    def _run(self) -> None:
        while True:
            path = self._next_due()
            if path is None:
                return
            try:
                self.process(path)
            except Exception:  # the intake never dies because one file failed
                log.exception("ingest of %s failed; it stays in the inbox for the next start", log_name(path))
            finally:
                with self._cond:
                    self._busy = False

    def process(self, path: Path) -> IngestResult | None:
        """One ingest attempt for ``path`` (tests call this directly)."""
        if self.settle_s and not self._settled(path):
            self._schedule(path, self.settle_s)
            return None
        try:
            result = ingest_file(self.store, self.config, path, self.inbox, budget=self.budget)
        except NotReady as exc:
            self._schedule(path, exc.retry_s)
            return None
        self._stat.pop(path, None)
        return result

    def _settled(self, path: Path) -> bool:
        """Polling mode: size and mtime unchanged since the last look, ``settle_s`` ago."""
        try:
            st = path.stat()
        except FileNotFoundError:
            self._stat.pop(path, None)
            return True  # let ingest see it is gone
        now = (st.st_size, st.st_mtime_ns)
        before = self._stat.get(path)
        self._stat[path] = now
        return before == now and time.time() - st.st_mtime >= self.settle_s


class InboxWatcher:
    """Runs a watchdog observer (inotify or polling) over the inbox and feeds an Intake."""

    def __init__(self, intake: Intake, *, poll: bool = False, poll_interval_s: float = 1.0) -> None:
        self.intake = intake
        self.poll = poll
        if poll:
            self._observer = PollingObserver(timeout=poll_interval_s)
        elif InotifyObserver is not None:
            self._observer = InotifyObserver(generate_full_events=True)
        else:
            self._observer = Observer()
        self._observer.schedule(_Handler(intake, poll), str(intake.inbox), recursive=True)

    def start(self) -> int:
        """Start watching, then submit what is already there. Returns the number found at start-up."""
        self.intake.inbox.mkdir(parents=True, exist_ok=True)
        self._observer.start()
        self.intake.start()
        found = self.intake.scan()
        log.info(
            "watching %s (%s); %d image(s) already there",
            log_name(self.intake.inbox),
            "polling" if self.poll else "inotify",
            found,
        )
        return found

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)
        self.intake.stop()

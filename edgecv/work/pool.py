"""The detectors a worker uses, opened on first use and kept (``DetectorPool``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgecv.config import Config
from edgecv.runtime.installed import find_package, installed_revision
from edgecv.threads import limit_blas_threads

if TYPE_CHECKING:
    from edgecv.runtime.detector import Detector

log = logging.getLogger(__name__)


def lane_hint(i: int) -> str:
    """The ``DetectorPool`` key of backlog lane ``i``'s compile."""
    return f"LANE-{i}"


class DetectorPool:
    """Detectors opened on first use and kept: one pool per worker thread, so no lock on inference.

    Three kinds of compile, keyed by ``hint``: ``LATENCY`` (one image on every core, the idle path),
    ``THROUGHPUT`` (OpenVINO's parallel requests, the backlog path on an accelerator) and ``LANE-i``
    (one thread, not pinned to a core: lane ``i`` of the backlog path on the CPU, ``lanes()``).
    A THROUGHPUT compile, or a set of lane compiles, is a second copy of the model with one graph (and
    its activation memory) per stream or lane: ~40 MB of RSS for two and 0.3-1 s of compiling for a
    640×384 model. It only pays off for a real backlog, so while fewer than ``config.backlog_batch`` jobs
    of a model are queued or in hand (``backlog_of(name)``, when given), the backlog path gets the model's
    LATENCY compile if that one is loaded: the same results, no compile wait, no second copy. The
    backlog compiles are made once a real backlog of that model forms (or when asked for by a caller
    without ``backlog_of``).
    """

    def __init__(self, config: Config, *, backlog_of: Callable[[str], int] | None = None) -> None:
        limit_blas_threads()  # numpy's small products on the calling thread: the cores are for inference
        self.config = config
        self.backlog_of = backlog_of
        self._detectors: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # decode threads may ask at once: compile each model once
        self._revisions: dict[str, str | None] = {}  # name -> installed revision its detectors were opened on

    def get(self, name: str, *, hint: str = "LATENCY"):
        """The detector for model ``name`` compiled for ``hint`` (LATENCY: one image as fast as possible;
        THROUGHPUT: as many parallel requests as the device likes, for backlogs). Opened once, kept."""
        self._follow_switch(name)
        key = (name, hint)
        detector = self._detectors.get(key)
        if detector is not None:
            return detector
        if hint == "THROUGHPUT" and self._small_backlog(name):
            latency = self._detectors.get((name, "LATENCY"))
            if latency is not None:
                return latency
        return self.load(name, hint=hint)

    def lanes(self, name: str, count: int) -> list:
        """``count`` one-thread detectors of model ``name`` for the backlog path's lanes (each lane takes
        an image from decode to result on its own core), or only the LATENCY one for a small backlog."""
        self._follow_switch(name)
        keys = [lane_hint(i) for i in range(count)]
        if any((name, k) not in self._detectors for k in keys) and self._small_backlog(name):
            latency = self._detectors.get((name, "LATENCY"))
            if latency is not None:
                return [latency]
        return [self.load(name, hint=k) for k in keys]

    def load(self, name: str, *, hint: str = "LATENCY"):
        """Like :meth:`get`, but always the compile for ``hint`` (preloading before the agent is ready)."""
        key = (name, hint)
        with self._load_lock:
            detector = self._detectors.get(key)
            if detector is None:
                revision = installed_revision(self.config, name)  # before opening: a later switch reloads
                detector = self._open(name, hint)
                with self._lock:
                    self._detectors[key] = detector
                    self._revisions.setdefault(name, revision)
        return detector

    def _follow_switch(self, name: str) -> None:
        """Forget ``name``'s detectors when ``edgecv models install`` / ``rollback`` switched it since they
        were opened: the next job opens the new version. A job holding an old detector finishes on it
        (the previous version's files are kept on disk)."""
        if name not in self._revisions or installed_revision(self.config, name) == self._revisions[name]:
            return
        with self._load_lock, self._lock:
            log.info("model %s was switched to another installed version; reloading it", name)
            self._revisions.pop(name, None)
            for key in [k for k in self._detectors if k[0] == name]:
                del self._detectors[key]

    def _small_backlog(self, name: str) -> bool:
        if self.backlog_of is None:
            return False
        try:
            return self.backlog_of(name) < self.config.backlog_batch
        except Exception:  # e.g. the database is busy: compile as asked rather than fail the batch
            log.debug("backlog count for %s failed; compiling for THROUGHPUT", name, exc_info=True)
            return False

    def _open(self, name: str, hint: str) -> Detector:
        from edgecv.runtime.detector import Detector  # cv2 and the runtimes load with the first model

        package = find_package(self.config, name)
        lane = hint.startswith("LANE")
        detector = Detector.open(
            package,
            backend=self.config.backend,
            precision=self.config.precision,
            device=self.config.device,
            cache_dir=self.config.cache_dir / "openvino",
            performance_hint="LATENCY" if lane else hint,
            num_threads=1 if lane else None,
            cpu_pinning=False if lane else None,
        )
        log.info(
            "loaded %s %s (%s %s on %s, %s)",
            name,
            package.version,
            detector.backend,
            detector.precision,
            detector.device,
            hint,
        )
        return detector

    def loaded(self) -> dict[tuple[str, str], object]:
        with self._lock:
            return dict(self._detectors)

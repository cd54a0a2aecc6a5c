"""The typed interface between the worker's loop and the backlog path: ``JobSteps`` and ``Loaded``.

The backlog (``edgecv.work.backlog``) claims, runs and records jobs only through ``JobSteps``; the
``Worker`` is the one implementation. Nothing here imports the worker, so the backlog does not either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgecv.config import Config
from edgecv.detections import Detections
from edgecv.records import Job, Observation
from edgecv.runtime.detector import Detector
from edgecv.runtime.engines import Engines
from edgecv.runtime.scene import DomainVerdict
from edgecv.work.pool import DetectorPool


@dataclass(frozen=True)
class Loaded:
    """A claimed job with what processing it needs."""

    job: Job
    observation: Observation
    image: np.ndarray  # what the detector gets: reduced for a large JPEG
    detector: Detector
    size: tuple[int, int] | None = None  # the original (width, height) when ``image`` is reduced
    domain: DomainVerdict | None = None  # the scene check's verdict (None: not checked)

    @property
    def refused(self) -> bool:
        """The image does not look like the model's domain: no detector, no detections."""
        return self.domain is not None and not self.domain.in_domain


@runtime_checkable
class JobSteps(Protocol):
    """What the backlog path needs of the worker's loop: its settings, models and the steps of a job."""

    @property
    def config(self) -> Config: ...

    @property
    def detectors(self) -> DetectorPool: ...

    @property
    def engines(self) -> Engines: ...

    def stopping(self) -> bool:
        """True once the agent asked to stop: finish what is in hand, take nothing new."""
        ...

    def claim(self, limit: int, model: str | None = None) -> list[Job]:
        """Claim up to ``limit`` of the oldest queued jobs (of ``model``, if given)."""
        ...

    def release(self, jobs: Iterable[Job]) -> None:
        """Hand claimed, unstarted jobs back to the queue (no attempt counted)."""
        ...

    def load(self, job: Job, *, hint: str = "LATENCY", detector: Detector | None = None) -> Loaded:
        """The job's observation, decoded image and detector; raises EdgecvError with the job's code."""
        ...

    def run_job(self, job: Job, detector: Detector | None = None, engines: Engines | None = None) -> Job:
        """Decode, detect, run the pipeline and record; a bad image or model fails the job."""
        ...

    def complete(
        self, loaded: Loaded, detections: Detections, inference_ms: float, engines: Engines | None = None
    ) -> Job:
        """Run the pipeline and record the result (or the failure)."""
        ...

    def fail(self, job: Job, exc: BaseException) -> Job:
        """Record a failure with a stable code."""
        ...

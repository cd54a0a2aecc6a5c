"""Claim a job → load its image → run the model → post-process → complete or fail. In one place.

A worker never dies because one job failed: every error ends as a ``failed`` job with a stable code,
and the loop goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from edgecv.config import Config
from edgecv.detections import Detections
from edgecv.errors import DiskFull, EdgecvError, InferenceError
from edgecv.imageio import decode_file, decode_file_sized
from edgecv.privacy import policy as privacy_policy
from edgecv.records import Job, Observation
from edgecv.runtime.detector import Detector
from edgecv.runtime.engines import Engines
from edgecv.runtime.package import DomainSpec
from edgecv.runtime.scene import DomainVerdict
from edgecv.store import Store
from edgecv.vision import PipelineInput, get_pipeline, needs_pixels
from edgecv.work.backlog import run_backlog
from edgecv.work.pool import DetectorPool
from edgecv.work.steps import Loaded

log = logging.getLogger(__name__)


class WorkSignal:
    """Wakes idle workers the moment a job is queued (no polling sleep on the latency path)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def notify(self, *_args) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class Worker:
    """Processes queued jobs. ``run_once`` handles at most one job; ``run_forever`` loops until stopped.
    The backlog path drives it through ``edgecv.work.steps.JobSteps``."""

    IDLE_WAIT_S = 1.0  # upper bound on an idle wait; a queued job wakes the worker at once
    DISK_FULL_RETRY_S = 5.0  # a finished job waiting for disk space tries to record itself this often

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        detectors: DetectorPool | None = None,
        engines: Engines | None = None,
        signal: WorkSignal | None = None,
        name: str = "worker-0",
        on_finished: Callable[[Job], None] | None = None,
        metrics=None,
    ) -> None:
        self.store = store
        self.config = config
        self.detectors = detectors or DetectorPool(config)
        self.engines = engines or Engines.from_config(config)  # the pipelines' readers, shared
        self.signal = signal or WorkSignal()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}"
        self.on_finished = on_finished
        self.metrics = metrics  # edgecv.api.Metrics, when the agent runs one
        self.stop_event: threading.Event | None = None

    def run_once(self) -> Job | None:
        """Process the oldest queued job, or, with a backlog, a batch through the overlapped path.

        Returns the last job finished (None when nothing was queued).
        """
        if self.config.backlog_batch > 1 and self.store.count_queued() >= self.config.backlog_min:
            jobs = self.claim(self.config.backlog_batch)
            if jobs:
                finished = run_backlog(self, jobs)
                return finished[-1] if finished else None
        job = self.store.claim_job(self.owner, self.config.lease_s)
        if job is None:
            return None
        return self.process(job)

    def stopping(self) -> bool:
        """True once the agent asked to stop: finish what is in hand, take nothing new."""
        return self.stop_event is not None and self.stop_event.is_set()

    def claim(self, limit: int, model: str | None = None) -> list[Job]:
        """Claim up to ``limit`` of the oldest queued jobs (of ``model``, if given) in one transaction."""
        return self.store.claim_jobs(self.owner, self.config.lease_s, limit=limit, model=model)

    def release(self, jobs: Iterable[Job]) -> None:
        """Hand claimed, unstarted jobs back to the queue (no attempt counted)."""
        self.store.release_jobs([j.id for j in jobs], self.owner)

    def run_forever(self, stop: threading.Event) -> None:
        """Process jobs until ``stop`` is set; an idle worker waits for the signal."""
        self.stop_event = stop
        paused = False
        while not stop.is_set():
            self.signal.clear()
            try:
                job = self.run_once()
            except DiskFull as exc:  # claiming needs a write too: wait for space
                if not paused:
                    log.warning("worker paused: %s", exc)
                paused = True
                stop.wait(self.DISK_FULL_RETRY_S)
                continue
            except Exception:  # e.g. the database is locked for longer than the busy timeout
                log.exception("worker iteration failed; retrying")
                stop.wait(1.0)
                continue
            if paused:
                log.info("worker resumed: the job log takes writes again")
                paused = False
            if job is None:
                self.signal.wait(self.IDLE_WAIT_S)

    def process(self, job: Job) -> Job:
        """Run one claimed job to ``completed`` or ``failed`` through one LATENCY-mode inference."""
        try:
            return self.run_job(job)
        except Exception as exc:  # recording the result failed: try to record the failure instead
            return self.fail(job, exc)

    def run_job(self, job: Job, detector: Detector | None = None, engines: Engines | None = None) -> Job:
        """Decode, detect (on ``detector``, default the model's LATENCY compile), run the pipeline (with
        ``engines``, default the worker's) and record. A bad image or model fails the job; an error while
        recording the result is raised."""
        try:
            loaded = self.load(job, detector=detector)
            start = time.perf_counter()
            try:
                if loaded.refused:
                    detections = Detections.empty()
                else:
                    detections = loaded.detector.detect(loaded.image, size=loaded.size)
            except EdgecvError:
                raise
            except Exception as exc:
                raise InferenceError(f"the {job.model} model failed on this image: {exc}") from exc
        except Exception as exc:
            return self.fail(job, exc)
        return self.complete(loaded, detections, (time.perf_counter() - start) * 1000.0, engines)

    # -- the steps, shared with the backlog path ---------------------------------------------------

    def load(self, job: Job, *, hint: str = "LATENCY", detector: Detector | None = None) -> Loaded:
        """The job's observation, decoded image and detector (``detector``, else the model's compile for
        ``hint``), and the scene check's verdict when the model names a domain. A large JPEG is decoded
        reduced for the model's input (``imageio.reduction_for``). Raises EdgecvError with the job's
        error code."""
        observation = self.store.get_observation(job.observation_id)
        if detector is None:
            detector = self.detectors.get(job.model, hint=hint)
        decoded = decode_file_sized(
            self.spool_path(observation), max_pixels=self.config.max_image_pixels, fit=detector.input_size
        )
        return Loaded(
            job,
            observation,
            decoded.image,
            detector,
            size=decoded.size if decoded.reduced else None,
            domain=self.domain_verdict(detector.package.domain, decoded.image),
        )

    def domain_verdict(self, domain: DomainSpec | None, image: np.ndarray) -> DomainVerdict | None:
        """How much ``image`` looks like ``domain``'s scene (None: the model names none, or the check is
        off in the config)."""
        if domain is None or not self.config.domain_check:
            return None
        return self.engines.scene.get().verdict(image, domain, self.config.domain_threshold)

    def spool_path(self, observation: Observation) -> Path:
        return self.config.data_dir / observation.spool_path

    def pipeline_image(self, loaded: Loaded, pipeline: str, options: dict) -> tuple[np.ndarray, tuple | None]:
        """The image a pipeline gets, and the original size when that is not the image's own: the
        detection image as it is; when it was decoded reduced, the full-size image again for a pipeline
        that reads pixels (price tags, crack widths: original-pixel crops), else no pixels at all."""
        if loaded.size is None:
            return loaded.image, None
        if needs_pixels(pipeline, options):
            return decode_file(
                self.spool_path(loaded.observation), max_pixels=self.config.max_image_pixels
            ), None
        return np.zeros((0, 0, 3), np.uint8), loaded.size

    def complete(
        self, loaded: Loaded, detections: Detections, inference_ms: float, engines: Engines | None = None
    ) -> Job:
        """Post-process (the pipeline's readers from ``engines``, default the worker's), then record the
        result (job + outbox + webhooks in one transaction)."""
        job, detector = loaded.job, loaded.detector
        try:
            name = detector.package.pipeline
            pipeline = get_pipeline(name)
            options = {
                **detector.package.pipeline_options,
                "read_tag_names": self.config.read_tag_names,
                "catalog": name == "shelf" and self._catalogue_has_skus(engines or self.engines),
            }
            image, size = self.pipeline_image(loaded, name, options)
            result = pipeline(
                PipelineInput(
                    image=image,
                    detections=detections,
                    labels=list(detector.package.labels),
                    metadata=loaded.observation.metadata,
                    options=options,
                    size=size,
                    engines=engines or self.engines,
                )
            )
            if loaded.domain is not None:
                result["domain"] = loaded.domain.as_result()
            result["privacy"] = privacy_policy(self.config.privacy)  # how its image may leave the device
        except Exception as exc:
            return self.fail(job, exc)
        finished = self._record(
            lambda: self.store.complete_job(
                job.id,
                self.owner,
                result,
                inference_ms=inference_ms,
                device=detector.device,
                model_version=detector.package.version,
            ),
            job,
        )
        if self.metrics is not None:
            self.metrics.observe_inference(inference_ms, model=job.model)
        if loaded.refused:
            log.info(
                "job %s completed without detections: the image does not look like a %s scene "
                "(score %.2f < %.2f)",
                job.id,
                loaded.domain.scene,
                loaded.domain.score,
                loaded.domain.threshold,
            )
        else:
            log.info(
                "job %s completed: %d detection(s) in %.1f ms",
                job.id,
                len(result["detections"]),
                inference_ms,
            )
        return self._finished(finished)

    @staticmethod
    def _catalogue_has_skus(engines: Engines) -> bool:
        """Whether shelf products are named by the catalogue (it then needs the full-size pixels)."""
        try:
            return engines.catalog.get().get() is not None
        except EdgecvError as exc:
            log.warning("catalogue not used: %s", exc)
            return False

    def _record(self, write: Callable[[], Job], job: Job) -> Job:
        """Run ``write`` (the transaction that finishes ``job``); while the disk is full, keep the result
        in hand and try again every ``DISK_FULL_RETRY_S`` until space returns or the agent stops (then
        the job, still ``processing``, is queued again at the next start)."""
        warned = False
        while True:
            try:
                return write()
            except DiskFull:
                if self.stop_event is None or self.stopping():
                    raise
                if not warned:
                    log.error("disk full: job %s is done but waits to be recorded until space returns", job.id)
                    warned = True
                self.stop_event.wait(self.DISK_FULL_RETRY_S)

    def fail(self, job: Job, exc: BaseException) -> Job:
        """Record a failure with a stable code; a bug or runtime crash never takes the worker down.

        A full disk is not the job's failure: DiskFull is raised again (the job stays in hand)."""
        if isinstance(exc, DiskFull):
            raise exc
        if isinstance(exc, EdgecvError):
            log.warning("job %s failed: %s: %s", job.id, exc.code, exc)
            code, message = exc.code, str(exc)
        else:
            log.error("job %s failed unexpectedly", job.id, exc_info=exc)
            code, message = InferenceError.code, f"unexpected error while processing: {exc!r}"
        return self._finished(self._record(lambda: self.store.fail_job(job.id, self.owner, code, message), job))

    def _finished(self, job: Job) -> Job:
        if self.on_finished is not None:
            self.on_finished(job)
        return job

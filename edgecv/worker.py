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
from collections.abc import Callable

from edgecv.config import Config
from edgecv.errors import EdgecvError, InferenceError
from edgecv.imageio import decode_file
from edgecv.jobs import Job
from edgecv.registry import DetectorPool
from edgecv.store import Store
from edgecv.vision import PipelineInput, get_pipeline

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
    """Processes queued jobs. ``run_once`` handles at most one job; ``run_forever`` loops until stopped."""

    IDLE_WAIT_S = 1.0  # upper bound on an idle wait; a queued job wakes the worker at once

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        detectors: DetectorPool | None = None,
        signal: WorkSignal | None = None,
        name: str = "worker-0",
        on_finished: Callable[[Job], None] | None = None,
        metrics=None,
    ) -> None:
        self.store = store
        self.config = config
        self.detectors = detectors or DetectorPool(config)
        self.signal = signal or WorkSignal()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{name}"
        self.on_finished = on_finished
        self.metrics = metrics  # edgecv.api.Metrics, when the agent runs one

    def run_once(self) -> Job | None:
        job = self.store.claim_job(self.owner, self.config.lease_s)
        if job is None:
            return None
        return self.process(job)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.signal.clear()
            try:
                job = self.run_once()
            except Exception:  # e.g. the database is locked for longer than the busy timeout
                log.exception("worker iteration failed; retrying")
                stop.wait(1.0)
                continue
            if job is None:
                self.signal.wait(self.IDLE_WAIT_S)

    def process(self, job: Job) -> Job:
        """Run one claimed job to ``completed`` or ``failed``."""
        try:
            result, inference_ms, device = self._infer(job)
        except EdgecvError as exc:
            log.warning("job %s failed: %s: %s", job.id, exc.code, exc)
            finished = self.store.fail_job(job.id, self.owner, exc.code, str(exc))
        except Exception as exc:  # a bug or a runtime crash must not take the worker down
            log.exception("job %s failed unexpectedly", job.id)
            finished = self.store.fail_job(
                job.id, self.owner, InferenceError.code, f"unexpected error while processing: {exc!r}"
            )
        else:
            finished = self.store.complete_job(
                job.id, self.owner, result, inference_ms=inference_ms, device=device
            )
            if self.metrics is not None:
                self.metrics.observe_inference(inference_ms, model=job.model)
            log.info(
                "job %s completed: %d detection(s) in %.1f ms",
                job.id,
                len(result["detections"]),
                inference_ms,
            )
        if self.on_finished is not None:
            self.on_finished(finished)
        return finished

    def _infer(self, job: Job) -> tuple[dict, float, str]:
        observation = self.store.get_observation(job.observation_id)
        detector = self.detectors.get(job.model)
        image = decode_file(
            self.config.data_dir / observation.spool_path, max_pixels=self.config.max_image_pixels
        )
        start = time.perf_counter()
        try:
            detections = detector.detect(image)
        except EdgecvError:
            raise
        except Exception as exc:
            raise InferenceError(f"the {job.model} model failed on this image: {exc}") from exc
        inference_ms = (time.perf_counter() - start) * 1000.0
        pipeline = get_pipeline(detector.package.pipeline)
        result = pipeline(
            PipelineInput(
                image=image,
                detections=detections,
                labels=list(detector.package.labels),
                metadata=observation.metadata,
            )
        )
        return result, inference_ms, detector.device

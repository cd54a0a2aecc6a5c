"""The backlog path: when many jobs are queued, every core does useful work.

Two ways, chosen by ``config.backlog_mode`` (``auto``: lanes when the model runs on the CPU, the request
queue on an accelerator):

- **Lanes** (CPU). One lane per core (at most 4; with several workers the cores are shared among them),
  each a thread that takes an image from decoding to the recorded result on a one-thread compile of the
  model (``DetectorPool.lanes``: not pinned to a core, so the OS spreads the lanes). On a CPU every stage
  competes for the same cores; lanes hand nothing from thread to thread and keep each image's data in one
  core's cache, which is why they are the CPU's default: more images per second than the request queue,
  on less CPU per image (measured: docs/performance.md). Lanes that share the cores read text on the
  engines' lane compiles (``Engines.for_lanes()``).
- **Request queue** (a GPU or NPU, ``AUTO`` choosing one, or ``backlog_mode = "queue"``). Decoding +
  letterboxing in a small thread pool (``cv2.imdecode`` and ``cv2.resize`` release the GIL), whose threads also start each image's inference
  on OpenVINO's asynchronous request queue (THROUGHPUT hint: as many parallel requests as the device
  likes); post-processing, the domain pipeline and recording run on a few finishing threads as each
  inference ends, so the device is never left waiting for the CPU's work. The worker's own thread only
  claims jobs and counts what is done.

The backlog drives the worker through ``JobSteps`` (``edgecv.work.steps``) only. Either way at most a
few images are held in memory. Jobs are claimed as many at a time as the path
holds, once the claimed ones have all been started: one transaction per batch rather than one per
image, and a crash re-queues only those few (their attempt counts stay honest). On stop, what is in hand
is finished and unstarted claims go back to the queue without counting an attempt.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgecv.config import Config
from edgecv.detections import Detections
from edgecv.records import Job
from edgecv.runtime.preprocess import LetterboxInfo
from edgecv.threads import lane_slots, name_os_thread, start_thread
from edgecv.work.pool import lane_hint
from edgecv.work.steps import JobSteps, Loaded

log = logging.getLogger(__name__)


def decode_threads() -> int:
    """Threads for decoding on the request-queue path: one per core, at most 4."""
    return lane_slots()


def lane_count(config: Config) -> int:
    """Lanes per worker: one per core, at most 4, the cores shared among ``config.workers``."""
    return max(1, decode_threads() // max(1, config.workers))


def uses_lanes(config: Config, device: str | None = None) -> bool:
    """Whether a backlog runs in lanes: ``backlog_mode``, and for ``auto`` whether the model runs on the
    CPU (``device``: where its LATENCY compile runs, ``Detector.device``; ``AUTO`` on a box without a GPU
    or NPU, or a requested device that is absent, ends up on the CPU; default: ``config.device``)."""
    if config.backlog_mode != "auto":
        return config.backlog_mode == "lanes"
    return all(d.strip().upper().startswith("CPU") for d in (device or config.device).split(","))


def backlog_hints(config: Config, device: str | None = None) -> list[str]:
    """The ``DetectorPool`` compiles a backlog of one model needs (to preload them)."""
    if uses_lanes(config, device):
        return [lane_hint(i) for i in range(lane_count(config))]
    return ["THROUGHPUT"]


def run_backlog(worker: JobSteps, jobs: list[Job]) -> list[Job]:
    """Process claimed ``jobs`` (any mix of models) to completed/failed; returns them finished."""
    by_model: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_model[job.model].append(job)
    groups = list(by_model.items())
    finished: list[Job] = []
    try:
        while groups:
            model, model_jobs = groups.pop(0)
            if worker.stopping():
                worker.release(model_jobs)
                continue
            run = _run_lanes if _lanes_for(worker, model) else _run_queue
            finished.extend(run(worker, model_jobs))
    finally:
        if groups:  # an error (the database) stopped the batch: hand the other models' claims back
            with contextlib.suppress(Exception):
                worker.release([j for _, g in groups for j in g])
    return finished


def _lanes_for(worker: JobSteps, model: str) -> bool:
    cfg = worker.config
    if cfg.backlog_mode != "auto" or cfg.device == "CPU":
        return uses_lanes(cfg)
    try:
        return uses_lanes(cfg, worker.detectors.get(model).device)
    except Exception:  # the model does not load: the request-queue path fails its jobs with the error
        return False


# ------------------------------------------------------------------------------------------------ lanes
class _Claims:
    """The jobs of one model handed out to lanes, claimed from the store a batch at a time."""

    def __init__(self, worker: JobSteps, model: str, jobs: list[Job], batch: int) -> None:
        self.worker, self.model, self.batch = worker, model, batch
        self.pending = list(jobs)
        self.finished: list[Job] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def take(self) -> Job | None:
        """The next job for a lane; None once the model's queue is empty, the agent stops or a lane failed."""
        with self._lock:
            if self.error is not None or self.worker.stopping():
                return None
            if not self.pending:
                self.pending = self.worker.claim(self.batch, self.model)
            return self.pending.pop(0) if self.pending else None

    def done(self, job: Job) -> None:
        with self._lock:
            self.finished.append(job)

    def fail_all(self, exc: BaseException) -> None:
        with self._lock:
            self.error = self.error or exc

    def release(self) -> None:
        """Hand claimed, unstarted jobs back to the queue (stopping, or after a lane's error)."""
        with self._lock:
            pending, self.pending = self.pending, []
        if pending:
            self.worker.release(pending)


def _run_lanes(worker: JobSteps, jobs: list[Job]) -> list[Job]:
    model = jobs[0].model
    try:
        detectors = worker.detectors.lanes(model, lane_count(worker.config))
    except Exception as exc:  # model missing or broken: every job fails with the same clear error
        return [worker.fail(job, exc) for job in jobs]
    claims = _Claims(worker, model, jobs, batch=2 * len(detectors))
    shared = len(detectors) > 1  # one lane (a small backlog, on the LATENCY compile) has every core
    lanes = [
        start_thread(f"edgecv-lane-{i}", _lane, worker, detector, claims, shared)
        for i, detector in enumerate(detectors)
    ]
    for thread in lanes:
        thread.join()
    try:
        claims.release()
    finally:
        if claims.error is not None:  # e.g. the database failing: the worker's loop logs it and retries
            raise claims.error
    return claims.finished


def _lane(worker: JobSteps, detector, claims: _Claims, shared: bool) -> None:
    """One lane: each job from decoding to its recorded result on this thread and its own compile.
    Lanes that share the cores also read text on the engines' lane compiles (one thread each)."""
    engines = worker.engines.for_lanes() if shared else worker.engines
    job = None
    try:
        while (job := claims.take()) is not None:
            claims.done(worker.run_job(job, detector, engines))
            job = None
    except BaseException as exc:  # recording failed: stop every lane and re-raise on the worker thread
        claims.fail_all(exc)
        if job is not None:  # its result is not recorded: back to the queue now, not at its lease's end
            with contextlib.suppress(Exception):  # (best effort: the database may still be failing)
                worker.release([job])


# ---------------------------------------------------------------------------------------- request queue
def _run_queue(worker: JobSteps, jobs: list[Job]) -> list[Job]:
    model = jobs[0].model
    try:
        detector = worker.detectors.get(model, hint="THROUGHPUT")
    except Exception as exc:  # model missing or broken: every job fails with the same clear error
        return [worker.fail(job, exc) for job in jobs]
    done: queue.Queue = queue.Queue()  # (job, in-flight or None, raw or None, error or None)
    infer = detector.infer_queue(lambda flight, raw, error: done.put((flight.loaded.job, flight, raw, error)))
    submit_lock = threading.Lock()
    limit = max(2, getattr(infer, "size", 1)) * 2 + 2 * decode_threads()  # images held in memory at most
    results: queue.Queue = queue.Queue()  # finished Jobs (or an exception to re-raise here)
    finishers = [
        start_thread(f"edgecv-finish-{i}", _finisher, worker, done, results) for i in range(decode_threads())
    ]
    finished: list[Job] = []
    pending = list(jobs)
    in_flight = 0  # handed to the pool and not yet recorded
    try:
        with ThreadPoolExecutor(
            decode_threads(), thread_name_prefix="edgecv-decode", initializer=name_os_thread
        ) as pool:
            while True:
                if pending and worker.stopping():  # shutting down: finish what is in flight, return the rest
                    worker.release(pending)
                    pending = []
                while in_flight < limit and not worker.stopping():
                    if not pending:  # keep the pipeline full: claim the next few of this model at once
                        pending = worker.claim(limit, model)
                        if not pending:
                            break
                    pool.submit(_load_and_submit, worker, detector, infer, submit_lock, done, pending.pop(0))
                    in_flight += 1
                if not in_flight:  # nothing in flight and nothing more to claim (or stopping)
                    break
                # collecting may empty the pipeline at once: the loop claims again before it ends
                in_flight -= _collect(results, finished)
            infer.wait_all()
    finally:
        for _ in finishers:
            done.put(None)
        for thread in finishers:
            thread.join()
    return finished


@dataclass
class _InFlight:
    """A job on the request queue, from its decode thread to its finishing thread."""

    loaded: Loaded
    tensor: np.ndarray | None  # the network input, kept until the job's inference is post-processed
    letterbox: LetterboxInfo | None  # None for a refused image (never inferred)
    submitted_at: float = 0.0


def _load_and_submit(worker: JobSteps, detector, infer, submit_lock, done: queue.Queue, job: Job) -> None:
    """On a pool thread: decode, letterbox and start the inference (waiting while every request is
    busy), so inference never waits for the worker thread, which is busy post-processing."""
    try:
        loaded = worker.load(job, hint="THROUGHPUT", detector=detector)
        if loaded.refused:  # not the model's domain: straight to the finishing threads, no inference
            done.put((job, _InFlight(loaded, None, None), None, None))
            return
        flight = _InFlight(loaded, *detector.preprocess(loaded.image, size=loaded.size))
        with submit_lock:  # one caller of the request queue at a time
            flight.submitted_at = time.perf_counter()
            infer.submit(flight.tensor, flight)
    except Exception as exc:  # reported to the worker thread, which records the failure
        done.put((job, None, None, exc))


def _finisher(worker: JobSteps, done: queue.Queue, results: queue.Queue) -> None:
    """On a finishing thread: post-process, run the pipeline and record each inference as it ends.

    Two or more of these run, so one job's pipeline (Python, the price reader's inference, SQLite)
    overlaps another's; a single thread here was what held the whole backlog back."""
    while (item := done.get()) is not None:
        try:
            results.put(_finish(worker, *item))
        except BaseException as exc:  # e.g. the database failing: the worker thread re-raises it
            results.put(exc)


def _finish(worker: JobSteps, job: Job, flight: _InFlight | None, raw, error) -> Job:
    if error is not None or flight is None:
        return worker.fail(job, error)
    loaded = flight.loaded
    if loaded.refused:
        return worker.complete(loaded, Detections.empty(), 0.0)
    ms = (time.perf_counter() - flight.submitted_at) * 1000.0
    try:
        shape = loaded.image.shape if loaded.size is None else (loaded.size[1], loaded.size[0])
        detections = loaded.detector.postprocess(raw, flight.letterbox, shape)
    except Exception as exc:
        return worker.fail(job, exc)
    flight.tensor = None
    return worker.complete(loaded, detections, ms)


def _collect(results: queue.Queue, finished: list[Job]) -> int:
    """Wait (briefly) for one finished job, then take every other one ready; how many."""
    count = 0
    block = True
    while True:
        try:
            item = results.get(timeout=0.05) if block else results.get_nowait()
        except queue.Empty:
            return count
        block = False
        if isinstance(item, BaseException):
            raise item
        count += 1
        finished.append(item)

"""The backlog path: decoding, preprocessing and inference overlap so every core does useful work.

Used by a worker when several jobs are queued. Three things run at once:
- decoding + letterboxing in a small thread pool (``cv2.imdecode`` and ``cv2.resize`` release the GIL),
  whose threads also start each image's inference as soon as it is ready;
- inference on OpenVINO's asynchronous request queue, compiled with the THROUGHPUT hint (as many
  parallel requests as the device likes);
- post-processing, the domain pipeline and recording results on a few finishing threads, as each
  inference ends. The worker's own thread only claims jobs and counts what is done: when it also
  started inferences and ran pipelines, the request queue sat idle while it read price tags.
At most a few images per inference request are held in memory. Jobs are claimed as many at a time as
the pipeline holds, when the claimed ones have all been started: one transaction per batch rather than
one per image (worker thread 0.5 -> 0.4 s of CPU per 500 shelves), and a crash still re-queues only
those few (their attempt counts stay honest).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from edgecv.jobs import Job
from edgecv.threads import name_os_thread, start_thread

log = logging.getLogger(__name__)


def decode_threads() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def run_backlog(worker, jobs: list[Job]) -> list[Job]:
    """Process claimed ``jobs`` (any mix of models) to completed/failed; returns them finished."""
    by_model: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_model[job.model].append(job)
    finished: list[Job] = []
    for model_jobs in by_model.values():
        if worker.stopping():
            worker.store.release_jobs([j.id for j in model_jobs], worker.owner)
            continue
        finished.extend(_run_model(worker, model_jobs))
    return finished


def _run_model(worker, jobs: list[Job]) -> list[Job]:
    model = jobs[0].model
    try:
        detector = worker.detectors.get(model, hint="THROUGHPUT")
    except Exception as exc:  # model missing or broken: every job fails with the same clear error
        return [worker.fail(job, exc) for job in jobs]
    done: queue.Queue = queue.Queue()  # (job, loaded or None, raw or None, error or None)
    infer = detector.infer_queue(lambda loaded, raw, error: done.put((loaded.job, loaded, raw, error)))
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
            while pending or in_flight:
                if pending and worker.stopping():  # shutting down: finish what is in flight, return the rest
                    worker.store.release_jobs([j.id for j in pending], worker.owner)
                    pending = []
                while in_flight < limit and not worker.stopping():
                    if not pending:  # keep the pipeline full: claim the next few of this model at once
                        pending = worker.store.claim_jobs(
                            worker.owner, worker.config.lease_s, limit=limit, model=model
                        )
                        if not pending:
                            break
                    pool.submit(_load_and_submit, worker, detector, infer, submit_lock, done, pending.pop(0))
                    in_flight += 1
                if in_flight:
                    in_flight -= _collect(results, finished)
            infer.wait_all()
    finally:
        for _ in finishers:
            done.put(None)
        for thread in finishers:
            thread.join()
    return finished


def _load_and_submit(worker, detector, infer, submit_lock, done: queue.Queue, job: Job) -> None:
    """On a pool thread: decode, letterbox and start the inference (waiting while every request is
    busy), so inference never waits for the worker thread, which is busy post-processing."""
    try:
        loaded = worker.load(job, hint="THROUGHPUT")
        loaded.detector = detector
        loaded.tensor, loaded.letterbox = detector.preprocess(loaded.image)
        with submit_lock:  # one caller of the request queue at a time
            loaded.submitted_at = time.perf_counter()
            infer.submit(loaded.tensor, loaded)
    except Exception as exc:  # reported to the worker thread, which records the failure
        done.put((job, None, None, exc))


def _finisher(worker, done: queue.Queue, results: queue.Queue) -> None:
    """On a finishing thread: post-process, run the pipeline and record each inference as it ends.

    Two or more of these run, so one job's pipeline (Python, the price reader's inference, SQLite)
    overlaps another's; a single thread here was what held the whole backlog back."""
    while (item := done.get()) is not None:
        try:
            results.put(_finish(worker, *item))
        except BaseException as exc:  # e.g. the database failing: the worker thread re-raises it
            results.put(exc)


def _finish(worker, job: Job, loaded, raw, error) -> Job:
    if error is not None:
        return worker.fail(job, error)
    ms = (time.perf_counter() - loaded.submitted_at) * 1000.0
    try:
        detections = loaded.detector.postprocess(raw, loaded.letterbox, loaded.image.shape)
    except Exception as exc:
        return worker.fail(job, exc)
    loaded.tensor = None
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

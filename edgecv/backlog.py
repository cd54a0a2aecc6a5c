"""The backlog path: decoding, preprocessing and inference overlap so every core does useful work.

Used by a worker when several jobs are queued. Three things run at once:
- decoding + letterboxing in a small thread pool (``cv2.imdecode`` and ``cv2.resize`` release the GIL);
- inference on OpenVINO's asynchronous request queue, compiled with the THROUGHPUT hint (as many
  parallel requests as the device likes);
- post-processing and recording results on the worker's own thread, as each inference finishes.
At most a few images per inference request are held in memory, and jobs are claimed a few at a time
as the pipeline has room (so a crash re-queues only those few, and their attempt counts stay honest).
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

from edgecv.jobs import Job
from edgecv.threads import name_os_thread

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
    done: queue.Queue = queue.Queue()
    infer = detector.infer_queue(lambda loaded, raw, error: done.put((loaded, raw, error)))
    limit = max(2, getattr(infer, "size", 1)) * 2 + decode_threads()  # images held in memory at most
    finished: list[Job] = []
    pending = list(jobs)
    loading: list[tuple[Job, Future]] = []
    in_inference = 0
    with ThreadPoolExecutor(
        decode_threads(), thread_name_prefix="edgecv-decode", initializer=name_os_thread
    ) as pool:
        while pending or loading or in_inference:
            if pending and worker.stopping():  # shutting down: finish what is in flight, hand back the rest
                worker.store.release_jobs([j.id for j in pending], worker.owner)
                pending = []
            while len(loading) + in_inference < limit and not worker.stopping():
                if not pending:  # keep the pipeline full: claim more of this model, a few at a time
                    pending = worker.store.claim_jobs(
                        worker.owner,
                        worker.config.lease_s,
                        limit=limit - len(loading) - in_inference,
                        model=model,
                    )
                    if not pending:
                        break
                job = pending.pop(0)
                loading.append((job, pool.submit(_load, worker, detector, job)))
            if loading and (loading[0][1].done() or not in_inference):
                job, future = loading.pop(0)
                try:
                    loaded = future.result()
                except Exception as exc:
                    finished.append(worker.fail(job, exc))
                else:
                    loaded.submitted_at = time.perf_counter()
                    infer.submit(loaded.tensor, loaded)
                    in_inference += 1
                in_inference -= _drain(worker, done, finished, block=False)
            else:
                in_inference -= _drain(worker, done, finished, block=True)
        infer.wait_all()
    return finished


def _load(worker, detector, job: Job):
    """Decode and letterbox on a pool thread."""
    loaded = worker.load(job, hint="THROUGHPUT")
    loaded.detector = detector
    loaded.tensor, loaded.letterbox = detector.preprocess(loaded.image)
    return loaded


def _drain(worker, done: queue.Queue, finished: list[Job], *, block: bool) -> int:
    """Post-process and record every finished inference (waiting for one if ``block``); how many."""
    count = 0
    while True:
        try:
            loaded, raw, error = done.get(timeout=0.05) if block else done.get_nowait()
        except queue.Empty:
            return count
        block = False
        count += 1
        if error is not None:
            finished.append(worker.fail(loaded.job, error))
            continue
        ms = (time.perf_counter() - loaded.submitted_at) * 1000.0
        try:
            detections = loaded.detector.postprocess(raw, loaded.letterbox, loaded.image.shape)
        except Exception as exc:
            finished.append(worker.fail(loaded.job, exc))
            continue
        loaded.tensor = None
        finished.append(worker.complete(loaded, detections, ms))

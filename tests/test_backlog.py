"""The backlog path, in lanes (CPU) and on the request queue (accelerators), gives the same results as
the one-at-a-time path, fails per job, stops cleanly and raises database errors on the worker thread."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers.images import distinct_jpeg, jpeg_bytes

from edgecv.ingest import ingest_bytes
from edgecv.store import Store
from edgecv.store.counts import jobs_by_status
from edgecv.work.backlog import backlog_hints, decode_threads, lane_count, uses_lanes
from edgecv.work.steps import JobSteps
from edgecv.work.worker import Worker


def queue_images(store, config, n, start=0, model="rect"):
    return [
        ingest_bytes(store, config, distinct_jpeg(i), name=f"{i}.jpg", model=model).job
        for i in range(start, start + n)
    ]


def boxes(job):
    return [(d["objectName"], d["boundingBox"]) for d in job.result["detections"]]


MODES = ["lanes", "queue"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_backlog_matches_single_path(store, config, tmp_path, backend, mode):
    config.backend, config.backlog_mode = backend, mode
    jobs = queue_images(store, config, 12)
    worker = Worker(store, config)
    assert worker.run_once() is not None  # 12 queued ≥ backlog_min: one batch, overlapped
    assert jobs_by_status(store)["completed"] == 12
    hints = {hint for _, hint in worker.detectors.loaded()}
    assert hints == ({f"LANE-{i}" for i in range(lane_count(config))} if mode == "lanes" else {"THROUGHPUT"})

    single_cfg = replace(config, data_dir=tmp_path / "single", backlog_batch=1)
    single_store = Store(single_cfg.db_path)
    single_jobs = queue_images(single_store, single_cfg, 12)
    single_worker = Worker(single_store, single_cfg)
    while single_worker.run_once() is not None:
        pass
    assert list(single_worker.detectors.loaded()) == [("rect", "LATENCY")]
    for job, twin in zip(jobs, single_jobs, strict=True):
        got, expected = store.get_job(job.id), single_store.get_job(twin.id)
        assert boxes(got) == boxes(expected)
        for a, b in zip(got.result["detections"], expected.result["detections"], strict=True):
            assert a["confidence"] == pytest.approx(b["confidence"], abs=0.02)
    single_store.close()


@pytest.mark.parametrize("mode", MODES)
def test_backlog_fails_bad_jobs_and_completes_the_rest(store, config, mode):
    config.backlog_mode = mode
    good = queue_images(store, config, 6)
    missing = queue_images(store, config, 2, start=50, model="no-such-model")
    bad = ingest_bytes(
        store, config, jpeg_bytes(box=(5, 5, 50, 50)), name="soon-broken.jpg", model="rect"
    ).job
    obs_path = config.data_dir / store.get_observation(bad.observation_id).spool_path
    obs_path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)  # the spooled bytes went bad on disk
    worker = Worker(store, config)
    while worker.run_once() is not None:
        pass
    statuses = {j.id: store.get_job(j.id) for j in [*good, *missing, bad]}
    assert all(statuses[j.id].status == "completed" for j in good)
    assert all(statuses[j.id].error_code == "model_not_found" for j in missing)
    assert statuses[bad.id].status == "failed" and statuses[bad.id].error_code == "image_unreadable"
    assert store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 9


@pytest.mark.parametrize("mode", MODES)
def test_stop_finishes_what_is_in_flight_and_hands_back_the_rest(store, config, mode):
    import threading

    config.backlog_mode = mode

    queue_images(store, config, 40)
    stop = threading.Event()
    worker = Worker(store, config, on_finished=lambda job: stop.set())
    worker.stop_event = stop
    worker.run_once()
    counts = jobs_by_status(store)
    assert 1 <= counts["completed"] < 20 and counts["processing"] == 0
    assert counts["queued"] == 40 - counts["completed"]
    attempts = store.conn.execute("SELECT MAX(attempts) FROM jobs WHERE status = 'queued'").fetchone()[0]
    assert attempts == 0  # handed back unstarted: no attempt counted


@pytest.mark.parametrize("mode", MODES)
def test_a_database_error_while_recording_reaches_the_worker_and_stops_nothing_else(store, config, mode):
    import sqlite3
    import threading

    config.backlog_mode = mode

    queue_images(store, config, 10)
    worker = Worker(store, config)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    store.complete_job = broken
    before = threading.active_count()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        worker.run_once()  # raised on the worker thread (run_forever logs it and retries)
    assert calls
    assert threading.active_count() == before  # the lanes or finishing threads ended, none left waiting
    counts = jobs_by_status(store)
    assert counts.get("completed", 0) == 0
    if mode == "lanes":  # the lanes stopped at the error and handed back every job they held
        assert counts["queued"] == 10 and counts.get("processing", 0) == 0


@pytest.mark.parametrize("mode", MODES)
def test_pipelines_get_the_workers_engines_and_shared_lanes_their_lane_compiles(store, config, mode):
    config.backlog_mode = mode
    queue_images(store, config, 12)
    worker = Worker(store, config)
    seen = []
    complete = worker.complete

    def spy(loaded, detections, inference_ms, engines=None):
        seen.append(engines or worker.engines)
        return complete(loaded, detections, inference_ms, engines)

    worker.complete = spy
    assert isinstance(worker, JobSteps)  # all the backlog may use of the worker
    worker.run_once()
    assert len(seen) == 12
    shared_lanes = mode == "lanes" and lane_count(config) > 1  # one lane alone has every core
    expected = worker.engines.for_lanes() if shared_lanes else worker.engines
    assert all(e == expected for e in seen)
    assert (expected == worker.engines) == (not shared_lanes)


def test_auto_mode_runs_lanes_where_the_model_runs_on_the_cpu(config):
    from dataclasses import replace as with_

    assert uses_lanes(config)  # the default: device CPU, mode auto
    assert not uses_lanes(with_(config, device="GPU"))
    assert uses_lanes(with_(config, device="AUTO"), "CPU")  # AUTO on a box with no GPU or NPU
    assert not uses_lanes(with_(config, device="AUTO"), "GPU.0,CPU")
    assert uses_lanes(with_(config, device="GPU"), "CPU")  # an absent GPU falls back to the CPU
    assert not uses_lanes(with_(config, backlog_mode="queue"))
    assert uses_lanes(with_(config, device="NPU", backlog_mode="lanes"), "NPU")
    assert backlog_hints(config) == [f"LANE-{i}" for i in range(lane_count(config))]
    assert backlog_hints(with_(config, backlog_mode="queue")) == ["THROUGHPUT"]
    assert lane_count(with_(config, workers=decode_threads() + 1)) == 1  # workers share the cores


def test_agent_preloads_the_default_models_lanes(config, tmp_path):
    from edgecv.agent import Agent

    config.inbox = tmp_path / "inbox"
    config.default_model = "rect"
    agent = Agent(config)
    pool = agent._preloaded_pool(config)
    assert {hint for _, hint in pool.loaded()} == {"LATENCY", *backlog_hints(config)}

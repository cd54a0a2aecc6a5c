"""The system clock stepped back or forward an hour during a backlog (the clock the code reads is
replaced by one the test moves): ids stay sorted and unique, leases and retry times keep their meaning,
no job runs twice or stays stuck."""

from __future__ import annotations

import time
import types

import pytest
from helpers.images import distinct_jpeg

from edgecv import ids
from edgecv.agent import Agent
from edgecv.clock import ClockWatch
from edgecv.ingest import ingest_bytes
from edgecv.store import Store
from edgecv.store import webhooks as webhook_sql
from edgecv.work.worker import Worker

HOUR = 3600.0


class SteppableClock:
    """The wall clock as the code reads it (``time.time`` / ``time.time_ns``), plus ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def time_ns(self) -> int:
        return time.time_ns() + int(self.offset * 1e9)

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch):
    """Steps the clock read by ids, the job log (leases), webhook retries and the clock watch."""
    fake = SteppableClock()
    wall = types.SimpleNamespace(time=fake.time, time_ns=fake.time_ns, monotonic=time.monotonic)
    for module in ("edgecv.ids", "edgecv.store", "edgecv.store.webhooks"):
        monkeypatch.setattr(f"{module}.time", wall)
    # ids issued an hour ahead must not outlive the test: restore the generator afterwards
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)
    monkeypatch.setattr(ids, "_last_rand", ids._last_rand)
    return fake


def queue(store, config, n, start=0):
    return [
        ingest_bytes(store, config, distinct_jpeg(i), name=f"img{i}.jpg", model="rect").job
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("step", [-HOUR, HOUR])
def test_ids_stay_sorted_and_unique_across_a_step(clock, step):
    before = [ids.new_id("job") for _ in range(200)]
    clock.offset += step
    after = [ids.new_id("job") for _ in range(200)]
    every = before + after
    assert every == sorted(every) and len(set(every)) == len(every)


def test_ids_continue_after_the_newest_in_the_log_when_restarted_with_the_clock_back(
    clock, config, monkeypatch
):
    store = Store(config.db_path)
    older = queue(store, config, 3)
    store.close()
    monkeypatch.setattr(ids, "_last_ms", -1)  # a new process: the generator starts afresh
    clock.offset -= HOUR
    store = Store(config.db_path)  # seeds the generator with the newest id of the log
    try:
        newer = queue(store, config, 3, start=3)
        every = [j.id for j in older + newer]
        assert every == sorted(every)
        claimed = store.claim_jobs("w", 300, limit=6)
        assert [j.id for j in claimed] == every  # oldest first, as queued
    finally:
        store.close()


def test_clock_watch_reports_steps_not_elapsed_time():
    wall, mono = [1000.0], [50.0]
    watch = ClockWatch(wall=lambda: wall[0], monotonic=lambda: mono[0])
    wall[0] += 30
    mono[0] += 30
    assert watch.step() == 0.0  # time passed, nothing stepped
    wall[0] -= HOUR
    assert watch.step() == -HOUR
    wall[0] += HOUR + 0.5
    mono[0] += 0.5
    assert watch.step() == HOUR
    assert watch.step() == 0.0


def reaper_tick(agent: Agent, step: float) -> tuple[int, int]:
    """What the agent's lease reaper does on a tick after the clock watch saw ``step``."""
    if step:
        agent._correct_for_clock_step(step)
    return agent.store.recover_jobs(agent.config.max_attempts, only_expired=True)


def test_clock_forward_during_a_backlog_reruns_nothing(clock, config):
    store = Store(config.db_path)
    agent = Agent(config)
    agent.store = store
    try:
        jobs = queue(store, config, 5)
        worker = Worker(store, config)
        in_hand = store.claim_job(worker.owner, config.lease_s)
        clock.offset += HOUR  # the lease now looks an hour past its expiry
        assert reaper_tick(agent, HOUR) == (0, 0)
        worker.process(in_hand)
        while (job := store.claim_job(worker.owner, config.lease_s)) is not None:
            worker.process(job)
        finished = [store.get_job(j.id) for j in jobs]
        assert all(j.status == "completed" and j.attempts == 1 for j in finished)
    finally:
        store.close()


def test_a_forward_step_without_correction_would_requeue_the_job_in_hand(clock, config):
    """The failure the correction prevents (so the test above can fail)."""
    store = Store(config.db_path)
    try:
        queue(store, config, 1)
        store.claim_job("w", config.lease_s)
        clock.offset += HOUR
        assert store.recover_jobs(config.max_attempts, only_expired=True) == (1, 0)
    finally:
        store.close()


def test_clock_back_leaves_no_abandoned_job_stuck_for_an_hour(clock, config):
    store = Store(config.db_path)
    agent = Agent(config)
    agent.store = store
    try:
        abandoned, fresh = queue(store, config, 2)
        store.claim_job("crashed-thread", config.lease_s, job_id=abandoned.id)
        clock.offset -= HOUR
        store.claim_job("live-thread", config.lease_s, job_id=fresh.id)  # leased after the step
        assert reaper_tick(agent, -HOUR) == (0, 0)  # neither has expired yet
        clock.offset += config.lease_s + 1  # one lease later, not an hour later
        assert store.recover_jobs(config.max_attempts, only_expired=True) == (2, 0)
        assert store.get_job(abandoned.id).status == "queued"
    finally:
        store.close()


@pytest.mark.parametrize("step", [-HOUR, HOUR])
def test_webhook_retry_times_keep_their_meaning(clock, config, step):
    store = Store(config.db_path)
    agent = Agent(config)
    agent.store = store
    try:
        webhook_sql.create_endpoint(store, "http://127.0.0.1:9/hook", "whsec_x", ["job.completed"])
        job = queue(store, config, 1)[0]
        store.claim_job("w", 300, job_id=job.id)
        store.complete_job(job.id, "w", {"detections": [], "summary": {}})
        (delivery,) = webhook_sql.claim_due(store, limit=10, lease_s=30)
        retry_in = 600.0
        webhook_sql.mark_attempt_failed(
            store, delivery.id, status=503, error="down", next_attempt_at=clock.time() + retry_in
        )
        clock.offset += step
        reaper_tick(agent, step)
        due_at = store.conn.execute(
            "SELECT next_attempt_at FROM webhook_deliveries WHERE id = ?", (delivery.id,)
        ).fetchone()[0]
        assert due_at - clock.time() == pytest.approx(retry_in, abs=5)
        assert webhook_sql.claim_due(store, limit=10, lease_s=30) == []  # not early
        clock.offset += retry_in + 1
        assert [d.id for d in webhook_sql.claim_due(store, limit=10, lease_s=30)] == [delivery.id]
    finally:
        store.close()

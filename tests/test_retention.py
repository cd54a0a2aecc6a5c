"""Retention by age: expired images and results go once synced upstream, never before."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from helpers.sync_server import make_jobs

from edgecv.config import RetentionSettings, load_config
from edgecv.errors import ConfigError, JobNotFound, ObservationNotFound
from edgecv.retention import RetentionSweeper
from edgecv.services import build_services
from edgecv.status import status_lines, status_snapshot
from edgecv.store import outbox
from edgecv.store.outbox import Ack, Parked

LATER = datetime.now(timezone.utc) + timedelta(days=31)


def _spool(config, prefix: str, n: int) -> list:
    paths = []
    for i in range(n):
        path = config.data_dir / "spool" / f"{prefix}-{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8" + bytes(100))
        paths.append(path)
    return paths


def _jobs(store, config, prefix: str, n: int, *, synced: bool) -> tuple[list[str], list]:
    ids = make_jobs(store, n, prefix=prefix)
    if synced:
        wanted = set(ids)
        acks = [Ack(e.outbox_id, None) for e in outbox.pending_entries(store, 1000) if e.job.id in wanted]
        outbox.record_replies(store, acks, [], None)
    return ids, _spool(config, prefix, n)


def _sweeper(store, config, images_days=30, jobs_days=30):
    return RetentionSweeper(store, config.data_dir, RetentionSettings(images_days, jobs_days))


def test_an_unsynced_image_or_result_is_never_removed_however_old(store, config):
    ids, paths = _jobs(store, config, "offline", 3, synced=False)
    report = _sweeper(store, config).sweep(now=LATER + timedelta(days=3650))
    assert report["imagesRemoved"] == report["jobsRemoved"] == 0
    assert (report["imagesWaiting"], report["jobsWaiting"]) == (3, 3)
    assert all(p.exists() for p in paths)
    assert all(store.get_job(i) is not None for i in ids)


def test_synced_images_and_results_past_the_limit_are_removed(store, config):
    old_ids, old_paths = _jobs(store, config, "synced", 2, synced=True)
    kept_ids, kept_paths = _jobs(store, config, "unsynced", 2, synced=False)
    sweeper = _sweeper(store, config)

    young = sweeper.sweep()  # nothing is 30 days old yet
    assert young["imagesRemoved"] == young["jobsRemoved"] == 0
    assert all(p.exists() for p in old_paths)

    report = sweeper.sweep(now=LATER)
    assert (report["imagesRemoved"], report["jobsRemoved"]) == (2, 2)
    assert report["bytesFreed"] == 2 * 102
    assert not any(p.exists() for p in old_paths) and all(p.exists() for p in kept_paths)
    for i in old_ids:
        with pytest.raises(JobNotFound):
            store.get_job(i)
    assert all(store.get_job(i) is not None for i in kept_ids)
    assert (report["imagesWaiting"], report["jobsWaiting"]) == (2, 2)


def test_images_can_go_before_their_results_and_observations_go_last(store, config):
    ids, paths = _jobs(store, config, "s", 2, synced=True)
    report = _sweeper(store, config, images_days=30, jobs_days=0).sweep(now=LATER)
    assert report["imagesRemoved"] == 2 and report["jobsRemoved"] == 0
    assert not any(p.exists() for p in paths)
    job = store.get_job(ids[0])
    assert job is not None and job.result is not None  # the result stays
    _sweeper(store, config, images_days=30, jobs_days=30).sweep(now=LATER)
    with pytest.raises(JobNotFound):
        store.get_job(ids[0])
    with pytest.raises(ObservationNotFound):
        store.get_observation(job.observation_id)


def test_a_result_parked_upstream_stays(store, config):
    ids, _ = _jobs(store, config, "p", 2, synced=False)
    entries = outbox.pending_entries(store, 10)
    outbox.record_replies(
        store, [], [Parked(entries[0].outbox_id, "rejected")], None
    )  # parked: never reached it
    report = _sweeper(store, config, images_days=0).sweep(now=LATER)
    assert report["jobsRemoved"] == 0 and store.get_job(ids[0]) is not None


def test_status_reports_the_last_sweep(store, config):
    _jobs(store, config, "s", 1, synced=True)
    _jobs(store, config, "u", 1, synced=False)
    cfg = dataclasses.replace(config, retention=RetentionSettings(images_days=30, jobs_days=90))
    line = next(x for x in status_lines(status_snapshot(cfg)) if x.startswith("retention:"))
    assert (
        line
        == "retention:  images 30 d, results 90 d once synced; no sweep yet (the agent sweeps at start, then daily)"
    )
    _sweeper(store, cfg, 30, 90).sweep(now=LATER)
    line = next(x for x in status_lines(status_snapshot(cfg)) if x.startswith("retention:"))
    assert "removed 1 image(s), 0 result(s); 1 kept until synced" in line
    off = next(x for x in status_lines(status_snapshot(config)) if x.startswith("retention:"))
    assert off.startswith("retention:  off")


def test_the_agent_runs_the_sweeper_only_when_a_limit_is_set(store, config):
    assert build_services(config, store, api=False, webhooks=False).retention is None
    cfg = dataclasses.replace(config, retention=RetentionSettings(images_days=7))
    assert build_services(cfg, store, api=False, webhooks=False).retention is not None
    assert build_services(cfg, store, api=False, webhooks=False, relay=False).retention is None  # serve


def test_negative_days_are_refused():
    with pytest.raises(
        ConfigError, match=r"retention.images_days: must be 0 \(keep forever\) or more days, got -1"
    ):
        load_config(overrides={"retention.images_days": -1}, environ={})

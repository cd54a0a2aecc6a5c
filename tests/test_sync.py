"""Upstream sync under faults: real HTTP on loopback against the reference upstream, real SQLite.

Every scenario ends by asserting the upstream holds every result exactly once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.sync_server import (
    API_KEY,
    REPO,
    TENANT,
    add_faults,
    admin,
    assert_exactly_once,
    device_config,
    free_port,
    make_jobs,
    start_server,
)

from edgecv.store import Store, outbox
from edgecv.upstream.relay import BACKING_OFF, OFFLINE, PAUSED_AUTH, Relay
from edgecv.upstream.summary import sync_all, sync_status

pytestmark = pytest.mark.process


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "upstream.db")
    yield srv
    srv.stop()


@pytest.fixture
def device(tmp_path):
    store = Store(tmp_path / "device" / "edgecv.db")
    yield store
    store.close()


def requests_seen(server) -> int:
    return server.upstream.stats(None)["requests"].get("results", 0)


def outbox_rows(store: Store) -> list[tuple]:
    return store.conn.execute(
        "SELECT job_id, idempotency_key, state, attempts FROM outbox ORDER BY id"
    ).fetchall()


RELAY_PROCESS = """
import sys
from pathlib import Path
from edgecv.config import Config
from edgecv.store import Store
from edgecv.upstream.summary import sync_all
data_dir, url, key, tenant = sys.argv[1:5]
cfg = Config(data_dir=Path(data_dir), tenant_id=tenant)
cfg.sync.url, cfg.sync.api_key, cfg.sync.timeout_s = url, key, 120.0
print(sync_all(Store(cfg.db_path), cfg, progress=False), flush=True)
"""


def test_sigkill_between_send_and_ack_then_resend_is_a_duplicate_not_a_second_result(
    tmp_path, server, device
):
    jobs = make_jobs(device, 40)
    add_faults(server, {"kind": "delay", "phase": "after", "seconds": 60, "count": 1})
    cmd = [sys.executable, "-c", RELAY_PROCESS, str(tmp_path / "device"), server.url, API_KEY, TENANT]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while server.upstream.stats(TENANT)["results"] < len(jobs):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the relay process never reached the upstream"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # committed upstream, acknowledgement not yet recorded
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert outbox.backlog(device).pending == len(jobs)
    assert device.integrity_check() == "ok"

    admin(server, "DELETE", "/_admin/faults")
    summary = sync_all(device, device_config(tmp_path / "device", server.url), progress=False)
    assert (summary.sent, summary.duplicate, summary.pending) == (0, len(jobs), 0)
    assert_exactly_once(server, [device])


def test_response_lost_after_commit_is_not_duplicated(tmp_path, server, device):
    make_jobs(device, 25)
    add_faults(server, {"kind": "drop", "count": 2})
    relay = Relay.from_config(device, device_config(tmp_path / "device", server.url))
    wait = relay.run_once()
    assert relay.state == OFFLINE and outbox.backlog(device).pending == 25
    assert server.upstream.stats(TENANT)["results"] == 25
    time.sleep(wait)
    wait = relay.run_once()  # second drop: still nothing acknowledged
    assert relay.state == OFFLINE and requests_seen(server) == 2
    time.sleep(wait)
    relay.run_once()
    assert (relay.counts.created, relay.counts.duplicate) == (0, 25)
    assert outbox.backlog(device).pending == 0
    assert_exactly_once(server, [device])


def test_server_error_three_times_then_ok_reuses_the_same_keys(tmp_path, server, device):
    jobs = make_jobs(device, 30)
    keys_before = [row[1] for row in outbox_rows(device)]
    add_faults(server, {"kind": "status", "status": 500, "count": 3})
    summary = sync_all(device, device_config(tmp_path / "device", server.url), progress=False)
    assert (summary.sent, summary.pending) == (30, 0)
    assert requests_seen(server) == 4
    rows = outbox_rows(device)
    assert [r[1] for r in rows] == keys_before == [f"{j}:v1" for j in jobs]
    assert {r[3] for r in rows} == {3} and {r[2] for r in rows} == {"sent"}
    remote_keys = {r[0] for r in server.upstream.conn.execute("SELECT idempotency_key FROM results")}
    assert remote_keys == set(keys_before)
    assert_exactly_once(server, [device])


@pytest.mark.parametrize("retry_after, low, high", [("1", 0.9, 1.0), ("date:2", 0.5, 2.0)])
def test_too_many_requests_honours_retry_after(tmp_path, server, device, retry_after, low, high):
    make_jobs(device, 10)
    add_faults(server, {"kind": "status", "status": 429, "retry_after": retry_after, "count": 1})
    relay = Relay.from_config(device, device_config(tmp_path / "device", server.url))
    wait = relay.run_once()
    assert relay.state == BACKING_OFF and low <= wait <= high
    assert "HTTP 429" in relay.last_error
    assert relay.run_once() > 0 and requests_seen(server) == 1  # not retried before Retry-After
    time.sleep(wait)
    relay.run_once()
    assert relay.counts.created == 10 and requests_seen(server) == 2
    assert_exactly_once(server, [device])


def test_service_unavailable_with_http_date_retry_after(tmp_path, server, device):
    make_jobs(device, 5)
    add_faults(server, {"kind": "status", "status": 503, "retry_after": "date:1", "count": 1})
    summary = sync_all(device, device_config(tmp_path / "device", server.url), progress=False)
    assert (summary.sent, summary.pending) == (5, 0)
    assert_exactly_once(server, [device])


def test_server_never_answers_timeouts_fire(tmp_path, server, device):
    make_jobs(device, 20)
    add_faults(server, {"kind": "hang", "count": 2})
    relay = Relay.from_config(device, device_config(tmp_path / "device", server.url, timeout_s=0.3))
    started = time.monotonic()
    relay.run_once()
    assert time.monotonic() - started < 2.0
    assert relay.state == OFFLINE and "timed out" in relay.last_error

    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while outbox.backlog(device).pending and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the relay thread hung"
    assert outbox.backlog(device).pending == 0
    assert_exactly_once(server, [device])


@pytest.mark.parametrize("strict", [False, True], ids=["per-item-reply", "whole-batch-422"])
def test_one_rejected_item_in_a_batch_of_100(tmp_path, server, device, strict):
    jobs = make_jobs(device, 100, bad={37})
    admin(server, "PUT", "/_admin/settings", {"strict": strict})
    summary = sync_all(device, device_config(tmp_path / "device", server.url), progress=False)
    assert (summary.sent, summary.rejected, summary.pending) == (99, 1, 0)
    parked = outbox.parked_entries(device)
    assert [p[0] for p in parked] == [jobs[37]] and "invalid_result" in parked[0][1]
    assert (
        sync_status(device, device_config(tmp_path / "device", server.url))["parked"][0]["jobId"] == jobs[37]
    )
    assert_exactly_once(server, [device], skip={jobs[37]})


def test_unauthorized_pauses_until_credentials_change(tmp_path, server, device, caplog):
    caplog.set_level(logging.DEBUG)
    make_jobs(device, 15)
    cfg = device_config(tmp_path / "device", server.url, api_key="wrong-key-123", auth_probe_s=30.0)
    relay = Relay.from_config(device, cfg)
    relay.run_once()
    assert relay.state == PAUSED_AUTH and "API key was refused" in relay.last_error
    assert relay.run_once() > 0 and requests_seen(server) == 1  # paused: nothing sent
    assert {r[3] for r in outbox_rows(device)} == {0}  # no attempts burned
    relay.set_api_key(API_KEY)
    relay.run_once()
    assert relay.counts.created == 15
    assert_exactly_once(server, [device])
    for path in tmp_path.joinpath("device").glob("edgecv.db*"):
        assert b"wrong-key-123" not in path.read_bytes() and API_KEY.encode() not in path.read_bytes()
    assert "wrong-key-123" not in caplog.text and API_KEY not in caplog.text


def test_key_fixed_upstream_resumes_on_probe(tmp_path, server, device):
    make_jobs(device, 5)
    admin(server, "PUT", "/_admin/settings", {"apiKeys": ["rotated"]})
    relay = Relay.from_config(device, device_config(tmp_path / "device", server.url, auth_probe_s=0.2))
    relay.run_once()
    assert relay.state == PAUSED_AUTH
    admin(server, "PUT", "/_admin/settings", {"apiKeys": [API_KEY]})
    time.sleep(0.25)
    relay.run_once()
    assert relay.counts.created == 5
    assert_exactly_once(server, [device])


def test_upstream_down_for_a_backlog_of_5000(tmp_path, device):
    make_jobs(device, 5000)
    port = free_port()
    cfg = device_config(
        tmp_path / "device", f"http://127.0.0.1:{port}", batch_max_items=1000, batch_max_bytes=4_000_000
    )
    relay = Relay.from_config(device, cfg)
    for _ in range(3):
        time.sleep(relay.run_once())
    assert relay.state == OFFLINE and relay.online is False
    assert outbox.unencoded_ids(device, 1) == []  # encoded ahead while backing off, keys unchanged
    status = sync_status(device, cfg)
    assert status["state"] == "offline" and "unreachable" in status["lastError"]
    assert status["backlog"]["pending"] == 5000
    server = start_server(tmp_path / "upstream.db", port=port)
    try:
        summary = sync_all(device, cfg, progress=False)
        assert (summary.sent, summary.pending) == (5000, 0)
        assert device.conn.execute("SELECT COUNT(*) FROM outbox WHERE payload IS NOT NULL").fetchone()[0] == 0
        assert_exactly_once(server, [device])
    finally:
        server.stop()


def test_two_agents_sync_at_the_same_time(tmp_path, server):
    stores = [Store(tmp_path / f"dev{i}" / "edgecv.db") for i in range(2)]
    for i, store in enumerate(stores):
        make_jobs(store, 300, prefix=f"cam{i}")
    add_faults(server, {"kind": "status", "status": 503, "count": 2})
    summaries = {}

    def run(i: int) -> None:
        cfg = device_config(tmp_path / f"dev{i}", server.url, batch_max_items=50)
        summaries[i] = sync_all(stores[i], cfg, progress=False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [summaries[i].pending for i in range(2)] == [0, 0]
    by_device = server.upstream.stats(TENANT)["byDevice"]
    assert sorted(by_device.values()) == [300, 300] and len(by_device) == 2
    assert_exactly_once(server, stores)
    for store in stores:
        store.close()


def test_413_splits_the_batch(tmp_path, server, device):
    make_jobs(device, 64)
    admin(server, "PUT", "/_admin/settings", {"maxBodyBytes": 12_000})
    summary = sync_all(device, device_config(tmp_path / "device", server.url), progress=False)
    assert (summary.sent, summary.pending) == (64, 0)
    assert requests_seen(server) > 1
    assert_exactly_once(server, [device])


def test_relay_run_forever_picks_up_new_results(tmp_path, server, device):
    relay = Relay.from_config(device, device_config(tmp_path / "device", server.url))
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        make_jobs(device, 7)
        deadline = time.monotonic() + 10
        while outbox.backlog(device).pending and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.report()["backlog"]["pending"] == 0
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert_exactly_once(server, [device])


def test_images_upload_by_content_hash_after_results(tmp_path, server, device):
    import cv2
    import numpy as np

    make_jobs(device, 3)
    spool = tmp_path / "device" / "spool"
    spool.mkdir(parents=True)
    for i in range(3):
        image = np.full((480, 640, 3), 40 * i, np.uint8)
        cv2.imwrite(str(spool / f"img-{i}.jpg"), image)
    summary = sync_all(
        device, device_config(tmp_path / "device", server.url, image_policy="thumbnail"), progress=False
    )
    assert summary.complete and summary.images_uploaded == 3
    rows = server.upstream.conn.execute("SELECT data FROM images").fetchall()
    assert len(rows) == 3
    thumb = cv2.imdecode(np.frombuffer(rows[0][0], np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == 320

    other = Store(tmp_path / "other" / "edgecv.db")  # same pictures on a second device: nothing re-sent
    make_jobs(other, 3)
    (tmp_path / "other" / "spool").mkdir(parents=True)
    for i in range(3):
        Path(tmp_path / "other" / "spool" / f"img-{i}.jpg").write_bytes((spool / f"img-{i}.jpg").read_bytes())
    cfg = device_config(tmp_path / "other", server.url, image_policy="thumbnail")
    relay = Relay.from_config(other, cfg)
    sync_all(other, cfg, progress=False, relay=relay)
    assert (relay.counts.images_uploaded, relay.counts.images_skipped) == (0, 3)
    other.close()

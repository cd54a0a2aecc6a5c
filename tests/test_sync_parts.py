"""Sync pieces without fault scripts: wire helpers, the reference upstream's read API, the CLI, the disk budget."""

from __future__ import annotations

import email.utils
import json
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.sync_server import API_KEY, TENANT, add_faults, device_config, free_port, make_jobs, start_server

from edgecv.cli import main
from edgecv.store import Store, outbox
from edgecv.upstream.budget import DiskBudget
from edgecv.upstream.summary import sync_all
from edgecv.upstream.wire import Encoded, parse_retry_after, split_by_bytes


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "upstream.db")
    yield srv
    srv.stop()


def test_batches_are_capped_by_count_and_bytes():
    items = [Encoded(n, f"k{n}", f"job_{n}", b"x" * 100) for n in range(10)]
    assert [len(b) for b in split_by_bytes(items, 4, 10_000)] == [4, 4, 2]
    assert [len(b) for b in split_by_bytes(items, 100, 320)] == [3, 3, 3, 1]
    assert [len(b) for b in split_by_bytes(items, 100, 50)] == [1] * 10  # an oversized item travels alone


def test_retry_after_seconds_and_http_date():
    now = time.time()
    assert parse_retry_after("7", now) == 7.0
    assert 9 <= parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now) <= 10
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def _get(url: str, key: str | None = API_KEY):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.process
def test_cloud_view_of_a_synced_job_is_the_device_json(tmp_path, server):
    store = Store(tmp_path / "device" / "edgecv.db")
    ids = make_jobs(store, 5)
    sync_all(store, device_config(tmp_path / "device", server.url), progress=False)
    base = f"{server.url}/v1/tenants/{TENANT}/cv/jobs"
    assert _get(f"{base}/{ids[2]}") == store.get_job(ids[2]).to_dict()
    page = _get(f"{base}?limit=3")
    assert [j["id"] for j in page["data"]] == ids[::-1][:3]
    rest = _get(f"{base}?limit=3&cursor={page['nextCursor']}")
    assert [j["id"] for j in rest["data"]] == ids[::-1][3:] and rest["nextCursor"] is None
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{base}/{ids[0]}", key=None)
    assert err.value.code == 401
    store.close()


def _cli(tmp_path, url: str, *args: str):
    env = {
        "EDGECV_SYNC_URL": url,
        "EDGECV_SYNC_API_KEY": API_KEY,
        "EDGECV_TENANT_ID": TENANT,
        "EDGECV_SYNC_BACKOFF_BASE_S": "0.01",
        "EDGECV_SYNC_BACKOFF_MAX_S": "0.02",
        "EDGECV_SYNC_TIMEOUT_S": "1",
    }
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path / "device"), "sync", *args], env=env)


@pytest.mark.process
def test_cli_sync_prints_summary_and_status(tmp_path, server):
    store = Store(tmp_path / "device" / "edgecv.db")
    make_jobs(store, 12, bad={3})
    result = _cli(tmp_path, server.url)
    assert result.exit_code == 0, result.output
    assert "sent 11, duplicate 0, rejected 1, still pending 0" in result.output
    status = _cli(tmp_path, server.url, "--status")
    assert status.exit_code == 0
    assert "0 pending, 1 parked, 11 sent" in status.output and "invalid_result" in status.output
    assert json.loads(_cli(tmp_path, server.url, "--status", "--json").output)["backlog"]["sent"] == 11
    again = _cli(tmp_path, server.url, "--retry-parked")  # the item is still invalid: parked once more
    assert "1 parked result(s) queued again" in again.output
    assert "sent 0, duplicate 0, rejected 1, still pending 0" in again.output
    store.close()


def test_cli_sync_exits_non_zero_when_results_stay_pending(tmp_path):
    store = Store(tmp_path / "device" / "edgecv.db")
    make_jobs(store, 3)
    result = _cli(tmp_path, f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert result.exit_code == 1
    assert "still pending 3" in result.output and "upstream unreachable" in result.output
    status = _cli(tmp_path, "http://127.0.0.1:1", "--status")
    assert "relay state:   offline" in status.output and "3 pending" in status.output
    store.close()


def test_cli_sync_without_url_says_how_to_fix(tmp_path):
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "sync"], env={"EDGECV_SYNC_URL": ""})
    assert result.exit_code == 1
    assert "sync.url is not set; set [sync] url in edgecv.toml or EDGECV_SYNC_URL" in result.output


def test_sync_command_has_help():
    result = CliRunner().invoke(main, ["sync", "--help"])
    assert result.exit_code == 0 and "--status" in result.output and "Exits 1" in result.output


def _spool_images(data_dir, n: int, prefix: str = "img") -> None:
    spool = data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(spool / f"{prefix}-{i}.png"), rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))


@pytest.mark.process
def test_disk_budget_drops_synced_then_downscales_then_refuses(tmp_path, server):
    data_dir = tmp_path / "device"
    store = Store(data_dir / "edgecv.db")
    make_jobs(store, 6)
    store.conn.execute("UPDATE observations SET spool_path = replace(spool_path, '.jpg', '.png')")
    _spool_images(data_dir, 6)
    relay_cfg = device_config(data_dir, server.url, batch_max_items=3)
    from edgecv.upstream.relay import Relay

    add_faults(server, {"kind": "delay", "seconds": 0}, {"kind": "status", "status": 503, "count": -1})
    Relay.from_config(store, relay_cfg).run_once()  # 3 of 6 synced, then the upstream fails
    image_bytes = (data_dir / "spool" / "img-0.png").stat().st_size
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("edgecv.db*"))
    budget = DiskBudget(store, data_dir, data_dir / "spool", db_bytes + int(image_bytes * 3.5))
    assert budget.enforce() is None
    assert sorted(p.name for p in (data_dir / "spool").iterdir()) == [f"img-{i}.png" for i in (3, 4, 5)]
    assert outbox.backlog(store).pending == 3  # unsynced results untouched

    budget.budget_bytes = db_bytes + int(image_bytes * 1.5)
    assert budget.enforce() is None
    assert all((data_dir / "spool" / f"img-{i}.png").stat().st_size < image_bytes for i in (3, 4, 5))
    assert outbox.retention_counts(store) == {"pruned": 3, "downscaled": 3}

    budget.budget_bytes = db_bytes + 1000
    ok, reason = budget.may_accept_image(50_000)
    assert not ok and "disk budget reached" in reason and "new images are refused" in reason
    assert outbox.backlog(store).pending == 3

    budget.budget_bytes = 10 * 2**30
    assert budget.may_accept_image(50_000) == (True, None)
    store.close()


def _request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


@pytest.mark.process
def test_reference_server_refuses_what_its_contract_refuses(server):
    base = f"{server.url}/v1/tenants/{TENANT}"
    for query in ("status=queued", "status=", "limit=0", "limit=1001", "limit=x"):
        status, _, body = _request(f"{base}/cv/jobs?{query}")
        assert (status, body["error"]["code"]) == (400, "invalid_query"), query
    status, headers, body = _request(f"{base}/sync/results", method="QUERY")
    assert (status, headers["Allow"], body["error"]["code"]) == (405, "POST", "method_not_allowed")
    status, headers, _ = _request(f"{base}/sync/images/{'0' * 64}", method="OPTIONS")
    assert (status, headers["Allow"]) == (405, "HEAD, PUT")
    for items in ([{"deviceId": "d"}], [{"idempotencyKey": ""}], [3]):
        status, _, body = _request(f"{base}/sync/results", "POST", json.dumps({"items": items}).encode())
        assert (status, body["error"]["code"]) == (400, "invalid_batch"), items

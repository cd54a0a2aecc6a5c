"""The dashboard's server side over real HTTP on loopback: who may open it (token, session cookie, Host and
Origin), the Content-Security-Policy, the pages' answers to bad input, and the job-log reads behind them
(time windows over ids, finished jobs per minute, last failures, the quarantine list)."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from helpers.agent import wait_until
from helpers.api import finish, live_api, queued_job

from edgecv.api.auth import SESSION_COOKIE, session_value
from edgecv.ids import first_id_at, time_of
from edgecv.ingest import ingest_file, quarantined
from edgecv.status import activity
from edgecv.store.counts import finished_by_minute

TOKEN = "dashboard-test-token-0123456789"
PAGES = ("/", "/jobs", "/quarantine", "/models", "/catalog")


@pytest.fixture
def jobs(store, config):
    made = [queued_job(store, config, i) for i in range(4)]
    done = [finish(store, made[0]), finish(store, made[1], fail=True)]
    return made, done


@pytest.mark.process
def test_pages_open_on_loopback_without_a_token_under_a_strict_csp(config, store, jobs):
    made, _ = jobs
    with live_api(config, store) as server:
        base = f"http://127.0.0.1:{server.port}"
        for path in (*PAGES, f"/jobs/{made[0].id}"):
            resp = requests.get(base + path, timeout=10)
            assert resp.status_code == 200, (path, resp.text[:300])
            assert resp.headers["content-type"].startswith("text/html")
            csp = resp.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
            assert resp.headers["x-content-type-options"] == "nosniff"
            # nothing on the page points off the device, and no inline script or style
            assert re.findall(r'(?:src|href|action)="(?!/)[^"]*"', resp.text) == [], path
            assert "<script>" not in resp.text and "style=" not in resp.text
        live = requests.get(base + "/live.json", timeout=10).json()
        assert live["values"]["jobs.completed"] == "1" and live["values"]["jobs.failed"] == "1"
        assert live["values"]["queue.depth"] == "2"
        assert len(live["perMinute"]) == 60
        js = requests.get(base + "/static/dashboard.js", timeout=10)
        assert js.status_code == 200 and "drawBoxes" in js.text
        assert requests.get(base + "/static/app.py", timeout=10).status_code == 404
        assert requests.get(base + "/static/..%2Fapp.py", timeout=10).status_code == 404


@pytest.mark.process
def test_the_host_and_origin_guard_covers_the_dashboard(config, store, jobs):
    with live_api(config, store) as server:
        base = f"http://127.0.0.1:{server.port}"
        rebound = requests.get(base + "/", headers={"Host": "attacker.example"}, timeout=10)
        assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "host_not_allowed"
        cross = requests.get(base + "/live.json", headers={"Origin": "http://attacker.example"}, timeout=10)
        assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_site_request"


@pytest.mark.process
def test_with_a_token_the_pages_need_it_or_the_session_cookie(config, store, jobs):
    made, _ = jobs
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, token=TOKEN))
    with live_api(config, store) as server:
        base = f"http://127.0.0.1:{server.port}"
        for path in PAGES:
            resp = requests.get(base + path + "?status=failed", allow_redirects=False, timeout=10)
            assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=%2F"), path
        for path in ("/live.json", f"/jobs/{made[0].id}/image", f"/jobs/{made[0].id}/thumb"):
            assert requests.get(base + path, timeout=10).status_code == 401, path
        form = requests.get(base + "/login?next=/jobs", timeout=10)
        assert form.status_code == 200 and 'name="token"' in form.text

        wrong = requests.post(
            base + "/login", data={"token": "guess", "next": "/jobs"}, allow_redirects=False, timeout=10
        )
        assert (
            wrong.status_code == 401
            and "not this agent" in wrong.text
            and SESSION_COOKIE not in wrong.cookies
        )

        ok = requests.post(
            base + "/login", data={"token": TOKEN, "next": "/jobs"}, allow_redirects=False, timeout=10
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/jobs"
        cookie = ok.cookies[SESSION_COOKIE]
        assert cookie == session_value(TOKEN) and TOKEN not in ok.headers["set-cookie"]
        assert (
            "httponly" in ok.headers["set-cookie"].lower()
            and "samesite=strict" in ok.headers["set-cookie"].lower()
        )

        with_cookie = {SESSION_COOKIE: cookie}
        assert requests.get(base + "/", cookies=with_cookie, timeout=10).status_code == 200
        assert (
            requests.get(base + f"/jobs/{made[0].id}/image", cookies=with_cookie, timeout=10).status_code
            == 200
        )
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(base + "/live.json", headers=bearer, timeout=10).status_code == 200
        stale = {SESSION_COOKIE: session_value("another-token-0123456789")}
        assert requests.get(base + "/", cookies=stale, allow_redirects=False, timeout=10).status_code == 303
        # the API itself still takes only the bearer token: the cookie opens the pages, not the API
        api = f"{base}/v1/tenants/{config.tenant_id}/cv/jobs"
        assert requests.get(api, cookies=with_cookie, timeout=10).status_code == 401

        away = requests.post(
            base + "/login",
            data={"token": TOKEN, "next": "//attacker.example/"},
            allow_redirects=False,
            timeout=10,
        )
        assert away.headers["location"] == "/"


@pytest.mark.process
def test_pages_answer_bad_input_with_a_message(config, store, jobs):
    with live_api(config, store) as server:
        base = f"http://127.0.0.1:{server.port}"
        missing = requests.get(base + "/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV", timeout=10)
        assert missing.status_code == 404 and "There is no job" in missing.text
        assert requests.get(base + "/jobs?status=done", timeout=10).status_code == 422
        bad_date = requests.get(base + "/jobs?date=yesterday", timeout=10)
        assert bad_date.status_code == 422 and "YYYY-MM-DD" in bad_date.text
        assert requests.get(base + "/jobs?cursor=nonsense", timeout=10).status_code == 422
        assert requests.get(base + "/catalog/sku/../../edgecv.db", timeout=10).status_code == 404


def test_list_jobs_after_and_cursor_bound_a_time_window(store, config):
    made = [queued_job(store, config, i) for i in range(5)]
    ids = [j.id for j in made]
    inside, _ = store.list_jobs(after=ids[0], cursor=ids[4])
    assert [j.id for j in inside] == ids[3:0:-1]
    page, cursor = store.list_jobs(after=ids[0], limit=2)
    assert [j.id for j in page] == [ids[4], ids[3]] and cursor == ids[3]
    t = time_of(ids[2])
    assert first_id_at("job", t) <= ids[2] < first_id_at("job", t + 1)


def test_activity_counts_finished_jobs_per_minute_and_lists_failures(store, config):
    made = [queued_job(store, config, i) for i in range(5)]
    finish(store, made[0])
    finish(store, made[1])
    failed = finish(store, made[2], fail=True)
    now = datetime.now(timezone.utc)
    assert sum(n for _, _, n in finished_by_minute(store, (now - timedelta(hours=1)).isoformat())) == 3
    doc = activity(store, now=now + timedelta(seconds=1))
    assert (doc["completed"], doc["failed"]) == (2, 1)
    assert len(doc["perMinute"]) == 60 and doc["perMinute"][-1]["minute"] == (
        now + timedelta(seconds=1)
    ).strftime("%Y-%m-%dT%H:%M")
    assert [e["id"] for e in doc["lastErrors"]] == [failed.id]
    assert doc["lastErrors"][0]["error"]["code"] == "image_unreadable"
    later = activity(store, now=now + timedelta(hours=2))
    assert (later["completed"], later["failed"]) == (0, 0) and later["lastErrors"][0]["id"] == failed.id


def test_quarantined_lists_reasons_newest_first(store, config, inbox):
    for name in ("a.jpg", "b.jpg"):
        (inbox / name).write_text("not an image")
        assert ingest_file(store, config, inbox / name, inbox) is None
    entries, total = quarantined(config)
    assert total == 2 and {e["code"] for e in entries} == {"not_an_image"}
    assert sorted(e["file"].rsplit("/", 1)[-1] for e in entries) == ["a.jpg", "b.jpg"]
    assert all(
        e["sizeBytes"] == len("not an image") and e["reason"].startswith("not an image") for e in entries
    )
    assert [e["name"] for e in entries] == sorted((e["name"] for e in entries), reverse=True)
    assert len(quarantined(config, limit=1)[0]) == 1


def test_the_finished_index_exists(store):
    names = {row[1] for row in store.conn.execute("PRAGMA index_list(jobs)")}
    assert "jobs_by_finish" in names


@pytest.mark.process
def test_edgecv_serve_serves_the_dashboard(tmp_path):
    import os
    import subprocess
    import sys

    from helpers.sync_server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECV_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecv", "--data-dir", str(tmp_path / "data"), "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        for line in proc.stderr:
            if "edgecv API for tenant" in line:
                break
        assert f"http://127.0.0.1:{port} (dashboard at /)" in line, line
        page = wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/"), timeout=60
        )  # listens once the line is out
        assert page.status_code == 200 and "<h1>Status</h1>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=30)
    except requests.ConnectionError:
        return None


def test_thumbnails_for_remote_clients_go_through_the_privacy_filter(config, store):
    """A browser on another machine gets thumbnails with faces blurred (``[privacy] faces``), this machine
    the plain downscaled image, like the API's image route."""
    import asyncio
    from pathlib import Path

    import cv2
    import numpy as np
    from starlette.requests import Request

    from edgecv.api.dashboard import THUMB_PX, job_thumb
    from edgecv.ingest import ingest_bytes

    photo = (Path(__file__).parent / "fixtures" / "astronaut.jpg").read_bytes()  # 512x512, one face
    job = ingest_bytes(store, config, photo, name="aisle.jpg", model="rect").job
    with live_api(config, store) as server:

        def thumb(client: str) -> np.ndarray:
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/",
                "headers": [],
                "client": (client, 50123),
                "app": server.app,
            }
            response = asyncio.run(job_thumb(Request(scope), job.id))
            assert response.status_code == 200 and response.media_type == "image/jpeg"
            return cv2.imdecode(np.frombuffer(response.body, np.uint8), cv2.IMREAD_COLOR)

        local, remote = thumb("127.0.0.1"), thumb("192.0.2.10")
    assert local.shape == remote.shape == (THUMB_PX, THUMB_PX, 3)
    s = THUMB_PX / 512
    x1, y1, x2, y2 = (round(v * s) for v in (180, 62, 268, 175))  # the face, as in test_privacy_faces

    def sharpness(image: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    assert sharpness(remote) < sharpness(local) / 3, (sharpness(remote), sharpness(local))


def test_facing_runs_split_consecutive_packs_by_their_facings():
    from edgecv.api.pages import facing_runs

    def det(name, position, facings, price=None):
        return {"objectName": name, "attributes": {"shelfPosition": position, "facings": facings, "priceTag": price}}

    detections = [
        det("Cola", "top", 2, "0.89"), det("Cola", "top", 2, "0.89"),  # one run of two
        det("Cola", "top", 1, "0.95"),  # the same product again after the run: a run of its own
        det("Cola", "bottom", 1),  # another row
        det("Milk", "bottom", 3, "1.19"), det("Milk", "bottom", 3, "1.19"), det("Milk", "bottom", 3, "1.19"),
    ]  # fmt: skip
    runs = facing_runs(detections)
    assert [(r["name"], r["position"], r["facings"], r["price"], r["packs"]) for r in runs] == [
        ("Cola", "top", 2, "0.89", 2),
        ("Cola", "top", 1, "0.95", 1),
        ("Cola", "bottom", 1, None, 1),
        ("Milk", "bottom", 3, "1.19", 3),
    ]

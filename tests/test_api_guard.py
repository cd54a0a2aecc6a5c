"""The local API against web pages, over real loopback HTTP: DNS rebinding (a foreign Host), cross-site
requests (Origin, Sec-Fetch-Site), no CORS, and the token in front of the OpenAPI document."""

from __future__ import annotations

import dataclasses

import pytest
import requests
from helpers.api import live_api, queued_job
from helpers.images import distinct_jpeg

pytestmark = pytest.mark.process

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def api(config, store):
    with live_api(config, store) as server:
        yield server


def get(api, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{api.url}{path}", headers=headers, timeout=5)


def assert_no_cors(resp: requests.Response) -> None:
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers


def assert_refused(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]
    assert "job_" not in resp.text
    assert_no_cors(resp)


JOBS = "/v1/tenants/local/cv/jobs"


def test_a_foreign_host_gets_no_job_data(api, store, config):
    queued_job(store, config, 1)
    for host in (
        "evil.example",
        "evil.example:8470",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "x@localhost",
    ):
        resp = get(api, JOBS, Host=host)
        assert_refused(resp, 400, "host_not_allowed")
        assert "api.allowed_hosts" in resp.json()["error"]["message"]
    port = api.port
    for host in (
        "127.0.0.1",
        f"127.0.0.1:{port}",
        "localhost",
        f"LOCALHOST:{port}",
        "[::1]",
        f"[::1]:{port}",
    ):
        resp = get(api, JOBS, Host=host)
        assert resp.status_code == 200, host
        assert len(resp.json()["data"]) == 1
    assert get(api, "/healthz", Host="10.0.0.7:8470").status_code == 200  # probes carry no data
    assert_refused(get(api, "/openapi.json", Host="evil.example"), 400, "host_not_allowed")


def test_allowed_hosts_adds_names(config, store):
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, allowed_hosts=["edge-12.local"]))
    with live_api(config, store) as api:
        assert get(api, JOBS, Host="edge-12.local:8470").status_code == 200
        assert get(api, JOBS, Host="edge-12.local", Origin="http://edge-12.local:3000").status_code == 200
        assert_refused(get(api, JOBS, Host="edge-13.local"), 400, "host_not_allowed")


def test_cross_site_browser_requests_are_refused_for_every_method(api, store):
    evil = {"Origin": "http://evil.example"}
    resp = requests.post(
        f"{api.url}/v1/tenants/local/observations",
        files={"file": ("a.jpg", distinct_jpeg(2), "image/jpeg")},
        headers=evil,
        timeout=5,
    )
    assert_refused(resp, 403, "cross_site_request")
    assert store.observation_hashes() == set()  # nothing was stored
    for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"):
        resp = requests.request(method, f"{api.url}{JOBS}", headers=evil, timeout=5)
        assert resp.status_code == 403, method
        assert_no_cors(resp)
    preflight = requests.options(
        f"{api.url}{JOBS}",
        headers={
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert_refused(preflight, 403, "cross_site_request")
    assert_refused(get(api, JOBS, Origin="null"), 403, "cross_site_request")
    assert_refused(get(api, JOBS, **{"Sec-Fetch-Site": "cross-site"}), 403, "cross_site_request")
    assert_refused(get(api, JOBS, Origin="http://localhost.evil.example"), 403, "cross_site_request")


def test_same_site_pages_and_programs_still_work_without_cors(api):
    for headers in (
        {},
        {"Origin": f"http://127.0.0.1:{api.port}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
    ):
        resp = get(api, JOBS, **headers)
        assert resp.status_code == 200, headers
        assert_no_cors(resp)


def test_with_a_token_openapi_needs_it_and_token_clients_may_use_any_host(config, store):
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with live_api(config, store) as api:
        resp = get(api, "/openapi.json")
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        assert "/v1/tenants/{tenantId}/cv/jobs" in get(api, "/openapi.json", **auth).json()["paths"]
        # a LAN client names the device by its address; a web page cannot know the token
        assert get(api, JOBS, Host="192.168.1.20:8470", **auth).status_code == 200
        assert_refused(get(api, JOBS, Host="192.168.1.20:8470"), 400, "host_not_allowed")
        assert_refused(
            get(api, JOBS, Host="192.168.1.20", Authorization="Bearer nope"), 400, "host_not_allowed"
        )
        assert_refused(get(api, JOBS, Origin="http://evil.example", **auth), 403, "cross_site_request")

"""The local API over real loopback HTTP: jobs, observations, models, health, metrics, auth, limits."""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest
import requests
from helpers.api import finish, live_api, queued_job
from helpers.images import distinct_jpeg, jpeg_bytes

from edgecv.api import Metrics, make_server
from edgecv.errors import ConfigError

pytestmark = pytest.mark.process


@pytest.fixture
def api(config, store):
    with live_api(config, store) as server:
        yield server


def url(api, path: str, tenant: str = "local") -> str:
    return f"{api.url}/v1/tenants/{tenant}{path}"


def upload(api, data: bytes, *, name="shelf.jpg", ctype="image/jpeg", **fields):
    return requests.post(
        url(api, "/observations"), files={"file": (name, data, ctype)}, data=fields, timeout=10
    )


def test_health_ready_and_openapi(api):
    assert requests.get(f"{api.url}/healthz", timeout=5).json()["status"] == "ok"
    ready = requests.get(f"{api.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] == "ok"
    doc = requests.get(f"{api.url}/openapi.json", timeout=5).json()
    assert "/v1/tenants/{tenantId}/cv/jobs" in doc["paths"]
    assert "/v1/tenants/{tenantId}/observations" in doc["paths"]


def test_upload_observation_then_get_it_and_its_image(api):
    data = jpeg_bytes()
    resp = upload(api, data, metadata='{"store": "S12"}')
    assert resp.status_code == 201, resp.text
    obs = resp.json()
    assert obs["id"].startswith("obs_") and obs["job"] is None
    assert (obs["width"], obs["height"], obs["metadata"]) == (320, 240, {"store": "S12"})
    got = requests.get(url(api, f"/observations/{obs['id']}"), timeout=5).json()
    assert got["id"] == obs["id"] and got["jobs"] == []
    image = requests.get(url(api, f"/observations/{obs['id']}/image"), timeout=5)
    assert image.status_code == 200 and image.content == data
    assert image.headers["content-type"] == "image/jpeg"
    again = upload(api, data, name="copy.jpg")
    assert again.json()["id"] == obs["id"]


def test_upload_with_model_queues_a_job(api):
    resp = upload(api, distinct_jpeg(1), model="rect")
    assert resp.status_code == 201
    job = resp.json()["job"]
    assert job["status"] == "queued" and job["model"] == "rect"


def test_upload_file_name_never_becomes_a_path(api, config):
    resp = upload(api, distinct_jpeg(2), name="../../etc/passwd\x00.jpg")
    assert resp.status_code == 201
    assert resp.json()["originalName"] == "passwd.jpg"
    assert not (config.data_dir.parent / "etc").exists()


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": b"not an image at all", "ctype": "image/jpeg"}, 422, "not_an_image"),
        ({"data": jpeg_bytes(), "ctype": "text/html"}, 415, "unsupported_media_type"),
        ({"data": jpeg_bytes(), "metadata": "[1, 2]"}, 422, "invalid_metadata"),
        ({"data": jpeg_bytes(), "metadata": "{nope"}, 422, "invalid_metadata"),
        ({"data": jpeg_bytes(), "model": "nope-v9"}, 422, "model_not_found"),
        ({"data": jpeg_bytes(), "model": "m" * 70_000}, 422, "invalid_request"),
    ],
)
def test_bad_uploads_get_a_4xx_with_a_reason(api, kwargs, status, code):
    data = kwargs.pop("data")
    resp = upload(api, data, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert resp.json()["error"]["message"]


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def test_metadata_limits_are_422_invalid_metadata_with_the_limit(api, store):
    resp = upload(api, distinct_jpeg(50), metadata=nested(5000))  # ~30 KB: under the size limit
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_metadata"
    assert "5000 levels deep; at most 32" in resp.json()["error"]["message"]
    resp = upload(api, distinct_jpeg(50), metadata='{"s": "[[[[' + "[" * 100 + '"}')  # brackets in a string
    assert resp.status_code == 201, resp.text
    assert upload(api, distinct_jpeg(51), metadata=nested(33)).status_code == 422
    assert upload(api, distinct_jpeg(51), metadata=nested(32)).json()["metadata"]["a"]["a"]

    exactly = json.dumps({"x": ""}, separators=(",", ":"))
    exactly = exactly.replace('""', '"' + "y" * (64 * 1024 - len(exactly)) + '"')
    assert upload(api, distinct_jpeg(52), metadata=exactly).status_code == 201
    for size in (64 * 1024 + 1, 300 * 1024):
        over = exactly.replace('"y', '"' + "y" * (size - len(exactly)) + "y")
        resp = upload(api, distinct_jpeg(53), metadata=over)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["code"] == "invalid_metadata"
        assert "at most 65536 (64 KB)" in resp.json()["error"]["message"]
    assert len(store.observation_hashes()) == 3  # the refused uploads stored nothing


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cv/jobs", {"observationId": "obs_x", "model": "rect"}),
        ("/webhooks", {"url": "http://127.0.0.1:9/h"}),
    ],
)
def test_json_bodies_in_another_content_type_say_which_one_is_expected(api, path, body):
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": ctype} if ctype else {}
        resp = requests.post(url(api, path), data=json.dumps(body).encode(), headers=headers, timeout=5)
        assert resp.status_code == 415, (ctype, resp.text)
        assert resp.json()["error"]["code"] == "unsupported_media_type"
        assert "Content-Type: application/json" in resp.json()["error"]["message"]
        assert repr(ctype or "no content type") in resp.json()["error"]["message"]


def raw_request(api, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes no HTTP client library would send; return the answer's head and body."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def test_raw_non_ascii_bytes_in_the_path_get_the_json_error_shape(api):
    head, body = raw_request(
        api, b"GET /v1/tenants/local/cv/jobs/\xc3\xa9\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "%C3%A9" in error["message"]
    head, body = raw_request(
        api, b"GET /v1/tenants/local/cv/jobs/%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 404 ") and json.loads(body)["error"]["code"] == "job_not_found"


def test_upload_needs_multipart(api):
    resp = requests.post(
        url(api, "/observations"), data=jpeg_bytes(), headers={"content-type": "image/jpeg"}, timeout=5
    )
    assert resp.status_code == 415
    assert "multipart/form-data" in resp.json()["error"]["message"]
    resp = requests.post(
        url(api, "/observations"), data={"metadata": "{}"}, files={"x": ("a", b"1")}, timeout=5
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "file_missing"


def test_upload_over_the_size_limit_is_413(config, store):
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, max_upload_mb=1))
    with live_api(config, store) as api:
        big = b"\xff\xd8\xff" + b"\0" * (1024 * 1024 + 10)
        resp = upload(api, big)
        assert resp.status_code == 413
        assert "max_upload_mb" in resp.json()["error"]["message"]

        def chunks():  # no content-length: the guard counts the streamed body
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
            for _ in range(20):
                yield b"\0" * 100_000

        resp = requests.post(
            url(api, "/observations"),
            data=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
            timeout=10,
        )
        assert resp.status_code == 413


def test_start_job_and_get_it(api):
    obs = upload(api, distinct_jpeg(3)).json()
    resp = requests.post(url(api, "/cv/jobs"), json={"observationId": obs["id"], "model": "rect"}, timeout=5)
    assert resp.status_code == 201
    job = resp.json()
    assert job["status"] == "queued" and job["observationId"] == obs["id"] and job["id"].startswith("job_")
    again = requests.post(url(api, "/cv/jobs"), json={"observationId": obs["id"], "model": "rect"}, timeout=5)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    got = requests.get(url(api, f"/cv/jobs/{job['id']}"), timeout=5).json()
    assert got == job


def test_start_job_errors_say_what_exists(api):
    obs = upload(api, distinct_jpeg(4)).json()
    resp = requests.post(
        url(api, "/cv/jobs"), json={"observationId": obs["id"], "model": "shelf-x"}, timeout=5
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "model_not_found"
    installed = resp.json()["error"]["message"].split("installed:", 1)[1]
    assert "rect" in installed  # lists what exists (the shipped models too)
    resp = requests.post(url(api, "/cv/jobs"), json={"observationId": "obs_nope", "model": "rect"}, timeout=5)
    assert resp.status_code == 404
    assert "POST …/observations" in resp.json()["error"]["message"]
    resp = requests.post(url(api, "/cv/jobs"), json={"observation": "x"}, timeout=5)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"
    resp = requests.post(
        url(api, "/cv/jobs"), data="{not json", headers={"content-type": "application/json"}, timeout=5
    )
    assert resp.status_code == 422


def test_completed_job_has_the_seed_shape(api, store, config):
    job = finish(store, queued_job(store, config, 5))
    got = requests.get(url(api, f"/cv/jobs/{job.id}"), timeout=5).json()
    assert got["status"] == "completed" and got["error"] is None
    assert got["result"]["detections"][0]["boundingBox"] == {"x": 100, "y": 60, "width": 80, "height": 80}
    failed = finish(store, queued_job(store, config, 6), fail=True)
    got = requests.get(url(api, f"/cv/jobs/{failed.id}"), timeout=5).json()
    assert got["status"] == "failed" and got["error"]["code"] == "image_unreadable"


def test_unknown_job_and_other_tenant_are_404(api, store, config):
    job = queued_job(store, config, 7)
    resp = requests.get(url(api, "/cv/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV"), timeout=5)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
    for path in (f"/cv/jobs/{job.id}", "/cv/jobs", "/cv/models", f"/observations/{job.observation_id}"):
        resp = requests.get(url(api, path, tenant="acme"), timeout=5)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "tenant_not_found"


def test_list_pages_are_stable_while_jobs_are_inserted(api, store, config):
    original = [queued_job(store, config, i) for i in range(10, 17)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = requests.get(url(api, "/cv/jobs"), params=params, timeout=5).json()
        seen += [j["id"] for j in page["data"]]
        pages += 1
        if pages == 1:
            queued_job(store, config, 40)  # newer than everything: must not shift later pages
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]
    assert seen == [j.id for j in reversed(original)]
    assert pages == 3


def test_list_filters_and_bad_parameters(api, store, config):
    done = finish(store, queued_job(store, config, 20))
    queued_job(store, config, 21)
    page = requests.get(url(api, "/cv/jobs"), params={"status": "completed"}, timeout=5).json()
    assert [j["id"] for j in page["data"]] == [done.id]
    page = requests.get(url(api, "/cv/jobs"), params={"model": "other"}, timeout=5).json()
    assert page == {"data": [], "nextCursor": None, "hasMore": False}
    for params in ({"status": "done"}, {"limit": 0}, {"limit": 1000}, {"cursor": "'; DROP TABLE jobs"}):
        resp = requests.get(url(api, "/cv/jobs"), params=params, timeout=5)
        assert resp.status_code == 422, params
        assert resp.json()["error"]["code"] == "invalid_request"


def test_models_lists_installed_packages(api):
    data = requests.get(url(api, "/cv/models"), timeout=5).json()["data"]
    by_name = {m["name"]: m for m in data}
    assert "rect" in by_name  # plus whatever models/ ships
    assert all({"name", "version", "description", "useCase"} <= set(m) for m in data)
    assert all("path" not in m for m in data)


def test_metrics_exposes_queue_jobs_latency_and_backlog(config, store):
    metrics = Metrics()
    with live_api(config, store, metrics=metrics) as api:
        queued_job(store, config, 30)
        finish(store, queued_job(store, config, 31))
        metrics.observe_inference(42.0, model="rect")
        text = requests.get(f"{api.url}/metrics", timeout=5).text
    assert 'edgecv_jobs{status="queued"} 1.0' in text
    assert 'edgecv_jobs{status="completed"} 1.0' in text
    assert "edgecv_queue_depth 1.0" in text
    assert "edgecv_sync_backlog 1.0" in text
    assert 'edgecv_inference_latency_seconds_count{model="rect"} 1.0' in text
    assert 'edgecv_inference_latency_seconds_bucket{le="0.05",model="rect"} 1.0' in text


def test_non_loopback_bind_needs_a_token(config, store):
    with pytest.raises(ConfigError, match="no api.token is set"):
        make_server(config, store, host="0.0.0.0", port=0)
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, token="t" * 24))
    make_server(config, store, host="0.0.0.0", port=0)  # accepted (not started)


def test_token_is_required_when_configured(config, store):
    token = "s3cret-token-0123456789"
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, token=token))
    with live_api(config, store) as api:
        resp = requests.get(url(api, "/cv/jobs"), timeout=5)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert (
            requests.get(
                url(api, "/cv/jobs"), headers={"authorization": "Bearer nope"}, timeout=5
            ).status_code
            == 401
        )
        assert requests.get(f"{api.url}/metrics", timeout=5).status_code == 401
        ok = requests.get(url(api, "/cv/jobs"), headers={"authorization": f"Bearer {token}"}, timeout=5)
        assert ok.status_code == 200
        assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200


def test_unknown_path_is_a_json_404(api):
    resp = requests.get(f"{api.url}/v2/nothing", timeout=5)
    assert resp.status_code == 404 and "openapi.json" in resp.json()["error"]["message"]


def test_port_in_use_is_a_clear_error(config, store, api):
    with pytest.raises(ConfigError, match="port in use"):
        make_server(config, store, port=api.port).start(timeout_s=5)


def test_405_allow_lists_every_method_of_the_path(api):
    for path, allowed in (
        ("/cv/jobs", "GET, POST"),
        ("/webhooks", "GET, POST"),
        ("/webhooks/wh_x", "GET, DELETE"),
    ):
        resp = requests.request("OPTIONS", url(api, path), timeout=5)
        assert resp.status_code == 405 and resp.headers["allow"] == allowed
        assert resp.json()["error"]["code"] == "method_not_allowed"
    assert requests.put(f"{api.url}/metrics", timeout=5).headers["allow"] == "GET"


def test_unknown_upload_field_and_bad_webhook_port_are_refused(api):
    resp = upload(api, jpeg_bytes(), metdata="{}")
    assert resp.status_code == 422 and "'metdata'" in resp.json()["error"]["message"]
    resp = requests.post(url(api, "/webhooks"), json={"url": "http://hooks.example.com:99999/h"}, timeout=5)
    assert resp.status_code == 422, resp.text

"""The SDK against the local agent API and against the reference tenant API in ``sync/``."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from helpers.api import RESULT, finish, live_api, queued_job
from helpers.images import distinct_jpeg, jpeg_bytes

from edgecv.client import ApiAuthError, ApiError, ApiNotFound, Client, Detection, Job, WaitTimeout
from sync.server import ReferenceServer, Settings, payload_hash

pytestmark = pytest.mark.process


@pytest.fixture
def api(config, store):
    with live_api(config, store) as server:
        yield server


@pytest.fixture
def tenant(api):
    with Client(api.url) as client:
        yield client.tenant("local")


def test_upload_start_and_wait_for_completion(tenant, store, tmp_path):
    path = tmp_path / "shelf.jpg"
    path.write_bytes(jpeg_bytes())
    obs = tenant.observations.create(path, metadata={"aisle": 4})
    assert obs.id.startswith("obs_") and obs.original_name == "shelf.jpg" and obs.metadata == {"aisle": 4}
    assert tenant.observations.image(obs.id) == path.read_bytes()
    job = tenant.cv.start(observation_id=obs.id, model="rect")
    assert isinstance(job, Job) and job.status == "queued" and job.observation_id == obs.id

    def worker():
        time.sleep(0.3)
        finish(store, store.get_job(job.id))

    thread = threading.Thread(target=worker)
    thread.start()
    done = tenant.cv.wait_for_completion(job.id, timeout=10, initial_delay=0.05)
    thread.join()
    assert done.status == "completed" and done.error is None
    assert done.result.detections == [Detection.from_dict(RESULT["detections"][0])]
    assert done.result.detections[0].bounding_box.width == 80
    assert done.result.summary == {"totalProducts": 1}


def test_create_from_bytes_with_model_queues_a_job(tenant):
    obs = tenant.observations.create(distinct_jpeg(1), model="rect", filename="cam1.jpg")
    assert obs.job is not None and obs.job.status == "queued" and obs.job.model == "rect"
    assert tenant.observations.get(obs.id).id == obs.id


def test_wait_for_completion_times_out_and_returns_failed_jobs(tenant, store, config):
    job = queued_job(store, config, 2)
    with pytest.raises(WaitTimeout, match="still queued"):
        tenant.cv.wait_for_completion(job.id, timeout=0.3, initial_delay=0.05)
    finish(store, job, fail=True)
    failed = tenant.cv.wait_for_completion(job.id, timeout=5)
    assert failed.status == "failed" and failed.error.code == "image_unreadable"


def test_list_iterates_over_pages_with_filters(tenant, store, config):
    jobs = [queued_job(store, config, i) for i in range(10, 15)]
    finish(store, jobs[1])
    assert [j.id for j in tenant.cv.list(page_size=2)] == [j.id for j in reversed(jobs)]
    assert [j.id for j in tenant.cv.list(status="completed")] == [jobs[1].id]
    page = tenant.cv.list_page(limit=2)
    assert len(page.jobs) == 2 and page.next_cursor == page.jobs[-1].id


def test_errors_are_typed_with_the_servers_message(tenant, api):
    with pytest.raises(ApiNotFound, match="does not exist") as err:
        tenant.cv.get("job_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert err.value.status == 404 and err.value.code == "job_not_found"
    with pytest.raises(ApiError, match=r"installed: .*\brect\b") as err:
        tenant.cv.start(observation_id="obs_x", model="nope")
    assert err.value.status == 422 and err.value.code == "model_not_found"
    with pytest.raises(ApiNotFound):
        Client(api.url).tenant("acme").cv.get("job_x")
    with pytest.raises(ApiError, match="failed") as err:
        Client("http://127.0.0.1:9", timeout=2).tenant("local").cv.get("job_x")
    assert err.value.code == "connection_error"


def test_api_key_is_sent_as_bearer_token(config, store):
    token = "client-token-0123456789"
    config = dataclasses.replace(config, api=dataclasses.replace(config.api, token=token))
    with live_api(config, store) as api:
        with pytest.raises(ApiAuthError) as err:
            list(Client(api.url).tenant("local").cv.list())
        assert err.value.status == 401
        assert list(Client(api.url, token).tenant("local").cv.list()) == []


# -- the same client against the reference tenant API ---------------------------------------------------


def _synced_item(i: int, status: str = "completed", model: str = "shelf-detection-v2") -> dict:
    job_id = f"job_01JD{i:022d}"
    job = {
        "id": job_id,
        "status": status,
        "model": model,
        "observationId": f"obs_{i}",
        "createdAt": "2026-11-28T15:08:00.000Z",
        "startedAt": "2026-11-28T15:08:01.000Z",
        "completedAt": "2026-11-28T15:08:02.000Z",
        "error": {"code": "image_unreadable", "message": "bad"} if status == "failed" else None,
        "result": RESULT if status == "completed" else None,
    }
    item = {
        "idempotencyKey": f"{job_id}:v1",
        "deviceId": "dev_1",
        "job": job,
        "observation": {"id": f"obs_{i}"},
    }
    item["payloadHash"] = payload_hash(item)
    return item


@pytest.fixture
def cloud():
    with ReferenceServer(settings=Settings(api_keys={"cloud-key"})) as server:
        items = [_synced_item(i) for i in range(1, 6)] + [_synced_item(9, status="failed")]
        replies = server.upstream.ingest("acme", items, strict=True)
        assert {r["status"] for r in replies} == {"created"}
        yield server


def test_get_and_list_against_the_reference_tenant_api(cloud):
    tenant = Client(cloud.url, "cloud-key").tenant("acme")
    job = tenant.cv.get("job_01JD0000000000000000000003")
    assert job.status == "completed" and job.result.detections[0].object_name == "red-box"
    assert tenant.cv.wait_for_completion(job.id, timeout=1).completed_at == job.completed_at
    ids = [j.id for j in tenant.cv.list(page_size=2)]
    assert ids == [f"job_01JD{i:022d}" for i in (9, 5, 4, 3, 2, 1)]
    failed = list(tenant.cv.list(status="failed"))
    assert [j.error.code for j in failed] == ["image_unreadable"]
    with pytest.raises(ApiNotFound):
        tenant.cv.get("job_01JD9999999999999999999999")
    with pytest.raises(ApiAuthError):
        Client(cloud.url, "wrong").tenant("acme").cv.get("job_01JD0000000000000000000003")

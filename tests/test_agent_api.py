"""The agent with its local API: an app uploads through the SDK and the agent's workers run the job."""

from __future__ import annotations

import pytest
from helpers.agent import AgentThread, wait_until
from helpers.images import distinct_jpeg

from edgecv.client import Client

pytestmark = pytest.mark.process


def test_upload_through_the_sdk_is_processed_by_the_running_agent(config, inbox):
    config.api.enabled = True
    config.api.port = 0
    with AgentThread(config) as running:
        url = running.agent.services[0].url
        tenant = Client(url).tenant(config.tenant_id)
        observation = tenant.observations.create(distinct_jpeg(40), filename="upload.jpg", model="rect")
        job = tenant.cv.wait_for_completion(observation.job.id, timeout=30, initial_delay=0.05)
        assert job.status == "completed"
        assert job.result.detections[0].object_name == "red-thing"
        again = tenant.cv.start(observation_id=observation.id, model="rect")
        assert again.id == job.id  # same observation and model: the existing job
        (inbox / "dropped.jpg").write_bytes(distinct_jpeg(41))
        wait_until(lambda: len(running.done_jobs()) == 2)
        listed = list(tenant.cv.list())
        assert {j.id for j in listed} == {j.id for j in running.done_jobs()}
        metrics = __import__("requests").get(f"{url}/metrics", timeout=10).text
        assert "edgecv_inference_latency_seconds_count" in metrics

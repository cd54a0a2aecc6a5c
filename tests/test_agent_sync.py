"""The agent with its relay: a dropped image ends up in the tenant API, the same JSON as on the device."""

from __future__ import annotations

import pytest
from helpers.agent import AgentThread, wait_until
from helpers.images import distinct_jpeg
from helpers.sync_server import API_KEY, TENANT, start_server

from edgecv.client import Client

pytestmark = pytest.mark.process


def test_results_reach_the_reference_upstream_exactly_once(config, inbox, tmp_path):
    server = start_server(tmp_path / "upstream.db")
    try:
        config.tenant_id = TENANT
        config.sync.url = server.url
        config.sync.api_key = API_KEY
        config.sync.poll_interval_s = 0.05
        with AgentThread(config) as running:
            for i in range(5):
                (inbox / f"shelf-{i}.jpg").write_bytes(distinct_jpeg(60 + i))
            wait_until(lambda: len(running.done_jobs()) == 5)
            cloud = Client(server.url, API_KEY).tenant(TENANT)
            wait_until(lambda: len(list(cloud.cv.list())) == 5, timeout=30)
            for job in running.done_jobs():
                assert cloud.cv.get(job.id).raw == job.to_dict()
            backlog = running.agent.relay.report()["backlog"]
            assert (backlog["pending"], backlog["parked"], backlog["sent"]) == (0, 0, 5)
    finally:
        server.stop()

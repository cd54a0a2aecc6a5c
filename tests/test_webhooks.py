"""Signed webhooks: Standard Webhooks signing, rows written with the completion, delivery to a real
receiver on loopback, retries with backoff that survive a restart, and the endpoints API."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import pytest
import requests
from helpers.api import Receiver, finish, live_api, queued_job

from edgecv.client import verify_webhook
from edgecv.errors import ConfigError, WebhookVerificationError
from edgecv.signing import generate_secret, sign, signature_headers, verify
from edgecv.store import Store
from edgecv.store import webhooks as webhook_sql
from edgecv.store.counts import webhook_backlog
from edgecv.webhook_delivery import Dispatcher, retry_delay

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def settings_for(config, urls, **more):
    return dataclasses.replace(
        config.webhooks, endpoints=list(urls), secret=SECRET, backoff_base_s=0.05, backoff_max_s=0.2, **more
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- signing -----------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference_vector():
    body = '{"test": 2432232314}'
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_verify_accepts_genuine_and_rejects_everything_else():
    body = b'{"type":"job.completed"}'
    headers = signature_headers(SECRET, "msg_1", body)
    verify(body, headers, SECRET)
    verify(body, {k.upper(): v for k, v in headers.items()}, SECRET)
    multi = dict(headers, **{"webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]})
    verify(body, multi, SECRET)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(body + b" ", headers, SECRET)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(body, headers, generate_secret())
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(body, headers, SECRET, now=time.time() + 3600)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(body, {"webhook-id": "msg_1"}, SECRET)


def test_generated_secrets_are_whsec_base64():
    secret = generate_secret()
    assert secret.startswith("whsec_") and secret != generate_secret()
    verify(b"x", signature_headers(secret, "m", b"x"), secret)


def test_retry_delay_doubles_and_is_capped():
    assert all(0.5 <= retry_delay(1, 1.0, 60) <= 1.0 for _ in range(20))
    assert all(4.0 <= retry_delay(4, 1.0, 60) <= 8.0 for _ in range(20))
    assert all(30 <= retry_delay(30, 1.0, 60) <= 60 for _ in range(20))


def test_config_endpoints_need_a_valid_secret(config, store):
    with pytest.raises(ConfigError, match="webhooks.secret is required"):
        Dispatcher(store, dataclasses.replace(config.webhooks, endpoints=["http://127.0.0.1:9/h"]))
    with pytest.raises(ConfigError, match="whsec_"):
        Dispatcher(store, dataclasses.replace(settings_for(config, ["http://127.0.0.1:9/h"]), secret="plain"))
    with pytest.raises(ConfigError, match="absolute http"):
        Dispatcher(store, settings_for(config, ["file:///etc/passwd"]))


# -- rows written with the completion --------------------------------------------------------------


def test_deliveries_are_written_in_the_completion_transaction(config, store):
    Dispatcher(store, settings_for(config, ["http://127.0.0.1:9/all"]))
    only_done = webhook_sql.create_endpoint(store, "http://127.0.0.1:9/done", SECRET, ["job.completed"])
    done = finish(store, queued_job(store, config, 1))
    failed = finish(store, queued_job(store, config, 2), fail=True)
    rows = webhook_sql.deliveries_for_job(store, done.id)
    assert sorted(r.url for r in rows) == ["http://127.0.0.1:9/all", "http://127.0.0.1:9/done"]
    assert {r.event for r in rows} == {"job.completed"}
    rows = webhook_sql.deliveries_for_job(store, failed.id)
    assert [(r.url, r.event) for r in rows] == [("http://127.0.0.1:9/all", "job.failed")]
    assert only_done.id not in {r.endpoint_id for r in rows}


def test_a_rolled_back_completion_writes_no_delivery(config, store):
    Dispatcher(store, settings_for(config, ["http://127.0.0.1:9/all"]))
    job = queued_job(store, config, 3)
    store.claim_job("w", 60, job_id=job.id)
    with pytest.raises(Exception, match="not leased"):
        store.complete_job(job.id, "someone-else", {"detections": [], "summary": {}})
    assert webhook_sql.deliveries_for_job(store, job.id) == []


# -- delivery ------------------------------------------------------------------------------------------


@pytest.mark.process
def test_delivery_is_signed_and_verifiable(config, store):
    with Receiver() as receiver:
        dispatcher = Dispatcher(store, settings_for(config, [receiver.url]))
        job = finish(store, queued_job(store, config, 4))
        assert dispatcher.run_once() == 1
        assert dispatcher.run_once() == 0
    headers, body = receiver.requests[0]
    event = verify_webhook(body, headers, SECRET)
    assert event["type"] == "job.completed"
    assert event["data"]["id"] == job.id and event["data"]["result"]["detections"]
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
    (row,) = webhook_sql.deliveries_for_job(store, job.id)
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 200)


@pytest.mark.process
def test_receiver_down_then_back_is_retried_across_a_restart(config, store):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    settings = settings_for(config, [url], timeout_s=2.0)
    dispatcher = Dispatcher(store, settings)
    job = finish(store, queued_job(store, config, 5))
    assert dispatcher.run_once() == 1  # connection refused
    assert dispatcher.run_once() == 0  # not due yet: backing off
    (row,) = webhook_sql.deliveries_for_job(store, job.id)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "ConnectionError" in row.last_error
    store.close()

    restarted = Store(config.db_path)  # a new process: nothing but the database carries over
    try:
        with Receiver(port=port, status=503) as receiver:
            again = Dispatcher(restarted, settings)
            assert again.run_once(now=time.time() + 60) == 1
            (row,) = webhook_sql.deliveries_for_job(restarted, job.id)
            assert (row.state, row.attempts, row.last_status) == ("pending", 2, 503)
            receiver.status = 204
            assert again.run_once(now=time.time() + 60) == 1
        (row,) = webhook_sql.deliveries_for_job(restarted, job.id)
        assert (row.state, row.attempts, row.last_status) == ("delivered", 3, 204)
        ids = {h["webhook-id"] for h, _ in receiver.requests}
        assert ids == {row.id}  # the same webhook-id on every retry: receivers can de-duplicate
        for headers, body in receiver.requests:
            verify_webhook(body, headers, SECRET)
    finally:
        restarted.close()


@pytest.mark.process
def test_delivery_gives_up_after_max_attempts(config, store):
    with Receiver(status=500) as receiver:
        dispatcher = Dispatcher(store, settings_for(config, [receiver.url], max_attempts=3))
        job = finish(store, queued_job(store, config, 6), fail=True)
        for _ in range(5):
            dispatcher.run_once(now=time.time() + 60)
    (row,) = webhook_sql.deliveries_for_job(store, job.id)
    assert (row.state, row.attempts, row.last_error) == ("failed", 3, "HTTP 500")
    assert len(receiver.requests) == 3


@pytest.mark.process
def test_run_forever_delivers_until_stopped(config, store):
    with Receiver() as receiver:
        dispatcher = Dispatcher(store, settings_for(config, [receiver.url]), poll_s=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run_forever, args=(stop,))
        thread.start()
        try:
            finish(store, queued_job(store, config, 7))
            assert receiver.got.wait(5)
        finally:
            stop.set()
            thread.join(5)
        assert not thread.is_alive()
    assert receiver.bodies()[0]["type"] == "job.completed"


@pytest.mark.process
def test_a_hanging_receiver_does_not_hold_up_other_endpoints(config, store):
    gate = threading.Event()
    with Receiver(gate=gate) as slow, Receiver() as fast:
        # slow gets every event, fast only job.completed: the oldest due delivery is slow's
        dispatcher = Dispatcher(store, settings_for(config, [slow.url], timeout_s=60), poll_s=0.05)
        webhook_sql.create_endpoint(store, fast.url, SECRET, ["job.completed"])
        failed = finish(store, queued_job(store, config, 10), fail=True)
        done = finish(store, queued_job(store, config, 11))
        stop = threading.Event()
        thread = threading.Thread(target=dispatcher.run_forever, args=(stop,))
        thread.start()
        try:
            assert fast.got.wait(30), "the fast receiver waited for the hanging one"
            assert slow.arrived.wait(30)
            assert not gate.is_set() and len(slow.requests) == 1  # slow still holds its first answer
            assert [b["data"]["id"] for b in fast.bodies()] == [done.id]
        finally:
            gate.set()
            for _ in range(
                600
            ):  # until slow's deliveries are recorded too (a hang guard, not a timing check)
                if not webhook_backlog(store):
                    break
                thread.join(0.05)
            stop.set()
            thread.join(30)
        assert not thread.is_alive()
    # slow got its deliveries one at a time, in the order they became due
    assert [(b["type"], b["data"]["id"]) for b in slow.bodies()] == [
        ("job.failed", failed.id),
        ("job.completed", done.id),
    ]
    rows = webhook_sql.deliveries_for_job(store, failed.id) + webhook_sql.deliveries_for_job(store, done.id)
    assert sorted(r.url for r in rows if r.state == "delivered") == sorted([slow.url, slow.url, fast.url])


# -- endpoints through the API ---------------------------------------------------------------------------


@pytest.mark.process
def test_register_list_and_delete_endpoints_through_the_api(config, store):
    settings = settings_for(config, ["http://127.0.0.1:9/from-config"], timeout_s=1.0)
    dispatcher = Dispatcher(store, settings)
    with live_api(config, store) as api, Receiver() as receiver:
        base = f"{api.url}/v1/tenants/local/webhooks"
        resp = requests.post(base, json={"url": receiver.url, "events": ["job.failed"]}, timeout=5)
        assert resp.status_code == 201
        created = resp.json()
        assert created["secret"].startswith("whsec_") and created["events"] == ["job.failed"]
        listed = requests.get(base, timeout=5).json()["data"]
        assert {e["source"] for e in listed} == {"config", "api"}
        assert all("secret" not in e or e["secret"] is None for e in listed)

        job = finish(store, queued_job(store, config, 8), fail=True)
        dispatcher.run_once()
        ((headers, body),) = receiver.requests
        assert verify_webhook(body, headers, created["secret"])["data"]["id"] == job.id

        assert requests.post(base, json={"url": "ftp://x/y"}, timeout=5).status_code == 422
        assert (
            requests.post(base, json={"url": receiver.url, "events": ["job.started"]}, timeout=5).status_code
            == 422
        )
        config_id = next(e["id"] for e in listed if e["source"] == "config")
        resp = requests.delete(f"{base}/{config_id}", timeout=5)
        assert resp.status_code == 409 and "config file" in resp.json()["error"]["message"]
        assert requests.delete(f"{base}/{created['id']}", timeout=5).status_code == 204
        assert requests.get(f"{base}/{created['id']}", timeout=5).status_code == 404
        assert requests.delete(f"{base}/{created['id']}", timeout=5).status_code == 404

"""MQTT events: config, the event rows written with a job's completion, payloads, and delivery to a
real broker (Debian's mosquitto on a free loopback port): outage without loss, wrong password, TLS
with a test CA, availability with the last will, Home Assistant discovery and the state topics."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections import Counter

import pytest
from helpers.agent import AgentThread, wait_until
from helpers.api import finish, queued_job
from helpers.images import distinct_jpeg
from helpers.mqtt_broker import Broker, Subscriber, mosquitto_path

from edgecv import doctor
from edgecv.config import load_config
from edgecv.errors import ConfigError
from edgecv.mqtt import Publisher, build_publisher, discovery_messages, event_payload
from edgecv.status import status_lines, status_snapshot
from edgecv.store import mqtt as mqtt_sql
from edgecv.store.mqtt import MqttEvent

needs_broker = pytest.mark.skipif(
    mosquitto_path() is None,
    reason="Debian's mosquitto is not installed (scripts/setup.sh test installs it: apt-get install mosquitto)",
)
PREFIX = "edgecv/test-device"
SHELF = {
    "detections": [
        {"objectName": "cola", "confidence": 0.9, "boundingBox": {"x": 1, "y": 2, "width": 3, "height": 4}},
        {"objectName": "cola", "confidence": 0.8, "boundingBox": {"x": 5, "y": 2, "width": 3, "height": 4}},
        {"objectName": "chips", "confidence": 0.7, "boundingBox": {"x": 9, "y": 2, "width": 3, "height": 4}},
    ],
    "summary": {"totalProducts": 3, "uniqueSKUs": 2, "outOfStock": [], "complianceScore": 0.75},
}


def mqtt_config(config, broker=None, **more):
    settings = dataclasses.replace(
        config.mqtt,
        host="127.0.0.1",
        port=broker.port if broker is not None else 9,  # 9: discard, nothing listens (unit tests)
        topic_prefix=PREFIX,
        state_interval_s=0.2,
        **more,
    )
    return dataclasses.replace(config, mqtt=settings)


def publisher(store, cfg, **kwargs) -> Publisher:
    kwargs.setdefault("reconnect_base_s", 0.05)
    kwargs.setdefault("reconnect_max_s", 0.5)
    return Publisher(store, cfg.mqtt, "test-device", **kwargs)


def complete(store, config, i, result=None):
    """A job of the job log completed as a worker would (the observation row alone: no image needed)."""
    _, job, _ = store.add_observation(
        sha256=f"{i:064x}",
        spool_path=f"spool/{i}.jpg",
        original_name=f"{i}.jpg",
        media_type="image/jpeg",
        size_bytes=1,
        width=640,
        height=480,
        metadata={},
        model="rect",
    )
    assert store.claim_job("w", 60, job_id=job.id) is not None
    return store.complete_job(job.id, "w", result or SHELF, inference_ms=3.0, device="CPU")


class Running:
    """``publisher.run_forever`` on a thread for the ``with`` block."""

    def __init__(self, pub: Publisher) -> None:
        self.pub, self.stop = pub, threading.Event()
        self.thread = threading.Thread(target=pub.run_forever, args=(self.stop,), daemon=True)

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self.pub

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


# -- config ------------------------------------------------------------------------------------------


def test_mqtt_is_off_by_default_and_reads_its_section(tmp_path):
    assert load_config(environ={}).mqtt.host is None
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "pw").write_text("s3cret\n")
    path = tmp_path / "edgecv.toml"
    path.write_text(
        '[mqtt]\nhost = "broker.local"\ntls = true\nca_file = "ca.pem"\nusername = "edge"\n'
        'password_file = "pw"\nqos = 0\ntopic_prefix = "plant/line-3"\n'
    )
    cfg = load_config(path, environ={})
    assert cfg.mqtt.ca_file == tmp_path / "ca.pem" and cfg.mqtt.password_file == tmp_path / "pw"
    assert (cfg.mqtt.qos, cfg.mqtt.topic_prefix, cfg.mqtt.discovery_prefix) == (
        0,
        "plant/line-3",
        "homeassistant",
    )
    env = load_config(environ={"EDGECV_MQTT_HOST": "b", "EDGECV_MQTT_PASSWORD": "from-env"})
    assert (env.mqtt.host, env.mqtt.password) == ("b", "from-env")
    assert "from-env" not in repr(env)


@pytest.mark.parametrize(
    "section, expected",
    [
        ("qos = 2", "mqtt.qos: expected 0 or 1 (1: at least once), got 2"),
        ('topic_prefix = "edgecv/#"', "mqtt.topic_prefix: expected a topic such as"),
        ('topic_prefix = "/edgecv"', "mqtt.topic_prefix: expected a topic such as"),
        ("port = 70000", "mqtt.port: expected 1..65535, got 70000"),
        ('ca_file = "missing.pem"\ntls = true', "mqtt.ca_file: file"),
        ('password = "a"\npassword_file = "pw"', "mqtt: set password or password_file, not both"),
        ('cert_file = "pw"', "mqtt: ca_file, cert_file, key_file and tls_insecure need tls = true"),
    ],
)
def test_bad_mqtt_settings_name_the_key(tmp_path, section, expected):
    (tmp_path / "pw").write_text("x")
    path = tmp_path / "edgecv.toml"
    path.write_text(f'[mqtt]\nhost = "b"\n{section}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert expected in str(err.value)


def test_password_file_and_tls_files_are_read_with_clear_errors(config, tmp_path):
    from edgecv.logging_setup import redact
    from edgecv.mqtt import read_password, tls_context

    pw = tmp_path / "pw"
    pw.write_text("from-a-file\nignored\n")
    settings = dataclasses.replace(config.mqtt, host="b", password_file=pw)
    assert read_password(settings) == "from-a-file"
    assert redact("login with from-a-file") == "login with [REDACTED]"
    pw.unlink()
    with pytest.raises(ConfigError, match=r"mqtt.password_file: cannot read .*pw"):
        read_password(settings)
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"mqtt.ca_file: cannot load .*ca.pem as PEM CA certificates"):
        tls_context(dataclasses.replace(config.mqtt, host="b", tls=True, ca_file=bad))


# -- rows written with the completion ------------------------------------------------------------------


def test_events_are_written_with_the_completion_only_while_enabled(config, store):
    before = complete(store, config, 1)
    assert mqtt_sql.backlog(store) == 0
    publisher(store, mqtt_config(config))
    done = complete(store, config, 2)
    failed = finish(store, queued_job(store, config, 3), fail=True)
    events = mqtt_sql.pending_events(store, 10)
    assert [(e.job_id, e.status) for e in events] == [(done.id, "completed"), (failed.id, "failed")]
    assert before.id not in {e.job_id for e in events}
    assert mqtt_sql.load_status(store)["last_compliance"] == 0.75
    # [mqtt] host removed: no more events, the waiting ones are kept
    assert build_publisher(store, config) is None
    complete(store, config, 4)
    assert mqtt_sql.backlog(store) == 2


def test_event_payload_carries_the_job_id_summary_and_counts(config, store):
    publisher(store, mqtt_config(config))
    job = complete(store, config, 1)
    event = mqtt_sql.pending_events(store, 1)[0]
    doc = event_payload(event, "dev_1")
    assert doc["jobId"] == job.id and doc["status"] == "completed" and doc["model"] == "rect"
    assert doc["counts"] == {"cola": 2, "chips": 1} and doc["detections"] == 3
    assert doc["summary"]["complianceScore"] == 0.75 and doc["error"] is None and "result" not in doc
    assert event_payload(event, "dev_1", include_result=True)["result"] == SHELF
    failed = finish(store, queued_job(store, config, 2), fail=True)
    doc = event_payload(mqtt_sql.pending_events(store, 1, after_seq=event.seq)[0], "dev_1")
    assert doc["jobId"] == failed.id and doc["error"]["code"] == "image_unreadable"
    gone = event_payload(MqttEvent(seq=9, job_id="job_x", status="completed", job=None), "dev_1")
    assert gone == {"jobId": "job_x", "status": "completed", "deviceId": "dev_1"}


def test_discovery_names_each_state_topic_and_the_availability_topic(config):
    messages = dict(discovery_messages(config.mqtt, "dev_01ABC", "edgecv/dev_01ABC"))
    config_topic = "homeassistant/sensor/dev_01abc/queue_depth/config"
    assert config_topic in messages
    queue = messages[config_topic]
    assert queue["state_topic"] == "edgecv/dev_01ABC/state/queue_depth"
    assert queue["availability_topic"] == "edgecv/dev_01ABC/availability"
    assert queue["unique_id"] == "edgecv_dev_01abc_queue_depth"
    assert {t.rsplit("/", 2)[1] for t in messages} == {
        "queue_depth",
        "jobs_completed",
        "jobs_failed",
        "compliance_score",
    }


# -- a real broker -------------------------------------------------------------------------------------


@pytest.mark.process
@needs_broker
def test_events_reach_a_subscriber_and_leave_the_job_log_once_acknowledged(config, store, broker):
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    cfg = mqtt_config(config, broker)
    pub = publisher(store, cfg)
    jobs = [complete(store, config, i) for i in range(5)]
    failed = finish(store, queued_job(store, config, 9), fail=True)
    with Running(pub):
        wait_until(lambda: len(sub.on(f"{PREFIX}/jobs/completed")) == 5 and sub.on(f"{PREFIX}/jobs/failed"))
        wait_until(lambda: mqtt_sql.backlog(store) == 0)
        status = mqtt_sql.load_status(store)
        assert status["connected"] == 1 and status["delivered"] == 6 and status["last_error"] is None
    got = [json.loads(p)["jobId"] for p in sub.on(f"{PREFIX}/jobs/completed")]
    assert got == [j.id for j in jobs]  # in completion order
    assert json.loads(sub.on(f"{PREFIX}/jobs/failed")[0])["jobId"] == failed.id
    sub.close()


@pytest.mark.process
@needs_broker
def test_the_agent_publishes_its_jobs_and_says_offline_when_it_stops(config, broker):
    cfg = mqtt_config(config, broker)
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    with AgentThread(cfg) as agent:
        (cfg.inbox / "a.jpg").write_bytes(distinct_jpeg(1))
        wait_until(lambda: sub.on(f"{PREFIX}/jobs/completed"))
        job = agent.done_jobs()[0]
        line = next(x for x in status_lines(status_snapshot(cfg)) if x.startswith("mqtt:"))
        assert line.startswith(f"mqtt:       connected to 127.0.0.1:{broker.port} since ")
    event = json.loads(sub.on(f"{PREFIX}/jobs/completed")[0])
    counts = Counter(d["objectName"] for d in job.result["detections"])
    assert (event["jobId"], event["model"], event["counts"]) == (job.id, "rect", dict(counts))
    assert event["summary"] == job.result["summary"] and event["detections"] == sum(counts.values()) > 0
    wait_until(lambda: sub.on(f"{PREFIX}/availability")[-1:] == [b"offline"])
    assert sub.on(f"{PREFIX}/availability")[0] == b"online"
    sub.close()


@pytest.mark.process
@needs_broker
def test_broker_down_while_500_jobs_complete_then_up_loses_nothing(config, store, broker):
    """The issue's outage, shortened: the broker stops while jobs keep completing (some events in
    flight), stays down while 500 events pile up, then comes back: every event arrives; an event seen
    twice is the same job (the job id de-duplicates), and per job the events keep their order."""
    sub = Subscriber(broker, [f"{PREFIX}/jobs/#"], client_id="test-outage-sub", persistent=True)
    pub = publisher(store, mqtt_config(config, broker))
    ids = []
    with Running(pub):
        ids += [complete(store, config, i).id for i in range(50)]
        wait_until(lambda: len(sub.matching(f"{PREFIX}/jobs/")) >= 10)
        broker.stop()
        ids += [complete(store, config, i).id for i in range(50, 500)]
        wait_until(lambda: (mqtt_sql.load_status(store) or {}).get("last_error"))
        assert mqtt_sql.backlog(store) > 0
        broker.start()
        wait_until(lambda: mqtt_sql.backlog(store) == 0, timeout=60)
        wait_until(
            lambda: {json.loads(p)["jobId"] for _, p, _ in sub.matching(f"{PREFIX}/jobs/")} == set(ids)
        )
    received = [json.loads(p)["jobId"] for _, p, _ in sub.matching(f"{PREFIX}/jobs/")]
    assert set(received) == set(ids) and len(ids) == 500
    assert all(r in set(ids) for r in received)  # a duplicate is only ever a repeated job id
    first_seen = list(dict.fromkeys(received))
    assert first_seen == ids  # first arrivals in completion order
    assert mqtt_sql.load_status(store)["delivered"] >= 500
    sub.close()


@pytest.mark.process
@needs_broker
def test_wrong_password_is_a_clear_error_in_status_and_log_and_the_agent_keeps_working(
    config, tmp_path, caplog, image_array
):
    broker = Broker(tmp_path / "auth", users={"edge": "right-password"}).start()
    try:
        cfg = mqtt_config(config, broker, username="edge", password="wrong-password")
        cfg.api.enabled = False
        caplog.set_level(logging.WARNING, logger="edgecv.mqtt")
        with AgentThread(cfg) as agent:
            (cfg.inbox / "a.jpg").write_bytes(distinct_jpeg(1))
            wait_until(lambda: len(agent.done_jobs()) == 1)
            wait_until(lambda: (mqtt_sql.load_status(agent.store) or {}).get("last_error"))
            snapshot = status_snapshot(cfg)
            line = next(x for x in status_lines(snapshot) if x.startswith("mqtt:"))
            assert mqtt_sql.backlog(agent.store) == 1  # the event waits for a working login
        assert agent.done_jobs()[0].status == "completed"
        assert snapshot["mqtt"]["connected"] is False
        assert "refused the login" in snapshot["mqtt"]["lastError"] and "user 'edge'" in line
        assert f"NOT connected to 127.0.0.1:{broker.port}" in line and "backlog 1 event(s)" in line
        assert any("refused the login" in r.getMessage() for r in caplog.records)
        assert not any("wrong-password" in r.getMessage() for r in caplog.records)
        check = doctor.check_mqtt(cfg)[0]
        assert (
            check.status == "FAIL" and "refused the login" in check.detail and "mqtt.password" in check.hint
        )
        # the right password: the waiting event goes out
        right = mqtt_config(config, broker, username="edge", password="right-password")
        assert doctor.check_mqtt(right)[0].status == "OK"
        sub = Subscriber(broker, [f"{PREFIX}/jobs/#"], username="edge", password="right-password")
        from edgecv.store import Store

        store = Store(cfg.db_path)
        with Running(publisher(store, right)):
            wait_until(lambda: sub.on(f"{PREFIX}/jobs/completed"))
        store.close()
        sub.close()
    finally:
        broker.stop()


@pytest.mark.process
@needs_broker
def test_tls_with_a_test_ca(config, store, tmp_path):
    broker = Broker(tmp_path / "tls", tls=True).start()
    try:
        sub = Subscriber(broker, [f"{PREFIX}/jobs/#"])
        cfg = mqtt_config(config, broker, tls=True, ca_file=broker.ca_file)
        cfg.mqtt.host = "localhost"
        pub = publisher(store, cfg)
        job = complete(store, config, 1)
        with Running(pub):
            wait_until(lambda: sub.on(f"{PREFIX}/jobs/completed"))
        assert json.loads(sub.on(f"{PREFIX}/jobs/completed")[0])["jobId"] == job.id
        assert doctor.check_mqtt(cfg)[0].status == "OK"
        # without the test CA the broker's certificate is refused, with a line that says so
        untrusted = mqtt_config(config, broker, tls=True)
        check = doctor.check_mqtt(untrusted)[0]
        assert check.status == "FAIL" and check.detail.startswith("TLS: 127.0.0.1:")
        assert "mqtt.ca_file" in check.hint
        sub.close()
    finally:
        broker.stop()


@pytest.mark.process
@needs_broker
def test_availability_online_then_offline_on_stop_and_the_last_will_on_a_lost_link(config, store, broker):
    cfg = mqtt_config(config, broker)
    topic = f"{PREFIX}/availability"
    pub = publisher(store, cfg)
    with Running(pub):
        wait_until(lambda: mqtt_sql.load_status(store)["connected"] == 1)
        sub = Subscriber(broker, [topic])
        wait_until(lambda: sub.on(topic) == [b"online"])
        assert sub.messages[0][2] is True  # retained: a late subscriber learns it at once
    wait_until(lambda: sub.on(topic) == [b"online", b"offline"])  # a clean stop says so itself
    # a lost link (no DISCONNECT): the broker publishes the last will
    pub = publisher(store, cfg)
    with Running(pub):
        wait_until(lambda: sub.on(topic)[-1:] == [b"online"])
        pub._client.socket().shutdown(socket.SHUT_RDWR)
        wait_until(lambda: sub.on(topic)[-2:] == [b"offline", b"online"])  # the will, then reconnected
    sub.close()


@pytest.mark.process
@needs_broker
def test_discovery_and_state_topics_are_retained(config, store, broker):
    complete(store, config, 1)
    queued_job(store, config, 2)
    finish(store, queued_job(store, config, 3), fail=True)
    pub = publisher(store, mqtt_config(config, broker))
    with Running(pub):
        wait_until(lambda: mqtt_sql.load_status(store)["connected"] == 1)
        wait_until(lambda: mqtt_sql.backlog(store) == 0)  # the events after enabling: none here
        time.sleep(0.5)  # a state pass (state_interval_s = 0.2)
        sub = Subscriber(broker, ["homeassistant/#", f"{PREFIX}/state/#"])  # arrives after: retained only
        wait_until(
            lambda: len(sub.matching("homeassistant/")) == 4 and len(sub.matching(f"{PREFIX}/state/")) >= 3
        )
        state = {t.rsplit("/", 1)[1]: p.decode() for t, p, _ in sub.matching(f"{PREFIX}/state/")}
        assert state == {"queue_depth": "1", "jobs_completed": "1", "jobs_failed": "1"}
        config_doc = json.loads(sub.on("homeassistant/sensor/test-device/queue_depth/config")[0])
        assert config_doc["state_topic"] == f"{PREFIX}/state/queue_depth"
        assert all(retain for _, _, retain in sub.messages)
        complete(store, config, 4)  # a shelf job: its compliance score becomes a state
        wait_until(lambda: sub.on(f"{PREFIX}/state/compliance_score") == [b"0.75"])
        wait_until(lambda: sub.on(f"{PREFIX}/state/jobs_completed")[-1:] == [b"2"])
    sub.close()


def test_doctor_and_status_without_mqtt(config):
    assert doctor.check_mqtt(config)[0].detail == "off (no mqtt.host)"
    line = next(x for x in status_lines(status_snapshot(config)) if x.startswith("mqtt:"))
    assert line == "mqtt:       off (no mqtt.host)"

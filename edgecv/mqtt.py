"""MQTT events: job events, availability, retained state and Home Assistant discovery (docs/mqtt.md).

Events are rows of the job log (:mod:`edgecv.store.mqtt` holds their SQL), written in the transaction
that finishes a job; :class:`Publisher` publishes them in that order with QoS 1 and deletes a row only
once the broker acknowledged it (PUBACK). A broker that is away, refuses the login or fails the TLS
check therefore loses nothing: events wait in the job log, the error is logged and saved for
``edgecv status``, and the publisher reconnects with capped backoff. Delivery is at least once: an
event in flight when the link drops is sent again, with the same ``jobId`` for de-duplication.

One thread does everything (paho's client driven by :meth:`Publisher.run_once`, no network thread of
paho's own), so no callback races the bookkeeping of what is in flight.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edgecv import __version__
from edgecv.config import Config, MqttSettings
from edgecv.errors import ConfigError
from edgecv.logging_setup import SECRETS
from edgecv.store import Store
from edgecv.store import mqtt as mqtt_sql
from edgecv.store.counts import jobs_by_status
from edgecv.store.mqtt import MqttEvent

log = logging.getLogger(__name__)

WINDOW = 200  # events published and not yet acknowledged (paho's in-flight limit too)
CONNACK_TIMEOUT_S = 10.0
_REFUSED_LOGIN = (134, 135)  # CONNACK "Bad user name or password", "Not authorized" (MQTT 5 numbering)

# The retained state topics and their Home Assistant sensors: name, unit, state class, icon, template.
SENSORS: dict[str, tuple[str, str | None, str, str, str | None]] = {
    "queue_depth": ("Queue depth", "jobs", "measurement", "mdi:tray-full", None),
    "jobs_completed": ("Jobs completed", "jobs", "total_increasing", "mdi:check-circle", None),
    "jobs_failed": ("Jobs failed", "jobs", "total_increasing", "mdi:alert-circle", None),
    "compliance_score": (
        "Last compliance score",
        "%",
        "measurement",
        "mdi:percent",
        "{{ (value | float * 100) | round(1) }}",
    ),
}


def event_payload(event: MqttEvent, device_id: str, *, include_result: bool = False) -> dict[str, Any]:
    """The JSON of a ``…/jobs/<status>`` event: who, what and the summary; the whole result on demand."""
    doc: dict[str, Any] = {"jobId": event.job_id, "status": event.status, "deviceId": device_id}
    job = event.job
    if job is None:  # retention removed the job before the broker came back: the id is all there is
        return doc
    result = job.result if isinstance(job.result, dict) else {}
    detections = result.get("detections") or []
    counts: dict[str, int] = {}
    for detection in detections:
        name = str(detection.get("objectName")) if isinstance(detection, dict) else "?"
        counts[name] = counts.get(name, 0) + 1
    doc.update(
        model=job.model,
        modelVersion=job.model_version,
        observationId=job.observation_id,
        createdAt=job.created_at,
        completedAt=job.completed_at,
        detections=len(detections),
        counts=counts,
        summary=result.get("summary"),
        error={"code": job.error_code, "message": job.error_message} if job.status == "failed" else None,
    )
    if include_result:
        doc["result"] = job.result
    return doc


def discovery_messages(
    settings: MqttSettings, device_id: str, prefix: str
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: ``(config topic, config)`` for each state sensor (published
    retained on every connect, so a restarted Home Assistant finds them)."""
    node = re.sub(r"[^a-z0-9_-]", "_", device_id.lower())
    device = {
        "identifiers": [f"edgecv_{node}"],
        "name": f"edgecv {device_id}",
        "manufacturer": "edgecv",
        "model": "edgecv agent",
        "sw_version": __version__,
    }
    out = []
    for key, (name, unit, state_class, icon, template) in SENSORS.items():
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"edgecv_{node}_{key}",
            "state_topic": f"{prefix}/state/{key}",
            "availability_topic": f"{prefix}/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
            "state_class": state_class,
            "icon": icon,
            "device": device,
            "origin": {"name": "edgecv", "sw_version": __version__},
        }
        if unit:
            config["unit_of_measurement"] = unit
        if template:
            config["value_template"] = template
        out.append((f"{settings.discovery_prefix}/sensor/{node}/{key}/config", config))
    return out


def read_password(settings: MqttSettings) -> str | None:
    """``mqtt.password``, else the first line of ``mqtt.password_file``; ConfigError if unreadable."""
    if settings.password_file is None:
        return settings.password
    try:
        text = settings.password_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"mqtt.password_file: cannot read {settings.password_file} ({exc}); make it readable by the "
            "user the agent runs as",
            key="mqtt.password_file",
        ) from None
    password = text.splitlines()[0] if text.strip() else ""
    SECRETS.add(password)  # kept out of every log line, like the passwords set in the config
    return password


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The TLS context for ``mqtt.tls``: the broker's certificate checked against ``ca_file`` (or the
    system CAs), host name checked unless ``tls_insecure``, client certificate when given."""
    try:
        context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.ca_file: cannot load {settings.ca_file} as PEM CA certificates ({exc})", key="mqtt.ca_file"
        ) from None
    if settings.cert_file is not None:
        try:
            context.load_cert_chain(
                str(settings.cert_file), str(settings.key_file) if settings.key_file else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.cert_file: cannot load the client certificate {settings.cert_file} with its key ({exc})",
                key="mqtt.cert_file",
            ) from None
    if settings.tls_insecure:
        context.check_hostname = False  # the chain is still verified (verify_mode stays CERT_REQUIRED)
    return context


def broker_address(settings: MqttSettings) -> tuple[str, int]:
    return str(settings.host), settings.port or (8883 if settings.tls else 1883)


@dataclass(frozen=True)
class Problem:
    """Why the broker could not be used: ``kind`` is ``network``, ``tls`` or ``login``; ``text`` the
    one line for the log, ``edgecv status`` and ``edgecv doctor``."""

    kind: str
    text: str


def connect_error(exc: BaseException, settings: MqttSettings) -> Problem:
    """Why the connection to the broker failed, and what to check."""
    host, port = broker_address(settings)
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Problem(
            "tls",
            f"TLS: {where} presented a certificate that was not accepted ({exc.verify_message}); "
            "check mqtt.ca_file (the CA that signed the broker's certificate) and that mqtt.host is the "
            "name in that certificate",
        )
    if isinstance(exc, ssl.SSLError):
        return Problem(
            "tls", f"TLS handshake with {where} failed ({exc.reason or exc}); check mqtt.tls and mqtt.port"
        )
    if isinstance(exc, socket.gaierror):
        return Problem(
            "network", f"cannot resolve mqtt.host {host!r} ({exc.strerror}); check the name and DNS"
        )
    if isinstance(exc, ConnectionRefusedError):
        return Problem(
            "network", f"cannot connect to {where}: connection refused (is the broker running on that port?)"
        )
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return Problem("network", f"cannot connect to {where}: timed out (check the network and firewall)")
    return Problem("network", f"cannot connect to {where}: {exc}")


def refused_error(reason: Any, settings: MqttSettings) -> Problem:
    host, port = broker_address(settings)
    if getattr(reason, "value", None) in _REFUSED_LOGIN:
        who = f"user {settings.username!r}" if settings.username else "no user name"
        return Problem(
            "login",
            f"the broker {host}:{port} refused the login ({reason}, {who}); check mqtt.username and "
            "mqtt.password (or EDGECV_MQTT_PASSWORD / mqtt.password_file)",
        )
    return Problem("login", f"the broker {host}:{port} refused the connection ({reason})")


def new_client(settings: MqttSettings, client_id: str, password: str | None, context: ssl.SSLContext | None):
    """A paho client (MQTT 3.1.1, clean session) with credentials and TLS set, not connected."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
        reconnect_on_failure=False,
    )
    client.connect_timeout = CONNACK_TIMEOUT_S
    if settings.username is not None:
        client.username_pw_set(settings.username, password)
    if context is not None:
        client.tls_set_context(context)
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    return client


def _close(client: paho.Client) -> None:
    with contextlib.suppress(Exception):
        client.disconnect()
    with contextlib.suppress(Exception):
        sock = client.socket()
        if sock is not None:
            sock.close()


def probe(settings: MqttSettings) -> Problem | None:
    """Connect and log in once (for ``edgecv doctor``), under a client id of its own so the agent's
    session is not taken over. Returns None when the broker accepted, else the problem."""
    client_id = f"{settings.client_id or 'edgecv'}-doctor-{random.randrange(16**6):06x}"
    client = new_client(
        settings, client_id, read_password(settings), tls_context(settings) if settings.tls else None
    )
    answer: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    host, port = broker_address(settings)
    try:
        client.connect(host, port, keepalive=settings.keepalive_s)
    except (OSError, ValueError) as exc:
        return connect_error(exc, settings)
    try:
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while not answer and time.monotonic() < deadline:
            if client.loop(0.2) != MQTTErrorCode.MQTT_ERR_SUCCESS and not answer:
                return Problem("network", f"the broker {host}:{port} closed the connection during the login")
        if not answer:
            return Problem(
                "network", f"no answer to the login from {host}:{port} within {CONNACK_TIMEOUT_S:.0f} s"
            )
        return refused_error(answer[0], settings) if answer[0].is_failure else None
    finally:
        _close(client)


class Publisher:
    """Publishes the job log's MQTT events. ``run_once()`` is one pass; ``run_forever(stop)`` loops.

    Construction checks the settings (password file, TLS files: ConfigError) and marks MQTT enabled
    in the job log, so jobs finished from then on get events.
    """

    def __init__(
        self,
        store: Store,
        settings: MqttSettings,
        device_id: str,
        *,
        poll_s: float = 0.5,
        reconnect_base_s: float = 0.5,
        reconnect_max_s: float = 15.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.device_id = device_id
        self.prefix = settings.topic_prefix or f"edgecv/{device_id}"
        self.client_id = settings.client_id or f"edgecv-{device_id}"
        self.host, self.port = broker_address(settings)
        self.poll_s = poll_s
        self.reconnect_base_s = reconnect_base_s
        self.reconnect_max_s = reconnect_max_s
        self._password = read_password(settings)
        self._context = tls_context(settings) if settings.tls else None
        self._client: paho.Client | None = None
        self._inflight: dict[int, int] = {}  # paho message id → outbox seq
        self._acked: list[int] = []  # message ids the broker acknowledged, not yet recorded
        self._sent_up_to = 0  # this connection has published the outbox up to this seq
        self._connack: Any = None
        self._failures = 0
        self._next_try = 0.0
        self._last_error: str | None = None
        self._state_sent: dict[str, str] = {}
        self._next_state = 0.0
        self.delivered = 0  # acknowledged by this publisher (the job log keeps the total)
        mqtt_sql.set_enabled(store, True, f"{self.host}:{self.port}")

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def availability_topic(self) -> str:
        return f"{self.prefix}/availability"

    # -- the loop ---------------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        log.info("MQTT publisher for %s:%d started (topics under %s/)", self.host, self.port, self.prefix)
        try:
            while not stop.is_set():
                if self._client is None:
                    wait = self._next_try - time.monotonic()
                    if wait > 0:
                        stop.wait(min(wait, 1.0))
                        continue
                try:
                    self.run_once(self.poll_s)
                except Exception as exc:  # e.g. the database: a bad pass must not end the loop
                    log.exception("MQTT pass failed; reconnecting")
                    with contextlib.suppress(Exception):  # the job log may be what failed
                        self._drop(f"{type(exc).__name__}: {exc}")
                    stop.wait(1.0)
        finally:
            self.close()
        log.info("MQTT publisher stopped")

    def run_once(self, wait_s: float = 0.0) -> int:
        """One pass: connect if due, publish pending events up to the window, take the broker's
        acknowledgements (waiting up to ``wait_s`` for the network when there is nothing else to do),
        refresh the state topics. Returns how many events were acknowledged in this pass."""
        if self._client is None:
            if time.monotonic() < self._next_try or not self._connect():
                return 0
        client = self._client
        assert client is not None
        more = self._publish_pending(client)
        rc = client.loop(0.0 if more else wait_s)
        delivered = self._record_acks()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drop(f"lost the connection to {self.host}:{self.port} ({paho.error_string(rc)})")
            return delivered
        self._publish_state()
        return delivered

    def close(self) -> None:
        """A clean stop: ``offline`` on the availability topic, the acknowledgements in flight taken,
        then disconnect (events not acknowledged stay in the job log for the next start)."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(Exception):
            info = client.publish(self.availability_topic, "offline", qos=1, retain=True)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and (not info.is_published() or self._inflight):
                if client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                self._record_acks()
            self._record_acks()
        _close(client)
        self._client = None
        self._inflight.clear()
        with contextlib.suppress(Exception):
            mqtt_sql.save_connection(self.store, connected=False)

    # -- connecting -------------------------------------------------------------------------------

    def _connect(self) -> bool:
        client = new_client(self.settings, self.client_id, self._password, self._context)
        client.max_inflight_messages_set(WINDOW)
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        self._connack = None
        try:
            client.connect(self.host, self.port, keepalive=self.settings.keepalive_s)
        except (OSError, ValueError) as exc:
            self._failed(connect_error(exc, self.settings).text)
            return False
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while self._connack is None and time.monotonic() < deadline:
            if client.loop(0.2) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if self._connack is None or self._connack.is_failure:
            _close(client)
            if self._connack is None:
                self._failed(f"no answer to the login from {self.host}:{self.port}")
            else:
                self._failed(refused_error(self._connack, self.settings).text)
            return False
        self._client = client
        self._inflight.clear()
        self._acked.clear()
        self._sent_up_to = 0
        self._failures = 0
        self._last_error = None
        mqtt_sql.save_connection(self.store, connected=True)
        log.info("MQTT connected to %s:%d as %s", self.host, self.port, self.client_id)
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.settings.discovery:
            for topic, config in discovery_messages(self.settings, self.device_id, self.prefix):
                client.publish(topic, _json(config), qos=1, retain=True)
        self._state_sent.clear()
        self._next_state = 0.0
        return True

    def _on_connect(self, _client, _userdata, _flags, reason, _properties) -> None:
        self._connack = reason

    def _on_publish(self, _client, _userdata, mid, _reason, _properties) -> None:
        self._acked.append(mid)

    def _failed(self, error: str) -> None:
        """A connection attempt or the link failed: save and log the error (once while it repeats),
        and try again after a capped, jittered backoff."""
        self._failures += 1
        delay = min(self.reconnect_max_s, self.reconnect_base_s * 2 ** min(self._failures - 1, 20))
        delay *= random.uniform(0.5, 1.0)
        self._next_try = time.monotonic() + delay
        if error != self._last_error:
            log.warning("MQTT: %s; events wait in the job log, retrying", error)
        else:
            log.debug("MQTT: %s; retry in %.1f s", error, delay)
        self._last_error = error
        mqtt_sql.save_connection(self.store, connected=False, error=error)

    def _drop(self, error: str) -> None:
        if self._client is not None:
            _close(self._client)
        self._client = None
        self._inflight.clear()  # not acknowledged: published again after the reconnect
        self._acked.clear()
        self._failed(error)

    # -- publishing -------------------------------------------------------------------------------

    def _publish_pending(self, client: paho.Client) -> bool:
        """Publish events after the last one sent, up to the window; True when more may be waiting."""
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return False
        events = mqtt_sql.pending_events(self.store, room, after_seq=self._sent_up_to)
        include = self.settings.include_result
        for event in events:
            payload = _json(event_payload(event, self.device_id, include_result=include))
            info = client.publish(f"{self.prefix}/jobs/{event.status}", payload, qos=self.settings.qos)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
                return False  # the link is gone: loop() says so and the connection is dropped
            self._inflight[info.mid] = event.seq
            self._sent_up_to = event.seq
        return len(events) == room

    def _record_acks(self) -> int:
        mids, self._acked = self._acked, []
        seqs = [self._inflight.pop(mid) for mid in mids if mid in self._inflight]
        if not seqs:
            return 0
        count = mqtt_sql.mark_delivered(self.store, seqs)
        self.delivered += count
        return count

    def state_values(self) -> dict[str, str]:
        """The retained state topics' values now (``compliance_score`` once a shelf job had one)."""
        counts = jobs_by_status(self.store)
        values = {
            "queue_depth": str(counts["queued"]),
            "jobs_completed": str(counts["completed"]),
            "jobs_failed": str(counts["failed"]),
        }
        score = (mqtt_sql.load_status(self.store) or {}).get("last_compliance")
        if score is not None:
            values["compliance_score"] = f"{score:.4g}"
        return values

    def _publish_state(self) -> None:
        now = time.monotonic()
        if now < self._next_state or self._client is None:
            return
        self._next_state = now + self.settings.state_interval_s
        for name, value in self.state_values().items():
            if self._state_sent.get(name) != value:
                self._client.publish(f"{self.prefix}/state/{name}", value, qos=self.settings.qos, retain=True)
                self._state_sent[name] = value


def build_publisher(store: Store, config: Config) -> Publisher | None:
    """The publisher ``[mqtt]`` asks for, not started; None (and no more events written) without
    ``mqtt.host``. Raises ConfigError for unreadable password or TLS files."""
    if not config.mqtt.host:
        if mqtt_sql.is_enabled(store):
            mqtt_sql.set_enabled(store, False)
            log.info("mqtt.host not set: no more MQTT events are written (%d wait)", mqtt_sql.backlog(store))
        return None
    from edgecv.upstream.relay import resolve_device_id

    return Publisher(store, config.mqtt, resolve_device_id(store, config.sync))


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

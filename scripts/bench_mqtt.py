"""Benchmark: MQTT events per second to a loopback broker (Debian's mosquitto).

    .venv/bin/python scripts/bench_mqtt.py [--events 5000] [--qos 1] [--include-result]

Makes a backlog of finished jobs through the Store API (as after a broker outage: every event waits in
the job log), starts mosquitto on a free loopback port with a subscriber counting what arrives, then
measures in the same run:

- ceiling: paho alone publishing the same payloads, pre-encoded, with the same in-flight window, until
  the broker acknowledged all of them (no job log work at all);
- publisher: ``Publisher.run_once`` until the backlog is empty: read events, build payloads, publish,
  take PUBACKs, delete the acknowledged rows (what the agent's MQTT thread does).

Target: publisher ≥ 1,000 events/s. Prints the CPU's vector extensions with the figures.

``--outage-s 60 --events 500`` instead runs the issue's outage: the publisher runs on its thread as in
the agent, the broker is stopped, ``--events`` jobs complete evenly over ``--outage-s`` seconds, the
broker starts again; it prints how long the backlog took to drain and what the subscriber received
(unique job ids, duplicates).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import paho.mqtt.client as paho  # noqa: E402
from helpers.mqtt_broker import Broker, Subscriber, mosquitto_path  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edgecv.config import MqttSettings  # noqa: E402
from edgecv.mqtt import WINDOW, Publisher, _json, event_payload  # noqa: E402
from edgecv.store import Store  # noqa: E402
from edgecv.store import mqtt as mqtt_sql  # noqa: E402
from edgecv.threads import cpu_flags_text  # noqa: E402

RESULT = {
    "detections": [
        {
            "objectName": f"sku-{k % 12:02d}",
            "confidence": 0.9,
            "boundingBox": {"x": 10 * k, "y": 40, "width": 60, "height": 180},
            "attributes": {"facings": 1, "shelfPosition": k % 4 + 1, "priceTag": "2.49"},
        }
        for k in range(24)
    ],
    "summary": {"totalProducts": 24, "uniqueSKUs": 12, "outOfStock": ["sku-13"], "complianceScore": 0.82},
}


def make_backlog(store: Store, n: int, first: int = 0) -> list[str]:
    ids = []
    for i in range(first, first + n):
        _, job, _ = store.add_observation(
            sha256=f"{i:064x}",
            spool_path=f"spool/{i}.jpg",
            original_name=f"{i}.jpg",
            media_type="image/jpeg",
            size_bytes=1,
            width=1280,
            height=720,
            metadata={},
            model="shelf-detection-v2",
        )
        store.claim_job("bench", 60, job_id=job.id)
        store.complete_job(job.id, "bench", RESULT, inference_ms=20.0, device="CPU")
        ids.append(job.id)
    return ids


def outage(tmp: Path, events: int, outage_s: float) -> None:
    """The broker away for ``outage_s`` while ``events`` jobs complete; then back."""
    broker = Broker(tmp / "broker").start()
    try:
        store = Store(tmp / "edgecv.db")
        settings = MqttSettings(host="127.0.0.1", port=broker.port, topic_prefix="bench/edge")
        publisher = Publisher(store, settings, "bench-device")
        sub = Subscriber(broker, ["bench/edge/jobs/#"], client_id="bench-outage-sub", persistent=True)
        stop = threading.Event()
        thread = threading.Thread(target=publisher.run_forever, args=(stop,), daemon=True)
        thread.start()
        ids = make_backlog(store, 20)  # delivered before the outage
        while mqtt_sql.backlog(store):
            time.sleep(0.05)
        broker.stop()
        start = time.monotonic()
        for k in range(events):
            ids += make_backlog(store, 1, first=20 + k)
            time.sleep(max(0.0, start + (k + 1) * outage_s / events - time.monotonic()))
        waiting = mqtt_sql.backlog(store)
        error = (mqtt_sql.load_status(store) or {}).get("last_error")
        broker.start()
        back = time.monotonic()
        while mqtt_sql.backlog(store) and time.monotonic() - back < 300:
            time.sleep(0.02)
        drained = time.monotonic() - back
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = [json.loads(p)["jobId"] for _, p, _ in sub.matching("bench/edge/jobs/")]
            if set(got) >= set(ids):
                break
            time.sleep(0.05)
        stop.set()
        thread.join(30)
        sub.close()
        store.close()
    finally:
        broker.stop()
    print(f"outage: broker stopped {outage_s:.0f} s while {events} jobs completed; {waiting} events waited")
    print(f"publisher's last error while down: {error}")
    print(f"after the broker came back: backlog drained in {drained:.2f} s")
    print(
        f"subscriber: {len(set(got))} of {len(ids)} job ids, {len(got) - len(set(got))} duplicate(s), "
        f"missing {len(set(ids) - set(got))}; first arrivals in completion order: "
        f"{list(dict.fromkeys(got)) == ids}"
    )
    print(f"CPU flags: {cpu_flags_text()}")


def ceiling(broker: Broker, payloads: list[bytes], qos: int) -> float:
    """paho alone: the same payloads, the same window, until every PUBACK is in."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-ceiling", protocol=paho.MQTTv311)
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.max_inflight_messages_set(WINDOW)
    client.connect("127.0.0.1", broker.port)
    start = time.perf_counter()
    sent = 0
    while acked[0] < len(payloads):
        while sent < len(payloads) and sent - acked[0] < WINDOW:
            client.publish("bench/ceiling/jobs/completed", payloads[sent], qos=qos)
            sent += 1
        client.loop(0.01)
    elapsed = time.perf_counter() - start
    client.disconnect()
    return len(payloads) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1))
    parser.add_argument("--include-result", action="store_true", help="the whole result in each event")
    parser.add_argument("--outage-s", type=float, help="run the outage scenario with this many seconds down")
    args = parser.parse_args()
    if mosquitto_path() is None:
        raise SystemExit(
            "Error: mosquitto is not installed; apt-get install mosquitto (scripts/setup.sh test)"
        )
    if args.outage_s:
        with tempfile.TemporaryDirectory() as tmp:
            outage(Path(tmp), args.events, args.outage_s)
        return
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker").start()
        try:
            store = Store(Path(tmp) / "edgecv.db")
            settings = MqttSettings(
                host="127.0.0.1",
                port=broker.port,
                qos=args.qos,
                include_result=args.include_result,
                topic_prefix="bench/edge",
            )
            publisher = Publisher(store, settings, "bench-device")
            t0 = time.perf_counter()
            make_backlog(store, args.events)
            print(f"backlog: {args.events} finished jobs in {time.perf_counter() - t0:.1f} s")
            events = mqtt_sql.pending_events(store, args.events)
            payloads = [
                _json(event_payload(e, "bench-device", include_result=args.include_result)) for e in events
            ]
            print(f"payload: {sum(map(len, payloads)) // len(payloads)} bytes on average")
            sub = Subscriber(broker, ["bench/#"])
            ceiling_rate = ceiling(broker, payloads, args.qos)
            start = time.perf_counter()
            while mqtt_sql.backlog(store) and time.perf_counter() - start < 600:
                publisher.run_once(0.05)
            elapsed = time.perf_counter() - start
            rate = publisher.delivered / elapsed
            time.sleep(0.5)
            arrived = len(sub.matching("bench/edge/jobs/"))
            sub.close()
            publisher.close()
            store.close()
        finally:
            broker.stop()
    print(f"ceiling (paho alone, QoS {args.qos}, window {WINDOW}): {ceiling_rate:,.0f} events/s")
    print(
        f"publisher (job log → broker, acknowledged and deleted): {rate:,.0f} events/s "
        f"({publisher.delivered} in {elapsed:.2f} s; {rate / ceiling_rate:.2f} of the ceiling; "
        f"subscriber received {arrived})"
    )
    print(f"target ≥ 1,000 events/s: {'met' if rate >= 1000 else 'NOT met'}")
    print(f"CPU flags: {cpu_flags_text()}")


if __name__ == "__main__":
    main()

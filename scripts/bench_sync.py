"""Benchmark: results synced per second to the reference upstream on loopback.

    .venv/bin/python scripts/bench_sync.py [--jobs 10000] [--batch 500]

Makes a backlog of finished jobs through the Store API, starts ``python -m sync.server`` as a separate
process, then measures in the same run:

- ceiling: the server's own ingest rate — the same items, pre-encoded into batches, POSTed back to back
  over one keep-alive connection (no relay work at all), under another tenant;
- relay: ``sync_all`` end to end (read outbox, POST, record acknowledgements). As on a device that was
  offline, the relay first runs against a closed port and encodes the backlog ahead while it backs off
  (its rate is printed too); ``--cold`` skips that, so the relay encodes while it sends.

Target: relay ≥ 1,000 results/s and ≥ 0.8 of the ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helpers.sync_server import make_jobs  # noqa: E402

from edgecv.config import Config  # noqa: E402
from edgecv.store import Store, outbox  # noqa: E402
from edgecv.upstream.relay import Relay, resolve_device_id  # noqa: E402
from edgecv.upstream.summary import sync_all  # noqa: E402
from edgecv.upstream.wire import batch_body, encode_entry, split_by_bytes  # noqa: E402

API_KEY = "bench-key"


def start_server(db: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "sync.server", "--port", "0", "--db", str(db), "--api-key", API_KEY]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def ceiling(store: Store, cfg: Config, url: str, n: int) -> float:
    device_id = resolve_device_id(store, cfg.sync)
    items = [encode_entry(e, device_id) for e in outbox.pending_entries(store, n)]
    bodies = [
        batch_body(b) for b in split_by_bytes(items, cfg.sync.batch_max_items, cfg.sync.batch_max_bytes)
    ]
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/v1/tenants/ceiling/sync/results", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    elapsed = time.perf_counter() - started
    conn.close()
    return len(items) / elapsed


def encode_while_offline(store: Store, cfg: Config) -> float:
    """The backlog built up while the upstream was down: the relay, pointed at a closed port, encodes
    it ahead (what it does while backing off). Returns results encoded per second."""
    offline = Config(data_dir=cfg.data_dir, tenant_id=cfg.tenant_id)
    offline.sync.url = f"http://127.0.0.1:{free_port()}"
    offline.sync.backoff_base_s = offline.sync.backoff_max_s = 0.001
    relay = Relay.from_config(store, offline)
    started = time.perf_counter()
    while outbox.unencoded_ids(store, 1):
        relay.run_once()
    elapsed = time.perf_counter() - started
    relay.close()
    return outbox.backlog(store).pending / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="sync.batch_max_items")
    parser.add_argument(
        "--cold", action="store_true", help="skip the offline phase: the relay encodes as it sends"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = Store(tmp_path / "device" / "edgecv.db")
        started = time.perf_counter()
        make_jobs(store, args.jobs)
        print(
            f"backlog: {args.jobs} finished jobs made via the Store API in {time.perf_counter() - started:.1f}s"
        )
        proc, url = start_server(tmp_path / "upstream.db")
        try:
            cfg = Config(data_dir=tmp_path / "device", tenant_id="bench")
            cfg.sync.url, cfg.sync.api_key = url, API_KEY
            cfg.sync.batch_max_items, cfg.sync.batch_max_bytes = args.batch, 4_000_000
            encode_rate = None if args.cold else encode_while_offline(store, cfg)
            top = ceiling(store, cfg, url, args.jobs)
            started = time.perf_counter()
            summary = sync_all(store, cfg, progress=False)
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        store.close()
    rate = summary.sent / elapsed
    if encode_rate is not None:
        print(
            f"offline phase:         backlog encoded ahead at {encode_rate:,.0f} results/s while the upstream was down"
        )
    print(
        f"server ingest ceiling: {top:,.0f} results/s (pre-encoded batches of {args.batch}, one connection)"
    )
    print(
        f"relay (sync_all):      {rate:,.0f} results/s ({summary.sent} sent in {elapsed:.2f}s, {summary.pending} pending)"
    )
    print(f"relay / ceiling:       {rate / top:.2f}")
    ok = rate >= 1000 and rate >= 0.8 * top and summary.pending == 0
    print(f"target (>= 1,000/s and >= 0.8 of ceiling): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

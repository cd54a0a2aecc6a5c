"""Power cuts: SIGKILL the agent at random moments during a backlog with sync and webhooks on, restart it,
again and again; then check that nothing was lost or doubled.

    .venv/bin/python scripts/power_cut.py                  # 100 kills, 1500 images (+40 before each restart)
    .venv/bin/python scripts/power_cut.py --kills 20 --images 100 --seed 7

The agent runs as a real process (`python -m edgecv agent`) on the shipped default model, syncing to the
reference upstream (`python -m sync.server`, another process) and sending webhooks to a receiver in this
script. Each cycle starts the agent, waits a random 0.2-4 s (start-up, model load, intake, inference,
commits, sync and webhook sends are all in that window), and kills it with SIGKILL; each cycle drops
new images first, so intake is cut too. At the end one agent runs to completion and the script checks:

- every image ends as exactly one job, `completed` or `failed`, and the inbox is empty;
- the upstream holds exactly one result per job (re-sends after a kill are answered as duplicates by
  their idempotency key and counted, never stored twice), and every outbox row is acknowledged;
- every job's webhook event reached the receiver (at least once: webhooks are at-least-once, the
  duplicates are counted);
- `PRAGMA integrity_check` is `ok`.

Prints the figures and the CPU's vector extensions; exits 1 on any failed check. Not run by CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from edgecv.threads import cpu_flags

REPO = Path(__file__).resolve().parents[1]
API_KEY = "power-cut-key"
TENANT = "acme"
SECRET = "whsec_" + "cG93ZXItY3V0LXNlY3JldC0xMjM0NTY3ODkwMTI="


def image(i: int) -> bytes:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)
    cv2.rectangle(img, (40 + i % 200, 40), (200 + i % 200, 300), (0, 0, 255), -1)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


class Receiver(ThreadingHTTPServer):
    """Webhook receiver: counts deliveries per job id."""

    daemon_threads = True

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.lock = threading.Lock()
        self.down = False  # answer 503 to everything (a receiver that is down)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                job_id = json.loads(body)["data"]["id"]
                with receiver.lock:
                    receiver.events[job_id] = receiver.events.get(job_id, 0) + 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def start_agent(env: dict[str, str], inbox: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgecv", "agent", "--inbox", str(inbox)],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def settled(db: Path, receiver: Receiver, n: int) -> bool:
    if not db.exists():
        return False
    try:
        done = rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('completed', 'failed')")[0][0]
        pending = rows(db, "SELECT COUNT(*) FROM outbox WHERE state != 'sent'")[0][0]
        hooks = rows(db, "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")[0][0]
    except sqlite3.OperationalError:
        return False
    return done == n and pending == 0 and hooks == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--images", type=int, default=1500, help="the backlog dropped before the first start")
    parser.add_argument("--more", type=int, default=40, help="images dropped before each restart")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rnd = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="edgecv-power-cut-"))
    data, inbox, log = work / "data", work / "inbox", work / "agent.log"
    inbox.mkdir()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.server",
            "--port",
            str(port),
            "--db",
            str(work / "upstream.db"),
            "--api-key",
            API_KEY,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "EDGECV_CONFIG": "",
        "EDGECV_DATA_DIR": str(data),
        "EDGECV_TENANT_ID": TENANT,
        "EDGECV_API_ENABLED": "false",
        "EDGECV_SYNC_URL": f"http://127.0.0.1:{port}",
        "EDGECV_SYNC_API_KEY": API_KEY,
        "EDGECV_SYNC_POLL_INTERVAL_S": "0.2",
        "EDGECV_WEBHOOKS_ENDPOINTS": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        "EDGECV_WEBHOOKS_SECRET": SECRET,
        "EDGECV_WEBHOOKS_BACKOFF_BASE_S": "0.2",
        "EDGECV_WEBHOOKS_BACKOFF_MAX_S": "2",
    }
    images: dict[str, bytes] = {}

    def drop(n: int) -> None:
        for _ in range(n):
            i = len(images)
            images[f"img-{i:05d}.jpg"] = data_ = image(i)
            (inbox / f".img-{i:05d}.jpg.part").write_bytes(data_)
            os.replace(inbox / f".img-{i:05d}.jpg.part", inbox / f"img-{i:05d}.jpg")

    drop(args.images)
    db = data / "edgecv.db"
    start = time.perf_counter()
    done_at_kill = []
    try:
        for cycle in range(args.kills):
            drop(args.more)
            proc = start_agent(env, inbox, log)
            time.sleep(rnd.uniform(0.2, 4.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done = (
                rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('completed','failed')")[0][0]
                if db.exists()
                else 0
            )
            done_at_kill.append(done)
            print(f"kill {cycle + 1:3d}: {done:5d} of {len(images)} jobs finished", flush=True)
        kill_s = time.perf_counter() - start
        proc = start_agent(env, inbox, log)
        deadline = time.monotonic() + 900
        while not settled(db, receiver, len(images)) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        return report(args, seed, work, db, receiver, images, inbox, port, kill_s, done_at_kill)
    finally:
        upstream.terminate()
        upstream.wait()
        receiver.shutdown()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def report(args, seed, work, db, receiver, images, inbox, port, kill_s, done_at_kill) -> int:
    hashes = sorted(hashlib.sha256(d).hexdigest() for d in images.values())
    jobs = rows(
        db,
        "SELECT o.sha256, j.id, j.status, j.attempts FROM jobs j JOIN observations o ON o.id = j.observation_id",
    )
    stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_admin/stats?tenant={TENANT}").read())
    checks = {
        "one job per image": sorted(r[0] for r in jobs) == hashes,
        "every job completed or failed": {r[2] for r in jobs} <= {"completed", "failed"},
        "inbox empty": not [p for p in inbox.iterdir() if not p.name.startswith(".")],
        "upstream: one result per job": stats["results"] == stats["distinctJobs"] == len(jobs),
        "outbox all acknowledged": rows(db, "SELECT COUNT(*) FROM outbox WHERE state != 'sent'")[0][0] == 0,
        "webhook event for every job": all(receiver.events.get(r[1], 0) >= 1 for r in jobs),
        "integrity_check ok": rows(db, "PRAGMA integrity_check") == [("ok",)],
    }
    cpu = cpu_flags()
    log_text = (work / "agent.log").read_text(errors="replace")
    print()
    print(f"seed {seed}; CPU flags: {' '.join(cpu) or 'none of avx2/avx512'}; {os.cpu_count()} CPUs")
    print(
        f"kills: {args.kills} in {kill_s:.0f} s; images: {len(images)}; jobs finished at the kills: "
        f"min {min(done_at_kill)} max {max(done_at_kill)}"
    )
    print(
        f"jobs: {len(jobs)} ({sum(r[2] == 'completed' for r in jobs)} completed, "
        f"{sum(r[2] == 'failed' for r in jobs)} failed); attempts > 1: {sum(r[3] > 1 for r in jobs)}"
    )
    print(
        f"upstream: {stats['results']} results for {stats['distinctJobs']} jobs; re-sends answered as "
        f"duplicates: {stats['replies'].get('duplicate', '?')}"
    )
    dup = sum(n - 1 for n in receiver.events.values() if n > 1)
    print(
        f"webhooks: {sum(receiver.events.values())} deliveries for {len(receiver.events)} jobs ({dup} repeated)"
    )
    print(
        f"recovered at start-up: {log_text.count('recovered abandoned jobs')} time(s); "
        f"job log set aside: {log_text.count('is damaged')}"
    )
    for name, ok in checks.items():
        print(f"{'OK  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

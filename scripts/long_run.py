"""A long run: a steady stream of mixed images into one agent while the upstream and the webhook receiver
go down and come back; prints RSS, open file descriptors and drop-to-completed latency over time.

    .venv/bin/python scripts/long_run.py                          # 20,000 images over 30 minutes
    .venv/bin/python scripts/long_run.py --images 3000 --minutes 5

The agent is a real process (`python -m edgecv agent`, shipped default model) syncing to the reference
upstream (`python -m sync.server`), which this script stops for 20 s of every 60 s, and sending
webhooks to a receiver here that answers 503 for 15 s of every 45 s. Images (JPEG and PNG, 480x360
to 1280x720) are dropped at an even rate. Every 10 s the script samples the agent's RSS and open file
descriptors. At the end it waits for the backlog, the outbox and the webhooks to drain and checks:

- RSS grows at most 5 % from the end of warm-up (the first fifth of the run) to the end;
- open file descriptors stay flat (at most +5 after warm-up);
- p95 drop-to-completed of the last fifth is within 1.5x of the second fifth's (or under 2 s);
- every result reached the upstream exactly once and every job's webhook event arrived.

Prints the figures and the CPU's vector extensions; exits 1 on a failed check. Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from edgecv.threads import cpu_flags

sys.path.insert(0, str(Path(__file__).resolve().parent))
from power_cut import API_KEY, REPO, SECRET, TENANT, Receiver, free_port, rows, start_agent  # noqa: E402


def mixed_image(i: int) -> tuple[str, bytes]:
    rng = np.random.default_rng(i)
    w, h = [(480, 360), (640, 480), (1280, 720)][i % 3]
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.rectangle(img, (20 + i % 300, 20), (120 + i % 300, h - 20), (0, 0, 255), -1)
    if i % 4 == 3:
        return ".png", cv2.imencode(".png", img)[1].tobytes()
    return ".jpg", cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def proc_sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values, default=0.0)


def start_upstream(port: int, db: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sync.server", "--port", str(port), "--db", str(db), "--api-key", API_KEY],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgecv-long-run-"))
    data, inbox = work / "data", work / "inbox"
    inbox.mkdir()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    upstream = start_upstream(port, work / "upstream.db")
    env = {
        **os.environ,
        "EDGECV_CONFIG": "",
        "EDGECV_DATA_DIR": str(data),
        "EDGECV_TENANT_ID": TENANT,
        "EDGECV_API_ENABLED": "false",
        "EDGECV_SYNC_URL": f"http://127.0.0.1:{port}",
        "EDGECV_SYNC_API_KEY": API_KEY,
        "EDGECV_SYNC_BACKOFF_MAX_S": "5",
        "EDGECV_WEBHOOKS_ENDPOINTS": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        "EDGECV_WEBHOOKS_SECRET": SECRET,
        "EDGECV_WEBHOOKS_BACKOFF_BASE_S": "0.5",
        "EDGECV_WEBHOOKS_BACKOFF_MAX_S": "5",
    }
    agent = start_agent(env, inbox, work / "agent.log")
    dropped: dict[str, float] = {}
    samples: list[tuple[float, int, int]] = []
    duration = args.minutes * 60
    start = time.monotonic()
    next_sample = 0.0
    try:
        time.sleep(5)  # start-up and model load are not part of the run
        start = time.monotonic()
        for i in range(args.images):
            due = start + duration * i / args.images
            while (now := time.monotonic()) < due:
                time.sleep(min(0.05, due - now))
            elapsed = time.monotonic() - start
            upstream_down = elapsed % 60 >= 40
            if upstream_down and upstream.poll() is None:
                upstream.terminate()
                upstream.wait()
            elif not upstream_down and upstream.poll() is not None:
                upstream = start_upstream(port, work / "upstream.db")
            receiver.down = elapsed % 45 >= 30
            if elapsed >= next_sample:
                samples.append((elapsed, *proc_sample(agent.pid)))
                next_sample += 10.0
            ext, data_ = mixed_image(i)
            name = f"img-{i:06d}{ext}"
            tmp = inbox / f".{name}.part"
            tmp.write_bytes(data_)
            os.replace(tmp, inbox / name)
            dropped[name] = time.time()
        if upstream.poll() is not None:
            upstream = start_upstream(port, work / "upstream.db")
        receiver.down = False
        drain = time.monotonic()
        db = data / "edgecv.db"
        while time.monotonic() - drain < 900:
            done = rows(db, "SELECT COUNT(*) FROM jobs WHERE status IN ('completed','failed')")[0][0]
            unsent = rows(db, "SELECT COUNT(*) FROM outbox WHERE state != 'sent'")[0][0]
            hooks = rows(db, "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")[0][0]
            if done == len(dropped) and unsent == 0 and hooks == 0:
                break
            time.sleep(1)
        samples.append((time.monotonic() - start, *proc_sample(agent.pid)))
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=120)
        return report(args, work, db, port, receiver, dropped, samples, duration)
    finally:
        if agent.poll() is None:
            agent.kill()
        upstream.terminate()
        upstream.wait()
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def report(args, work, db, port, receiver, dropped, samples, duration) -> int:
    finished = rows(
        db,
        "SELECT o.original_name, j.id, j.completed_at FROM jobs j JOIN observations o ON o.id = j.observation_id",
    )
    latency: list[tuple[float, float]] = []  # (dropped at, seconds to completed)
    t0 = min(dropped.values())
    for name, _job_id, completed_at in finished:
        if name in dropped and completed_at:
            done = datetime.fromisoformat(completed_at.replace("Z", "+00:00")).timestamp()
            latency.append((dropped[name] - t0, done - dropped[name]))
    fifths = [[s for t, s in latency if k * duration / 5 <= t < (k + 1) * duration / 5] for k in range(5)]
    warm = [s for s in samples if s[0] >= duration / 5]
    rss0, rss1 = warm[0][1], samples[-1][1]
    fd0, fd1 = warm[0][2], samples[-1][2]
    stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_admin/stats?tenant={TENANT}").read())
    cpu = cpu_flags()
    p95s = [p95(f) for f in fifths]
    checks = {
        "RSS growth after warm-up <= 5 %": rss1 <= rss0 * 1.05,
        "open fds flat (<= +5)": fd1 <= fd0 + 5,
        "p95 drop-to-completed flat": p95s[4] <= max(2.0, 1.5 * p95s[1]),
        "one upstream result per job": stats["results"]
        == stats["distinctJobs"]
        == len(finished)
        == len(dropped),
        "webhook event for every job": all(receiver.events.get(j, 0) >= 1 for _, j, _ in finished),
    }
    print(f"CPU flags: {' '.join(cpu)}; {os.cpu_count()} CPUs")
    print(f"images: {len(dropped)} over {duration / 60:.1f} min; jobs: {len(finished)}")
    print(
        f"RSS: {rss0 / 1024:.1f} MiB after warm-up -> {rss1 / 1024:.1f} MiB at the end "
        f"({(rss1 / rss0 - 1) * 100:+.1f} %); max {max(s[1] for s in samples) / 1024:.1f} MiB"
    )
    minutes = [s for s in samples if int(s[0]) % 60 < 10] + samples[-1:]
    print("RSS by minute (MiB): " + ", ".join(f"{s[1] / 1024:.0f}" for s in minutes))
    print(f"open fds: {fd0} after warm-up -> {fd1} at the end (max {max(s[2] for s in samples)})")
    print("p95 drop-to-completed by fifth of the run: " + ", ".join(f"{v:.2f} s" for v in p95s))
    print(
        f"upstream: {stats['results']} results, {stats['distinctJobs']} jobs; "
        f"webhook deliveries {sum(receiver.events.values())} for {len(receiver.events)} jobs"
    )
    for name, ok in checks.items():
        print(f"{'OK  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

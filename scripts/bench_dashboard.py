"""Benchmark: the dashboard's response times over a job log of 100,000 jobs.

    .venv/bin/python scripts/bench_dashboard.py [--jobs 100000] [--data-dir DIR] [--repeat 20]

Fills a job log through the Store API (observation → claim → complete or fail, the way workers do; each
completed job carries a shelf result of 40 detections, ~8 KB of JSON like the shipped shelf model's),
then serves it with the local API on loopback and times each page from a client on the same machine
(request sent → last byte read: the server's time plus loopback HTTP). With chromium installed it also
loads the status page in headless chromium and prints its first contentful paint. ``--data-dir`` keeps
the filled log for a second run (filling 100,000 jobs takes a few minutes).

Targets (issue 21): status page ≤ 1 s, jobs page ≤ 300 ms with 100,000 jobs in the log.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgecv.api import Metrics, make_server  # noqa: E402
from edgecv.config import load_config  # noqa: E402
from edgecv.store import Store  # noqa: E402
from edgecv.store.counts import jobs_by_status  # noqa: E402
from edgecv.threads import cpu_flags_text  # noqa: E402
from edgecv.upstream.budget import DiskBudget  # noqa: E402

MODELS = ("shelf-detection-v2", "building-inspection-v1", "damage-assessment-v1")
POSITIONS = ("top", "eye-level", "middle", "bottom")


def shelf_result(i: int) -> dict:
    detections = [
        {
            "objectName": f"Product {(i + k) % 24}",
            "confidence": round(0.5 + (k % 50) / 100, 4),
            "boundingBox": {"x": 20 + 30 * (k % 10), "y": 40 + 150 * (k // 10), "width": 28, "height": 120},
            "attributes": {"facings": 1 + k % 4, "shelfPosition": POSITIONS[k // 10], "priceTag": f"{1 + k % 5}.49"},
        }
        for k in range(40)
    ]
    summary = {"totalProducts": 40, "uniqueSKUs": 24, "outOfStock": [], "complianceScore": 0.95, "shelfRows": 4}
    return {"detections": detections, "summary": summary, "domain": {"inDomain": True, "scene": "retail"}}


def fill(store: Store, n: int) -> None:
    """``n`` jobs: 94 % completed, 3 % failed, the rest left queued; three models."""
    have = sum(jobs_by_status(store).values())
    t0 = time.perf_counter()
    for i in range(have, n):
        name = f"aisle-{i % 40}/img-{i:06d}.jpg"
        _, job, _ = store.add_observation(
            sha256=f"{i:064x}",
            spool_path=f"spool/{i % 256:02x}/{i:064x}.jpg",
            original_name=name,
            media_type="image/jpeg",
            size_bytes=250_000,
            width=1280,
            height=720,
            metadata={},
            model=MODELS[i % 3],
        )
        kind = i % 100
        if kind >= 97:
            continue  # queued
        claimed = store.claim_job("bench", 60, job_id=job.id)
        if kind >= 94:
            store.fail_job(job.id, "bench", "image_unreadable", "could not decode the image; re-export it")
        else:
            store.complete_job(job.id, "bench", shelf_result(i), inference_ms=9.5, device="CPU")
        assert claimed is not None
        if i and i % 10_000 == 0:
            print(f"  {i} jobs ({i / (time.perf_counter() - t0):.0f}/s)", flush=True)


def timed(session: requests.Session, url: str, repeat: int) -> tuple[float, float, int]:
    """(first, median of ``repeat``) seconds and the body size of GET ``url``."""
    times = []
    size = 0
    for _ in range(repeat + 1):
        t = time.perf_counter()
        resp = session.get(url, timeout=60)
        size = len(resp.content)
        times.append(time.perf_counter() - t)
        if resp.status_code != 200:
            raise SystemExit(f"GET {url}: {resp.status_code} {resp.text[:200]}")
    return times[0], statistics.median(times[1:]), size


def first_paint(url: str) -> float | None:
    chromium, driver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver.exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=Service(str(driver)))
    script = "const p = performance.getEntriesByName('first-contentful-paint'); return p.length ? p[0].startTime : null"
    try:
        paints = []
        for _ in range(3):
            browser.get(url)
            deadline = time.monotonic() + 10
            while (paint := browser.execute_script(script)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if paint is None:
                return None
            paints.append(paint)
        return statistics.median(paints) / 1000
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="edgecv-bench-dashboard-"))
    config = load_config(overrides={"data_dir": data_dir}, environ={})
    store = Store(config.db_path)
    print(f"job log {config.db_path}: filling to {args.jobs} jobs", flush=True)
    t = time.perf_counter()
    fill(store, args.jobs)
    counts = jobs_by_status(store)
    print(f"  {sum(counts.values())} jobs {counts} ({time.perf_counter() - t:.0f} s)")
    print(f"  {config.db_path.stat().st_size / 2**20:.0f} MiB")
    newest = store.list_jobs(limit=1)[0][0]
    queued = store.list_jobs(status="queued", limit=args.jobs)[0]  # no result JSON: cheap to read
    middle = queued[len(queued) // 2].id
    day = newest.created_at[:10]
    server = make_server(config, store, metrics=Metrics(), port=0, budget=DiskBudget.from_config(store, config))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    pages = {
        "status page  /": "/",
        "live numbers /live.json": "/live.json",
        "jobs page    /jobs": "/jobs",
        "jobs page    /jobs?status=failed": "/jobs?status=failed",
        "jobs page    /jobs?model=damage-assessment-v1&status=queued": "/jobs?model=damage-assessment-v1&status=queued",
        f"jobs page    /jobs?date={day}": f"/jobs?date={day}",
        "jobs page    /jobs?cursor=<middle>": f"/jobs?cursor={middle}",
        "job page     /jobs/<id>": f"/jobs/{newest.id}",
    }
    try:
        with requests.Session() as session:
            print(f"\nresponse times on loopback ({args.repeat} requests each after the first):")
            for label, path in pages.items():
                first, median, size = timed(session, base + path, args.repeat)
                print(f"  {label:58s} first {first * 1000:7.1f} ms  median {median * 1000:7.1f} ms  {size / 1024:6.1f} KiB")
        paint = first_paint(base + "/")
        if paint is not None:
            print(f"\nstatus page first contentful paint in headless chromium: {paint * 1000:.0f} ms (median of 3)")
        else:
            print("\nchromium not installed: no first-paint figure")
    finally:
        server.stop()
        store.close()
    print("\ntargets: status page <= 1000 ms, jobs page <= 300 ms")
    print("cpu flags:", cpu_flags_text())
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"cores: {cores}")


if __name__ == "__main__":
    main()

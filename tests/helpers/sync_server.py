"""Shared helpers for the sync tests: jobs made through the Store API, the reference upstream, assertions."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

from edgecv.config import Config
from edgecv.store import Store

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the reference upstream lives in the top-level sync/ folder
    sys.path.insert(0, str(REPO))

from sync.server import ReferenceServer, Settings  # noqa: E402

API_KEY = "test-key-7f3a"
TENANT = "acme"


def make_jobs(
    store: Store, n: int, *, prefix: str = "img", bad: set[int] = frozenset(), spool: Path | None = None
) -> list[str]:
    """``n`` finished jobs via add_observation → claim_job → complete_job; ``bad`` indexes get a result the
    upstream refuses (no ``detections``). Returns the job ids in order."""
    ids = []
    for i in range(n):
        name = f"{prefix}-{i}.jpg"
        _, job, _ = store.add_observation(
            sha256=f"{prefix}-{i}".encode().hex().ljust(64, "0")[:64],
            spool_path=f"spool/{name}",
            original_name=name,
            media_type="image/jpeg",
            size_bytes=100,
            width=640,
            height=480,
            metadata={"tags": ["aisle-3"]},
            model="shelf-detection-v2",
        )
        claimed = store.claim_job("worker-1", 60)
        assert claimed is not None and claimed.id == job.id
        result: dict[str, Any] = {"summary": {"totalProducts": 0}}
        if i not in bad:
            result["detections"] = [
                {
                    "objectName": "Coca-Cola 330ml",
                    "confidence": 0.97,
                    "boundingBox": {"x": 120, "y": 45, "width": 80, "height": 200},
                    "attributes": {"facings": 4, "shelfPosition": "eye-level", "priceTag": "2.49"},
                }
            ]
        store.complete_job(job.id, "worker-1", result, inference_ms=12.5, device="CPU")
        ids.append(job.id)
    return ids


def device_config(data_dir: Path, url: str, **sync: Any) -> Config:
    cfg = Config(data_dir=data_dir, tenant_id=TENANT)
    cfg.sync.url = url
    cfg.sync.api_key = API_KEY
    cfg.sync.timeout_s = 2.0
    cfg.sync.backoff_base_s = 0.01
    cfg.sync.backoff_max_s = 0.05
    cfg.sync.poll_interval_s = 0.01
    cfg.sync.auth_probe_s = 0.2
    for key, value in sync.items():
        setattr(cfg.sync, key, value)
    return cfg


def start_server(db: Path, port: int = 0, **settings: Any) -> ReferenceServer:
    return ReferenceServer(db, port=port, settings=Settings(api_keys={API_KEY}, **settings)).start()


def admin(server: ReferenceServer, method: str, path: str, doc: Any = None) -> Any:
    """Script the server at run time through its admin endpoint (over HTTP, as a test harness would)."""
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def add_faults(server: ReferenceServer, *faults: dict[str, Any]) -> None:
    admin(server, "POST", "/_admin/faults", list(faults))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_exactly_once(
    server: ReferenceServer, stores: list[Store], *, skip: set[str] = frozenset()
) -> None:
    """The upstream holds every finished local job exactly once (minus ``skip``), as the device shows it."""
    rows = server.upstream.conn.execute(
        "SELECT job_id, job FROM results WHERE tenant = ?", (TENANT,)
    ).fetchall()
    remote_ids = [r[0] for r in rows]
    assert len(remote_ids) == len(set(remote_ids)), "a result reached the upstream twice"
    local = {}
    for store in stores:
        for status in ("completed", "failed"):
            cursor = None
            while True:
                jobs, cursor = store.list_jobs(status=status, limit=1000, cursor=cursor)
                local.update({j.id: j for j in jobs})
                if cursor is None:
                    break
    expected = set(local) - set(skip)
    assert set(remote_ids) == expected, (
        f"missing {len(expected - set(remote_ids))}, extra {len(set(remote_ids) - expected)}"
    )
    for job_id, body in rows[:50]:
        assert json.loads(body) == local[job_id].to_dict()

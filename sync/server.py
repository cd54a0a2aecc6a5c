"""Reference tenant API for edgecv upstream sync: the contract in ``sync/openapi.yaml`` over real HTTP.

stdlib only (``http.server.ThreadingHTTPServer`` + ``sqlite3``), so tests and demos run it anywhere::

    python -m sync.server --port 8080 --db /tmp/upstream.db --api-key secret
    python sync/server.py --port 0 --db :memory: --fault kind=status,status=503,count=2,retry_after=5

Results are unique on ``(tenant, idempotencyKey)`` and on ``(tenant, deviceId, job id)``. Fault switches
(start flags or ``POST /_admin/faults`` at run time) apply, in order, to the next requests they match:

- ``kind=status``: answer ``status`` (with ``Retry-After: retry_after`` — seconds, or ``date:N`` for an
  HTTP date N seconds ahead) without committing anything;
- ``kind=delay``: sleep ``seconds`` before processing (``phase=before``) or after committing (``phase=after``);
- ``kind=drop``: commit, then close the connection without an answer;
- ``kind=hang``: accept the request and never answer (until the server stops, or ``seconds``);
- ``kind=truncate`` (model bundle downloads): send ``bytes`` of the body, then close the connection;
- ``kind=lie`` (model bundle downloads): state ``bytes`` more than the bundle has, padded with zeros.

The model catalogue (``GET /v1/tenants/{t}/models``) serves signed bundles published with ``--bundle FILE``,
``POST /_admin/models?tenant=t`` (the file as the body) or :meth:`ReferenceServer.publish`; downloads
honour ``Range`` / ``If-Range``.

Each fault has ``count`` (default 1; -1 = until cleared) and ``path`` (``results``, ``images``, ``jobs``,
``models`` or ``any``). The admin endpoints (``/_admin/...``) take no auth: bind this server to loopback only.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import logging
import re
import sqlite3
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("sync.server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    payload_hash     TEXT NOT NULL,
    status           TEXT NOT NULL,
    model            TEXT NOT NULL,
    job              TEXT NOT NULL,
    observation      TEXT NOT NULL,
    received_at      REAL NOT NULL,
    UNIQUE (tenant, idempotency_key),
    UNIQUE (tenant, device_id, job_id)
);
CREATE INDEX IF NOT EXISTS results_by_job ON results (tenant, job_id);
CREATE TABLE IF NOT EXISTS images (
    tenant       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    data         BLOB NOT NULL,
    received_at  REAL NOT NULL,
    privacy      TEXT,                           -- the X-Edgecv-Privacy header: what was done to faces
    PRIMARY KEY (tenant, sha256)
);
CREATE TABLE IF NOT EXISTS models (                 -- the model catalogue: signed bundles devices pull
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    data          BLOB NOT NULL,
    published_at  REAL NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE TABLE IF NOT EXISTS hard_items (             -- images devices kept for labelling, with pre-labels
    tenant           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    image_sha256     TEXT NOT NULL,
    item             TEXT NOT NULL,
    item_hash        TEXT NOT NULL,
    received_at      REAL NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);
CREATE TABLE IF NOT EXISTS device_models (          -- what each device reports it runs
    tenant       TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT,
    previous     TEXT,
    source       TEXT,
    reported_at  REAL NOT NULL,
    PRIMARY KEY (tenant, device_id, name)
);
"""

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
RESULTS_RE = re.compile(r"^/v1/tenants/([^/]+)/sync/results$")
IMAGE_RE = re.compile(r"^/v1/tenants/([^/]+)/sync/images/([^/]+)$")
JOB_RE = re.compile(r"^/v1/tenants/([^/]+)/cv/jobs/([^/]+)$")
JOBS_RE = re.compile(r"^/v1/tenants/([^/]+)/cv/jobs$")
MODELS_RE = re.compile(r"^/v1/tenants/([^/]+)/models$")
BUNDLE_RE = re.compile(r"^/v1/tenants/([^/]+)/models/([^/]+)/([^/]+)/bundle$")
DEVICE_MODELS_RE = re.compile(r"^/v1/tenants/([^/]+)/devices/([^/]+)/models$")
HARD_RE = re.compile(r"^/v1/tenants/([^/]+)/sync/hard-images$")
RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def canonical(value: Any) -> bytes:
    """The bytes a payload hash is computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_hash(item: dict[str, Any]) -> str:
    return hashlib.sha256(
        canonical(
            {"deviceId": item.get("deviceId"), "job": item.get("job"), "observation": item.get("observation")}
        )
    ).hexdigest()


class ItemInvalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- validation ------------------------------------------------------------------------------------


def validate_item(item: Any) -> None:
    """Raise ItemInvalid(code, message) when ``item`` breaks the contract."""
    if not isinstance(item, dict):
        raise ItemInvalid("invalid_item", "expected an object")
    for key in ("idempotencyKey", "deviceId", "payloadHash"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ItemInvalid("invalid_item", f"{key}: expected a non-empty string")
    job, obs = item.get("job"), item.get("observation")
    if not isinstance(job, dict) or not isinstance(obs, dict):
        raise ItemInvalid("invalid_item", "job and observation: expected objects")
    _validate_job(job)
    if not isinstance(obs.get("id"), str) or obs["id"] != job.get("observationId"):
        raise ItemInvalid("invalid_observation", "observation.id must equal job.observationId")
    if payload_hash(item) != item["payloadHash"]:
        raise ItemInvalid("payload_hash_mismatch", "payloadHash is not the sha256 of the canonical payload")


def _validate_job(job: dict[str, Any]) -> None:
    if not isinstance(job.get("id"), str) or not job["id"].startswith("job_"):
        raise ItemInvalid("invalid_job", "job.id: expected 'job_…'")
    if not isinstance(job.get("model"), str) or not job["model"]:
        raise ItemInvalid("invalid_job", "job.model: expected a non-empty string")
    if job.get("status") == "failed":
        err = job.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str):
            raise ItemInvalid("invalid_job", "failed job: error.code expected")
        return
    if job.get("status") != "completed":
        raise ItemInvalid(
            "invalid_job", f"job.status: expected completed or failed, got {job.get('status')!r}"
        )
    result = job.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("detections"), list):
        raise ItemInvalid("invalid_result", "completed job: result.detections must be a list")
    for n, det in enumerate(result["detections"]):
        box = det.get("boundingBox") if isinstance(det, dict) else None
        if not isinstance(box, dict) or not all(
            isinstance(box.get(k), int) for k in ("x", "y", "width", "height")
        ):
            raise ItemInvalid(
                "invalid_result", f"result.detections[{n}].boundingBox: expected integer x, y, width, height"
            )
        conf = det.get("confidence")
        if not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            raise ItemInvalid("invalid_result", f"result.detections[{n}].confidence: expected 0..1")


def parse_limit(value: str | None) -> int:
    """The ``limit`` query parameter: 1..1000, default 50. Raises ValueError naming the problem."""
    if value is None:
        return 50
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 1000:
        raise ValueError(f"limit: expected an integer from 1 to 1000, got {value!r}")
    return int(value)


def bundle_identity(data: bytes) -> tuple[str, str]:
    """``(name, version)`` from a bundle's first member, ``bundle.json``. Raises ValueError."""
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            member = tar.next()
            if member is None or member.name != "bundle.json":
                raise ValueError("the first member is not bundle.json")
            fh = tar.extractfile(member)
            model = json.loads(fh.read() if fh else b"")["model"]
            name, version = model["name"], model["version"]
    except (tarfile.TarError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an edgecv bundle: {exc}") from None
    if not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", v) for v in (name, version)
    ):
        raise ValueError(f"bundle name/version {name!r} {version!r} are not usable in a URL")
    return name, version


def validate_hard_item(item: dict[str, Any]) -> None:
    """A kept-image item (``POST …/sync/hard-images``); raises ItemInvalid(code, message)."""
    for key in ("deviceId", "jobId", "reason"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ItemInvalid("invalid_item", f"{key}: expected a non-empty string")
    image = item.get("image")
    if (
        not isinstance(image, dict)
        or not isinstance(image.get("sha256"), str)
        or not SHA256_RE.match(image["sha256"])
    ):
        raise ItemInvalid("invalid_item", "image.sha256: expected 64 lowercase hex digits")
    labels = item.get("labels")
    if labels is not None and (
        not isinstance(labels, dict) or not isinstance(labels.get("annotations", []), list)
    ):
        raise ItemInvalid("invalid_labels", "labels: expected a COCO object with an annotations list")


def parse_model_report(doc: Any) -> list[dict[str, Any]]:
    """The body of ``PUT …/devices/{id}/models``; raises ValueError naming the problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
        raise ValueError("expected {'models': [...]}")
    if "deviceId" in doc and not isinstance(doc["deviceId"], str):
        raise ValueError("deviceId: expected a string")
    out = []
    for n, m in enumerate(doc["models"]):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise ValueError(f"models[{n}]: expected an object with a non-empty name")
        for key in ("version", "previous", "source"):
            if m.get(key) is not None and not isinstance(m[key], str):
                raise ValueError(f"models[{n}].{key}: expected a string or null")
        out.append(m)
    return out


# -- storage ---------------------------------------------------------------------------------------


class Upstream:
    """The tenant API's storage: one SQLite connection behind a lock."""

    def __init__(self, db_path: str) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.counters = {"created": 0, "duplicate": 0, "rejected": 0, "batches": 0}
        self.requests: dict[str, int] = {}  # API requests received per area, faults included
        self._seq = self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def ingest(self, tenant: str, items: list[Any], strict: bool) -> list[dict[str, Any]]:
        """One transaction per batch; one reply per item, in order. ``strict`` raises on the first
        invalid item instead (the whole batch is refused, nothing committed)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                replies = [self._ingest_one(tenant, n, item, strict) for n, item in enumerate(items)]
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            self.counters["batches"] += 1
            for reply in replies:
                self.counters[reply["status"]] += 1
        return replies

    def _ingest_one(self, tenant: str, n: int, item: Any, strict: bool) -> dict[str, Any]:
        key = item.get("idempotencyKey") if isinstance(item, dict) else None
        try:
            validate_item(item)
        except ItemInvalid as exc:
            if strict:
                raise ItemInvalid(exc.code, f"items[{n}] ({key}): {exc}") from None
            return {"idempotencyKey": key, "status": "rejected", "code": exc.code, "message": str(exc)}
        job = item["job"]
        row = self.conn.execute(
            "SELECT id, payload_hash FROM results WHERE tenant = ? AND idempotency_key = ?", (tenant, key)
        ).fetchone()
        if row is not None and row[1] != item["payloadHash"]:
            return {
                "idempotencyKey": key,
                "status": "rejected",
                "code": "idempotency_key_reused",
                "message": f"key already used for a different payload (record {row[0]})",
            }
        if row is None:
            row = self.conn.execute(
                "SELECT id FROM results WHERE tenant = ? AND device_id = ? AND job_id = ?",
                (tenant, item["deviceId"], job["id"]),
            ).fetchone()
        if row is not None:
            return {"idempotencyKey": key, "status": "duplicate", "id": row[0], "jobId": job["id"]}
        self._seq += 1
        rec_id = f"rec_{self._seq:012d}"
        self.conn.execute(
            "INSERT INTO results (id, tenant, device_id, job_id, idempotency_key, payload_hash, status, model,"
            " job, observation, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec_id,
                tenant,
                item["deviceId"],
                job["id"],
                key,
                item["payloadHash"],
                job["status"],
                job["model"],
                json.dumps(job, ensure_ascii=False),
                json.dumps(item["observation"], ensure_ascii=False),
                time.time(),
            ),
        )
        return {"idempotencyKey": key, "status": "created", "id": rec_id, "jobId": job["id"]}

    def count_request(self, area: str) -> None:
        with self.lock:
            self.requests[area] = self.requests.get(area, 0) + 1

    def get_job(self, tenant: str, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT job FROM results WHERE tenant = ? AND job_id = ? ORDER BY id LIMIT 1",
                (tenant, job_id),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def list_jobs(self, tenant: str, query: dict[str, str]) -> dict[str, Any]:
        """Newest job id first, keyset cursor = last job id of the previous page (as on the device)."""
        if query.get("status") not in (None, "completed", "failed"):
            raise ValueError(f"status: expected completed or failed, got {query['status']!r}")
        clauses, params = ["tenant = ?"], [tenant]
        for name, column in (("status", "status"), ("model", "model"), ("deviceId", "device_id")):
            if query.get(name):
                clauses.append(f"{column} = ?")
                params.append(query[name])
        if query.get("cursor"):
            clauses.append("job_id < ?")
            params.append(query["cursor"])
        limit = parse_limit(query.get("limit"))
        with self.lock:
            rows = self.conn.execute(
                f"SELECT job FROM results WHERE {' AND '.join(clauses)} ORDER BY job_id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        data = [json.loads(r[0]) for r in rows[:limit]]
        return {"data": data, "nextCursor": data[-1]["id"] if len(rows) > limit else None}

    def has_image(self, tenant: str, sha256: str) -> bool:
        with self.lock:
            row = self.conn.execute(
                "SELECT 1 FROM images WHERE tenant = ? AND sha256 = ?", (tenant, sha256)
            ).fetchone()
        return row is not None

    def put_image(
        self, tenant: str, sha256: str, media_type: str, data: bytes, privacy: str | None = None
    ) -> bool:
        """True when stored now, False when it was already there."""
        with self.lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO images (tenant, sha256, media_type, size_bytes, data, received_at, privacy)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tenant, sha256, media_type, len(data), data, time.time(), privacy),
            )
        return cur.rowcount == 1

    # -- hard images ---------------------------------------------------------------------------

    def ingest_hard(self, tenant: str, items: list[Any]) -> list[dict[str, Any]]:
        """Kept images from devices: the latest item per (tenant, idempotencyKey) is kept."""
        replies = []
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for item in items:
                    replies.append(self._ingest_hard_one(tenant, item))
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        return replies

    def _ingest_hard_one(self, tenant: str, item: dict[str, Any]) -> dict[str, Any]:
        key = item["idempotencyKey"]
        try:
            validate_hard_item(item)
        except ItemInvalid as exc:
            return {"idempotencyKey": key, "status": "rejected", "code": exc.code, "message": str(exc)}
        sha = item["image"]["sha256"]
        if not self.conn.execute(
            "SELECT 1 FROM images WHERE tenant = ? AND sha256 = ?", (tenant, sha)
        ).fetchone():
            return {
                "idempotencyKey": key,
                "status": "rejected",
                "code": "image_missing",
                "message": f"upload the image first: PUT …/sync/images/{sha}",
            }
        digest = hashlib.sha256(canonical(item)).hexdigest()
        row = self.conn.execute(
            "SELECT item_hash FROM hard_items WHERE tenant = ? AND idempotency_key = ?", (tenant, key)
        ).fetchone()
        if row is not None and row[0] == digest:
            return {"idempotencyKey": key, "status": "duplicate", "jobId": item["jobId"]}
        self.conn.execute(
            "INSERT OR REPLACE INTO hard_items (tenant, idempotency_key, device_id, job_id, reason, image_sha256,"
            " item, item_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant,
                key,
                item["deviceId"],
                item["jobId"],
                item["reason"],
                sha,
                json.dumps(item),
                digest,
                time.time(),
            ),
        )
        return {"idempotencyKey": key, "status": "updated" if row else "created", "jobId": item["jobId"]}

    def hard_items(self, tenant: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT item FROM hard_items WHERE tenant = ? ORDER BY received_at, idempotency_key",
                (tenant,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- the model catalogue -------------------------------------------------------------------

    def publish_bundle(self, tenant: str, data: bytes) -> dict[str, Any]:
        """Add a signed model bundle (``.edgecv``) to ``tenant``'s catalogue; name and version are read
        from its ``bundle.json`` (the server does not check the signature: devices do)."""
        name, version = bundle_identity(data)
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.conn.execute(
                "INSERT OR REPLACE INTO models (tenant, name, version, sha256, size_bytes, data, published_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tenant, name, version, sha, len(data), data, time.time()),
            )
        return {"name": name, "version": version, "size": len(data), "sha256": sha}

    def list_models(self, tenant: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT name, version, size_bytes, sha256, published_at FROM models WHERE tenant = ?"
                " ORDER BY name, published_at",
                (tenant,),
            ).fetchall()
        return [
            {
                "name": name,
                "version": version,
                "size": size,
                "sha256": sha,
                "url": f"/v1/tenants/{tenant}/models/{name}/{version}/bundle",
                "publishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(published)),
            }
            for name, version, size, sha, published in rows
        ]

    def bundle_info(self, tenant: str, name: str, version: str) -> tuple[int, str] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT size_bytes, sha256 FROM models WHERE tenant = ? AND name = ? AND version = ?",
                (tenant, name, version),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def bundle_bytes(self, tenant: str, name: str, version: str, start: int, length: int) -> bytes:
        with self.lock:
            row = self.conn.execute(
                "SELECT substr(data, ?, ?) FROM models WHERE tenant = ? AND name = ? AND version = ?",
                (start + 1, length, tenant, name, version),
            ).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    def report_models(self, tenant: str, device_id: str, models: list[dict[str, Any]]) -> None:
        """Replace what ``device_id`` runs with ``models`` (one transaction)."""
        now = time.time()
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(
                    "DELETE FROM device_models WHERE tenant = ? AND device_id = ?", (tenant, device_id)
                )
                self.conn.executemany(
                    "INSERT OR REPLACE INTO device_models (tenant, device_id, name, version, previous, source,"
                    " reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            tenant,
                            device_id,
                            m["name"],
                            m.get("version"),
                            m.get("previous"),
                            m.get("source"),
                            now,
                        )
                        for m in models
                    ],
                )
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def device_models(self, tenant: str, device_id: str) -> dict[str, Any] | None:
        with self.lock:
            rows = self.conn.execute(
                "SELECT name, version, previous, source, reported_at FROM device_models"
                " WHERE tenant = ? AND device_id = ? ORDER BY name",
                (tenant, device_id),
            ).fetchall()
        if not rows:
            return None
        return {
            "deviceId": device_id,
            "models": [{"name": n, "version": v, "previous": p, "source": s} for n, v, p, s, _ in rows],
            "reportedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(r[4] for r in rows))),
        }

    def stats(self, tenant: str | None) -> dict[str, Any]:
        where, params = ("WHERE tenant = ?", (tenant,)) if tenant else ("", ())
        with self.lock:
            results = self.conn.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT job_id) FROM results {where}", params
            ).fetchone()
            devices = dict(
                self.conn.execute(
                    f"SELECT device_id, COUNT(*) FROM results {where} GROUP BY device_id", params
                ).fetchall()
            )
            images = self.conn.execute(f"SELECT COUNT(*) FROM images {where}", params).fetchone()[0]
            counters = dict(self.counters)
            requests = dict(self.requests)
        return {
            "results": results[0],
            "distinctJobs": results[1],
            "byDevice": devices,
            "images": images,
            "replies": counters,
            "requests": requests,
        }


# -- faults ----------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # status | delay | drop | hang | truncate | lie
    count: int = 1  # -1 = until cleared
    status: int = 500
    retry_after: str | None = None  # "5" or "date:5"
    seconds: float = 0.0  # delay length; hang: 0 = until the server stops
    phase: str = "before"  # delay: before or after the commit
    path: str = "results"  # results | images | jobs | models | hard | any
    bytes: int = 0  # truncate: body bytes sent before closing; lie: bytes added to the stated length

    def __post_init__(self) -> None:
        if self.kind not in ("status", "delay", "drop", "hang", "truncate", "lie"):
            raise ValueError(
                f"fault kind: expected status, delay, drop, hang, truncate or lie, got {self.kind!r}"
            )
        if self.path not in ("results", "images", "jobs", "models", "hard", "any"):
            raise ValueError(
                f"fault path: expected results, images, jobs, models, hard or any, got {self.path!r}"
            )

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``kind=status,status=503,count=2,retry_after=date:3``"""
        values: dict[str, Any] = {}
        for part in filter(None, spec.split(",")):
            key, _, value = part.partition("=")
            values[key.strip()] = value.strip()
        for key, typ in (("count", int), ("status", int), ("seconds", float), ("bytes", int)):
            if key in values:
                values[key] = typ(values[key])
        return cls(**values)

    def retry_after_header(self) -> str | None:
        if self.retry_after is None:
            return None
        if self.retry_after.startswith("date:"):
            return email.utils.formatdate(time.time() + float(self.retry_after[5:]), usegmt=True)
        return self.retry_after


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._queue.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, path: str) -> Fault | None:
        """The first fault matching ``path``; its count goes down by one."""
        with self._lock:
            for fault in self._queue:
                if fault.path in (path, "any"):
                    if fault.count > 0:
                        fault.count -= 1
                    if fault.count == 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._queue]


@dataclass
class Settings:
    api_keys: set[str] = field(default_factory=set)  # empty = no auth (demo only)
    max_body_bytes: int = 8_000_000
    max_batch_items: int = 5000
    strict: bool = False  # refuse a whole batch (422) when one item is invalid


# -- HTTP ------------------------------------------------------------------------------------------



def _batch_items(body: bytes) -> list[dict]:
    """The ``items`` of a ``{"items": [...]}`` upload, each an object with a non-empty idempotencyKey
    (raises ValueError / KeyError / TypeError naming what is wrong)."""
    items = json.loads(body)["items"]
    if not isinstance(items, list) or not items:
        raise ValueError("items must be a non-empty list")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("idempotencyKey"), str):
            raise ValueError(f"items[{n}] is not an object with an idempotencyKey string")
        if not item["idempotencyKey"]:
            raise ValueError(f"items[{n}].idempotencyKey is empty")
    return items

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes; with Nagle on, a keep-alive client's delayed ACK holds the
    # body back ~40 ms per request
    disable_nagle_algorithm = True
    server: ReferenceHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # request line only, never headers
        log.debug("%s %s", self.address_string(), format % args)

    # routing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def __getattr__(self, name: str) -> Any:
        """Any other method (OPTIONS, PATCH, TRACE, QUERY, …): 405 with Allow on an API path, 404
        elsewhere, in the API's JSON shape (http.server would answer 501 in HTML)."""
        if name.startswith("do_"):
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/_admin/"):
                return self._admin(method, path, query)
            if path == "/healthz":
                return self._json(200, {"status": "ok"})
            self._api(method, path, query)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _api(self, method: str, path: str, query: dict[str, str]) -> None:
        area = (
            "results"
            if RESULTS_RE.match(path)
            else "images"
            if IMAGE_RE.match(path)
            else "models"
            if MODELS_RE.match(path) or BUNDLE_RE.match(path) or DEVICE_MODELS_RE.match(path)
            else "hard"
            if HARD_RE.match(path)
            else "jobs"
        )
        body = self._read_body()
        if body is None:
            return
        self.server.upstream.count_request(area)
        fault = self.server.faults.take(area)
        if fault is not None and self._apply_fault_before(fault):
            return
        if not self._authorized():
            return
        routes = (
            ("POST", RESULTS_RE, self._post_results),
            ("HEAD", IMAGE_RE, self._head_image),
            ("PUT", IMAGE_RE, self._put_image),
            ("GET", JOB_RE, self._get_job),
            ("GET", JOBS_RE, self._list_jobs),
            ("GET", MODELS_RE, self._list_models),
            ("GET", BUNDLE_RE, self._get_bundle),
            ("HEAD", BUNDLE_RE, self._get_bundle),
            ("PUT", DEVICE_MODELS_RE, self._put_device_models),
            ("GET", DEVICE_MODELS_RE, self._get_device_models),
            ("POST", HARD_RE, self._post_hard),
            ("GET", HARD_RE, self._list_hard),
        )
        allowed = []
        for verb, pattern, handler in routes:
            match = pattern.match(path)
            if match and verb == method:
                return handler(*match.groups(), body=body, query=query, fault=fault)
            if match:
                allowed.append(verb)
        if allowed:
            return self._json(
                405,
                {
                    "error": {
                        "code": "method_not_allowed",
                        "message": f"{method} {path}: use {' or '.join(allowed)}",
                    }
                },
                {"Allow": ", ".join(allowed)},
            )
        self._json(404, {"error": {"code": "not_found", "message": f"no route for {method} {path}"}})

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if length > self.server.settings.max_body_bytes:
            self._json(
                413,
                {
                    "error": {
                        "code": "payload_too_large",
                        "message": f"body over {self.server.settings.max_body_bytes} bytes",
                    }
                },
            )
            return None
        return body

    def _apply_fault_before(self, fault: Fault) -> bool:
        """True when the fault answered (or swallowed) the request."""
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after_header()} if fault.retry_after else {}
            self._json(
                fault.status, {"error": {"code": "injected", "message": f"injected {fault.status}"}}, headers
            )
            return True
        if fault.kind == "hang":
            self.server.stopping.wait(fault.seconds or None)
            self.close_connection = True
            return True
        if fault.kind == "delay" and fault.phase == "before":
            time.sleep(fault.seconds)
        return False

    def _after_commit(self, fault: Fault | None) -> bool:
        """True when the answer must be dropped."""
        if fault is None:
            return False
        if fault.kind == "delay" and fault.phase == "after":
            time.sleep(fault.seconds)
        if fault.kind == "drop":
            self.close_connection = True
            return True
        return False

    def _authorized(self) -> bool:
        keys = self.server.settings.api_keys
        if not keys:
            return True
        header = self.headers.get("Authorization") or ""
        if header.startswith("Bearer ") and header[7:] in keys:
            return True
        self._json(
            401,
            {"error": {"code": "unauthorized", "message": "missing or unknown API key"}},
            {"WWW-Authenticate": "Bearer"},
        )
        return False

    # API handlers
    def _post_results(self, tenant: str, *, body: bytes, query: dict[str, str], fault: Fault | None) -> None:
        try:
            items = _batch_items(body)
        except (ValueError, KeyError, TypeError) as exc:
            return self._json(
                400, {"error": {"code": "invalid_batch", "message": f"expected {{'items': [...]}}: {exc}"}}
            )
        if len(items) > self.server.settings.max_batch_items:
            return self._json(
                413,
                {
                    "error": {
                        "code": "too_many_items",
                        "message": f"at most {self.server.settings.max_batch_items} items",
                    }
                },
            )
        try:
            replies = self.server.upstream.ingest(tenant, items, self.server.settings.strict)
        except ItemInvalid as exc:
            return self._json(422, {"error": {"code": exc.code, "message": str(exc)}})
        if not self._after_commit(fault):
            self._json(200, {"results": replies})

    def _head_image(self, tenant: str, sha256: str, **_: Any) -> None:
        self._json(200 if self.server.upstream.has_image(tenant, sha256) else 404, None)

    def _put_image(
        self, tenant: str, sha256: str, *, body: bytes, query: dict[str, str], fault: Fault | None
    ) -> None:
        if not SHA256_RE.match(sha256) or hashlib.sha256(body).hexdigest() != sha256:
            return self._json(
                422, {"error": {"code": "hash_mismatch", "message": "body sha256 does not match the path"}}
            )
        media_type = self.headers.get("Content-Type") or "application/octet-stream"
        privacy = self.headers.get("X-Edgecv-Privacy")
        created = self.server.upstream.put_image(tenant, sha256, media_type, body, privacy)
        if not self._after_commit(fault):
            self._json(
                201 if created else 200, {"sha256": sha256, "status": "created" if created else "duplicate"}
            )

    def _get_job(self, tenant: str, job_id: str, **_: Any) -> None:
        job = self.server.upstream.get_job(tenant, job_id)
        if job is None:
            return self._json(
                404, {"error": {"code": "job_not_found", "message": f"job {job_id} does not exist"}}
            )
        self._json(200, job)

    def _list_jobs(self, tenant: str, *, query: dict[str, str], **_: Any) -> None:
        try:
            self._json(200, self.server.upstream.list_jobs(tenant, query))
        except ValueError as exc:
            self._json(400, {"error": {"code": "invalid_query", "message": str(exc)}})

    def _post_hard(self, tenant: str, *, body: bytes, fault: Fault | None = None, **_: Any) -> None:
        try:
            items = _batch_items(body)
        except (ValueError, KeyError, TypeError) as exc:
            return self._json(
                400, {"error": {"code": "invalid_batch", "message": f"expected {{'items': [...]}}: {exc}"}}
            )
        replies = self.server.upstream.ingest_hard(tenant, items)
        if not self._after_commit(fault):
            self._json(200, {"results": replies})

    def _list_hard(self, tenant: str, **_: Any) -> None:
        self._json(200, {"data": self.server.upstream.hard_items(tenant)})

    def _list_models(self, tenant: str, **_: Any) -> None:
        self._json(200, {"models": self.server.upstream.list_models(tenant)})

    def _get_bundle(
        self, tenant: str, name: str, version: str, *, fault: Fault | None = None, **_: Any
    ) -> None:
        """The bundle's bytes; ``Range: bytes=N-[M]`` gives 206 with Content-Range (416 past the end),
        ``If-Range`` with another ETag gives the whole file. Faults: ``truncate`` closes after ``bytes``
        body bytes; ``lie`` states ``bytes`` more than it has and pads the body with zeros."""
        info = self.server.upstream.bundle_info(tenant, name, version)
        if info is None:
            return self._json(
                404, {"error": {"code": "model_not_found", "message": f"no bundle {name} {version}"}}
            )
        size, sha = info
        etag = f'"{sha}"'
        start, end, status = 0, size - 1, 200
        match = RANGE_RE.match(self.headers.get("Range") or "")
        if_range = self.headers.get("If-Range")
        if match and (if_range is None or if_range == etag):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size or end < start:
                return self._json(
                    416,
                    {"error": {"code": "range_not_satisfiable", "message": f"the bundle has {size} bytes"}},
                    {"Content-Range": f"bytes */{size}"},
                )
            status = 206
        length = end - start + 1
        pad = fault.bytes if fault is not None and fault.kind == "lie" else 0
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Type": "application/octet-stream"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end + pad}/{size + pad}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length + pad))
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = fault.bytes if fault is not None and fault.kind == "truncate" else None
        sent, chunk = 0, 1 << 20
        while sent < length:
            take = min(chunk, length - sent) if limit is None else min(chunk, length - sent, limit - sent)
            if take <= 0:
                break
            self.wfile.write(self.server.upstream.bundle_bytes(tenant, name, version, start + sent, take))
            sent += take
        if limit is not None and sent < length:
            self.wfile.flush()
            self.close_connection = True
            return
        if pad:
            self.wfile.write(b"\0" * pad)

    def _put_device_models(self, tenant: str, device_id: str, *, body: bytes, **_: Any) -> None:
        try:
            models = parse_model_report(json.loads(body) if body else None)
        except ValueError as exc:
            return self._json(400, {"error": {"code": "invalid_report", "message": str(exc)}})
        self.server.upstream.report_models(tenant, device_id, models)
        self._json(
            200,
            self.server.upstream.device_models(tenant, device_id) or {"deviceId": device_id, "models": []},
        )

    def _get_device_models(self, tenant: str, device_id: str, **_: Any) -> None:
        doc = self.server.upstream.device_models(tenant, device_id)
        if doc is None:
            return self._json(
                404,
                {"error": {"code": "device_not_found", "message": f"device {device_id} reported nothing"}},
            )
        self._json(200, doc)

    # admin
    def _admin(self, method: str, path: str, query: dict[str, str]) -> None:
        body = self._read_body()
        if body is None:
            return
        if path == "/_admin/models" and method == "POST":  # body: the bundle file itself
            try:
                return self._json(
                    200, self.server.upstream.publish_bundle(query.get("tenant", "local"), body)
                )
            except ValueError as exc:
                return self._json(400, {"error": {"code": "invalid_bundle", "message": str(exc)}})
        doc = json.loads(body) if body else {}
        if path == "/_admin/faults" and method == "POST":
            items = doc if isinstance(doc, list) else [doc]
            try:
                self.server.faults.add([Fault(**f) for f in items])
            except (TypeError, ValueError) as exc:
                return self._json(400, {"error": {"code": "invalid_fault", "message": str(exc)}})
            return self._json(200, {"faults": self.server.faults.pending()})
        if path == "/_admin/faults" and method == "DELETE":
            self.server.faults.clear()
            return self._json(200, {"faults": []})
        if path == "/_admin/faults" and method == "GET":
            return self._json(200, {"faults": self.server.faults.pending()})
        if path == "/_admin/settings" and method == "PUT":
            return self._json(200, self.server.update_settings(doc))
        if path == "/_admin/stats" and method == "GET":
            return self._json(200, self.server.upstream.stats(query.get("tenant")))
        self._json(404, {"error": {"code": "not_found", "message": f"no admin route {method} {path}"}})

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if doc is None else json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(
            status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class ReferenceHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], upstream: Upstream, settings: Settings, faults: Faults
    ) -> None:
        super().__init__(address, Handler)
        self.upstream, self.settings, self.faults = upstream, settings, faults
        self.stopping = threading.Event()

    def update_settings(self, doc: dict[str, Any]) -> dict[str, Any]:
        if "apiKeys" in doc:
            self.settings.api_keys = set(doc["apiKeys"])
        if "maxBodyBytes" in doc:
            self.settings.max_body_bytes = int(doc["maxBodyBytes"])
        if "maxBatchItems" in doc:
            self.settings.max_batch_items = int(doc["maxBatchItems"])
        if "strict" in doc:
            self.settings.strict = bool(doc["strict"])
        s = self.settings
        return {
            "apiKeys": len(s.api_keys),
            "maxBodyBytes": s.max_body_bytes,
            "maxBatchItems": s.max_batch_items,
            "strict": s.strict,
        }


class ReferenceServer:
    """The server in a background thread, for tests and benchmarks: ``with ReferenceServer(db) as srv``."""

    def __init__(
        self,
        db_path: str | Path = ":memory:",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Settings | None = None,
        faults: list[Fault] | None = None,
    ) -> None:
        self.faults = Faults()
        self.faults.add(list(faults or []))
        self.httpd = ReferenceHTTPServer(
            (host, port), Upstream(str(db_path)), settings or Settings(), self.faults
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def upstream(self) -> Upstream:
        return self.httpd.upstream

    def start(self) -> ReferenceServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="sync-reference-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def publish(self, bundle: str | Path, tenant: str = "local") -> dict[str, Any]:
        """Add a signed model bundle file to ``tenant``'s model catalogue (``GET …/models``)."""
        return self.upstream.publish_bundle(tenant, Path(bundle).read_bytes())

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 = any free port (printed on start)")
    parser.add_argument("--db", default="upstream.db", help="SQLite file (':memory:' for a throwaway one)")
    parser.add_argument("--api-key", action="append", default=[], help="accepted bearer key (repeatable)")
    parser.add_argument("--max-body-bytes", type=int, default=Settings.max_body_bytes)
    parser.add_argument("--max-batch-items", type=int, default=Settings.max_batch_items)
    parser.add_argument(
        "--strict", action="store_true", help="refuse a whole batch (422) on one invalid item"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. kind=status,status=503,count=2,retry_after=date:3 (repeatable, applied in order)",
    )
    parser.add_argument(
        "--bundle", action="append", default=[], metavar="FILE", help="publish a model bundle (repeatable)"
    )
    parser.add_argument("--bundle-tenant", default="local", help="the tenant --bundle files are published to")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )
    settings = Settings(set(args.api_key), args.max_body_bytes, args.max_batch_items, args.strict)
    try:
        faults = [Fault.parse(spec) for spec in args.fault]
    except (TypeError, ValueError) as exc:
        parser.error(f"--fault: {exc}")
    server = ReferenceServer(args.db, host=args.host, port=args.port, settings=settings, faults=faults)
    for bundle in args.bundle:
        try:
            published = server.publish(bundle, args.bundle_tenant)
        except (OSError, ValueError) as exc:
            parser.error(f"--bundle {bundle}: {exc}")
        log.info("published %s %s for tenant %s", published["name"], published["version"], args.bundle_tenant)
    if not settings.api_keys:
        log.warning("no --api-key given: authentication is off")
    print(f"listening on {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.stopping.set()
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

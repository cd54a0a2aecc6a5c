"""The Python SDK for the CV Jobs API: the same code talks to a local edgecv agent and to the cloud.

    from edgecv.client import Client

    tenant = Client("http://127.0.0.1:8470", api_key=None).tenant("local")
    obs = tenant.observations.create("shelf.jpg", metadata={"store": "S12"})
    job = tenant.cv.start(observation_id=obs.id, model="shelf-detection-v2")
    job = tenant.cv.wait_for_completion(job.id, timeout=60)
    for d in job.result.detections:
        print(d.object_name, d.confidence, d.bounding_box)

Errors: :class:`~edgecv.errors.ApiError` (``status``, ``code``, message from the server), its
subclasses ``ApiAuthError`` (401/403) and ``ApiNotFound`` (404), and ``WaitTimeout``.
Webhook receivers check requests with :func:`verify_webhook`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from edgecv.errors import ApiAuthError, ApiError, ApiNotFound, WaitTimeout
from edgecv.signing import verify as _verify

log = logging.getLogger(__name__)

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiNotFound",
    "BoundingBox",
    "Client",
    "Detection",
    "Job",
    "JobError",
    "JobResult",
    "Observation",
    "Page",
    "WaitTimeout",
    "verify_webhook",
]


# -- typed results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundingBox:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Detection:
    object_name: str
    confidence: float
    bounding_box: BoundingBox
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Detection:
        box = d.get("boundingBox") or {}
        return cls(
            object_name=d.get("objectName", ""),
            confidence=float(d.get("confidence", 0.0)),
            bounding_box=BoundingBox(
                int(box.get("x", 0)),
                int(box.get("y", 0)),
                int(box.get("width", 0)),
                int(box.get("height", 0)),
            ),
            attributes=dict(d.get("attributes") or {}),
        )


@dataclass(frozen=True)
class JobResult:
    detections: list[Detection]
    summary: dict[str, Any]
    # the scene check ({"scene", "score", "threshold", "inDomain"}); None when the model names no domain
    domain: dict[str, Any] | None = None

    @property
    def in_domain(self) -> bool:
        """False when the image did not look like the model's domain (then no detector ran)."""
        return self.domain is None or bool(self.domain.get("inDomain", True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobResult:
        domain = d.get("domain")
        return cls(
            [Detection.from_dict(x) for x in d.get("detections") or []],
            dict(d.get("summary") or {}),
            dict(domain) if isinstance(domain, Mapping) else None,
        )


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    model: str
    observation_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    result: JobResult | None = None
    error: JobError | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        err = d.get("error")
        return cls(
            id=d["id"],
            status=d["status"],
            model=d.get("model", ""),
            observation_id=d.get("observationId"),
            created_at=d.get("createdAt"),
            started_at=d.get("startedAt"),
            completed_at=d.get("completedAt"),
            result=JobResult.from_dict(d["result"]) if d.get("result") else None,
            error=JobError(err.get("code", ""), err.get("message", "")) if isinstance(err, Mapping) else None,
            raw=dict(d),
        )


@dataclass(frozen=True)
class Observation:
    id: str
    sha256: str | None = None
    original_name: str | None = None
    media_type: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    job: Job | None = None  # queued by ``create(..., model=…)``
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        return cls(
            id=d["id"],
            sha256=d.get("sha256"),
            original_name=d.get("originalName"),
            media_type=d.get("mediaType"),
            size_bytes=d.get("sizeBytes"),
            width=d.get("width"),
            height=d.get("height"),
            metadata=dict(d.get("metadata") or {}),
            created_at=d.get("createdAt"),
            job=Job.from_dict(d["job"]) if d.get("job") else None,
            raw=dict(d),
        )


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


# -- transport -----------------------------------------------------------------------------------------


class Client:
    """``Client(base_url, api_key)``; ``api_key`` is sent as ``Authorization: Bearer …`` (None: no header)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["user-agent"] = "edgecv-client"
        if api_key:
            self.session.headers["authorization"] = f"Bearer {api_key}"

    def tenant(self, tenant_id: str) -> Tenant:
        return Tenant(self, tenant_id)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request; raise ApiError (or a subclass) for any non-2xx answer."""
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.request(method, url, timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except requests.RequestException as exc:
            raise ApiError(f"{method} {url} failed: {exc}", code="connection_error") from exc
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_from(resp: requests.Response) -> ApiError:
    code, message = "http_error", resp.text[:300] or resp.reason
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code, message = str(err.get("code", code)), str(err.get("message", message))
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
        elif isinstance(body.get("message"), str):
            message = body["message"]
    text = f"HTTP {resp.status_code} from {resp.request.method} {resp.url}: {message}"
    if resp.status_code in (401, 403):
        return ApiAuthError(text, status=resp.status_code, code=code)
    if resp.status_code == 404:
        return ApiNotFound(text, status=resp.status_code, code=code)
    return ApiError(text, status=resp.status_code, code=code)


class Tenant:
    def __init__(self, client: Client, tenant_id: str) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.prefix = f"/v1/tenants/{quote(tenant_id, safe='')}"
        self.cv = CvJobs(self)
        self.observations = Observations(self)


def _page_items(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Accept the common list envelopes: ``data``/``items``/``jobs`` + ``nextCursor``/``next_cursor``."""
    items = next((body[k] for k in ("data", "items", "jobs") if isinstance(body.get(k), list)), [])
    cursor = body.get("nextCursor", body.get("next_cursor"))
    return items, cursor or None


class CvJobs:
    def __init__(self, tenant: Tenant) -> None:
        self._t = tenant

    def _path(self, suffix: str = "") -> str:
        return f"{self._t.prefix}/cv/jobs{suffix}"

    def start(self, *, observation_id: str, model: str) -> Job:
        resp = self._t.client.request(
            "POST", self._path(), json={"observationId": observation_id, "model": model}
        )
        return Job.from_dict(resp.json())

    def get(self, job_id: str) -> Job:
        return Job.from_dict(self._t.client.request("GET", self._path(f"/{quote(job_id, safe='')}")).json())

    def list_page(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        params = {
            k: v for k, v in {"status": status, "model": model, "limit": limit, "cursor": cursor}.items() if v
        }
        body = self._t.client.request("GET", self._path(), params=params).json()
        items, next_cursor = _page_items(body)
        return Page([Job.from_dict(x) for x in items], next_cursor)

    def list(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages of ``page_size`` as you iterate."""
        while True:
            page = self.list_page(status=status, model=model, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor or not page.jobs:
                return
            cursor = page.next_cursor

    def wait_for_completion(
        self,
        job_id: str,
        *,
        timeout: float = 60.0,
        initial_delay: float = 0.5,
        max_delay: float = 10.0,
        factor: float = 2.0,
    ) -> Job:
        """Poll until the job is ``completed`` or ``failed`` (returned either way; check ``.status``).

        Waits ``initial_delay``, then ``× factor`` each poll up to ``max_delay``; raises WaitTimeout after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = initial_delay
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout:g} s")
            time.sleep(min(delay, left))
            delay = min(max_delay, delay * factor)


class Observations:
    def __init__(self, tenant: Tenant) -> None:
        self._t = tenant

    def create(
        self,
        path_or_bytes: str | Path | bytes,
        *,
        metadata: Mapping[str, Any] | None = None,
        model: str | None = None,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> Observation:
        """Upload an image (a path or its bytes). With ``model`` the server also queues a job (``.job``)."""
        import json

        if isinstance(path_or_bytes, (str, Path)):
            path = Path(path_or_bytes)
            data = path.read_bytes()
            filename = filename or path.name
        else:
            data = bytes(path_or_bytes)
            filename = filename or "upload"
        form: dict[str, str] = {}
        if metadata:
            form["metadata"] = json.dumps(dict(metadata))
        if model:
            form["model"] = model
        resp = self._t.client.request(
            "POST",
            f"{self._t.prefix}/observations",
            files={"file": (filename, data, content_type)},
            data=form,
        )
        return Observation.from_dict(resp.json())

    def get(self, observation_id: str) -> Observation:
        path = f"{self._t.prefix}/observations/{quote(observation_id, safe='')}"
        return Observation.from_dict(self._t.client.request("GET", path).json())

    def image(self, observation_id: str) -> bytes:
        path = f"{self._t.prefix}/observations/{quote(observation_id, safe='')}/image"
        return self._t.client.request("GET", path).content


def verify_webhook(
    body: bytes | str, headers: Mapping[str, str], secret: str, *, tolerance_s: int = 300
) -> dict[str, Any]:
    """Check a received webhook's Standard Webhooks signature and return its parsed JSON body.

    Raises :class:`~edgecv.errors.WebhookVerificationError` when it is not genuine or too old."""
    import json

    _verify(body, headers, secret, tolerance_s=tolerance_s)
    return json.loads(body)

"""Wire shapes of the local API (the CV Jobs API, camelCase), as pydantic models for the OpenAPI document
and request validation. Responses are built from ``Job.to_dict()`` and friends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "processing", "completed", "failed"]
EventName = Literal["job.completed", "job.failed"]

ID_PATTERN = r"^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# what edgecv.webhook_delivery.check_url accepts, as a pattern a client or fuzzer can see: http(s), an
# ASCII user part, a host name or IPv4 address (IPv6 literals are not accepted here), a port 0..65535
WEBHOOK_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~%!$&'()*+,;=:-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*"
    rf"(:{_PORT})?([/?#][^\s]*)?$"
)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class BoundingBox(BaseModel):
    x: int
    y: int
    width: int
    height: int


class Detection(BaseModel):
    model_config = ConfigDict(extra="allow")
    objectName: str
    confidence: float
    boundingBox: BoundingBox
    attributes: dict[str, Any] = {}


class DomainCheck(BaseModel):
    """The scene check's verdict (``edgecv.runtime.scene``); inDomain false: no detector ran."""

    scene: Literal["retail", "facade", "surface"]
    score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    inDomain: bool


class ImagePrivacy(BaseModel):
    """How the job's image leaves the device (``[privacy] faces``); detections used the original."""

    faces: Literal["blur", "box", "off"]


class JobResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    detections: list[Detection]
    summary: dict[str, Any]
    domain: DomainCheck | None = None
    privacy: ImagePrivacy | None = None


class JobOut(BaseModel):
    id: str
    status: JobStatus
    model: str
    modelVersion: str | None = None
    observationId: str
    createdAt: str
    startedAt: str | None
    completedAt: str | None
    error: ErrorDetail | None
    result: JobResult | None


class JobPage(BaseModel):
    data: list[JobOut]
    nextCursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
    hasMore: bool


class StartJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    observationId: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128)


class FlagJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500, description="Why the image is flagged.")


class FlagOut(BaseModel):
    jobId: str
    observationId: str
    reason: str = Field(
        description="flagged (or low_confidence, out_of_domain, price_mismatch before a flag)"
    )
    detail: str | None
    keptAt: str
    sizeBytes: int


class ObservationOut(BaseModel):
    id: str
    sha256: str
    originalName: str
    mediaType: str
    sizeBytes: int
    width: int
    height: int
    metadata: dict[str, Any]
    createdAt: str
    jobs: list[JobOut] = []


class ObservationCreated(ObservationOut):
    job: JobOut | None = Field(None, description="The job queued for `model`, when one was given.")


class ModelOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    description: str
    useCase: str


class ModelList(BaseModel):
    data: list[ModelOut]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=WEBHOOK_URL_PATTERN,
        description="Absolute http(s) URL that receives the events.",
    )
    events: list[EventName] = Field(default=["job.completed", "job.failed"], min_length=1)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    source: Literal["config", "api"]
    createdAt: str
    secret: str | None = Field(None, description="whsec_… signing secret; returned only when created.")


class WebhookList(BaseModel):
    data: list[WebhookOut]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class CatalogSku(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    images: list[str]
    expectedPrice: float | None = None
    currency: str | None = None


class CatalogList(BaseModel):
    version: str
    skus: int
    references: int
    data: list[CatalogSku]


class CatalogProblem(BaseModel):
    sku: str | None
    path: str | None
    message: str
    severity: Literal["error", "warning"]


class CatalogCheck(BaseModel):
    version: str
    skus: int
    references: int
    problems: list[CatalogProblem]


class CatalogCandidate(BaseModel):
    sku: str
    name: str
    score: float
    appearance: float | None = None  # the embedding's similarity alone (when keypoints were checked)
    keypointVotes: int | None = None  # photo keypoints matching this SKU's references


class CatalogMatch(BaseModel):
    model_config = ConfigDict(extra="allow")
    file: str
    sku: str | None = None
    name: str | None = None
    score: float | None = None
    candidates: list[CatalogCandidate] = []
    error: ErrorDetail | None = None


class CatalogMatches(BaseModel):
    data: list[CatalogMatch]

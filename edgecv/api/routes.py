"""HTTP routes: parse the request, call one library function, shape the response. No business rules."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile

from edgecv.api import schemas
from edgecv.api.auth import is_loopback, token_matches
from edgecv.api.document import agent_document
from edgecv.api.state import ApiState, error_response, state
from edgecv.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFound,
    DiskFull,
    JobNotFound,
    ModelNotFound,
    ObservationNotFound,
    PrivacyError,
)
from edgecv.privacy import PRIVACY_HEADER, privacy_header
from edgecv.records import check_wire_json
from edgecv.signing import generate_secret
from edgecv.store import webhooks as webhook_sql
from edgecv.webhook_delivery import check_url

log = logging.getLogger(__name__)

JOB_ID = r"^job_[0-9A-HJKMNP-TV-Z]{26}$"
UPLOAD_FIELDS = ("file", "metadata", "model")
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/bmp", "image/webp", "application/octet-stream")
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 32  # nested objects/arrays; deeper JSON would exhaust the parser's recursion
MAX_MODEL_NAME = 128

_bearer = HTTPBearer(auto_error=False, description="Required when the agent has an api.token.")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    token = state(request).config.api.token
    if token and not token_matches(request.headers.get("authorization"), token):
        raise ApiAuthError("missing or wrong bearer token (Authorization: Bearer <api.token>)", status=401)


def require_json(request: Request) -> None:
    """A JSON body must be sent as JSON; otherwise FastAPI's answer would not name the content type."""
    content_type = request.headers.get("content-type", "")
    main = content_type.split(";")[0].strip().lower()
    if main != "application/json" and not (main.startswith("application/") and main.endswith("+json")):
        raise ApiError(
            f"send the body as JSON with Content-Type: application/json (got {content_type or 'no content type'!r})",
            status=415,
            code="unsupported_media_type",
        )


def require_multipart(request: Request, parts: str) -> None:
    """An upload must be multipart/form-data; otherwise 415 naming what was sent and what to send."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            f"expected multipart/form-data with {parts}, got {content_type or 'no content type'!r}",
            status=415,
            code="unsupported_media_type",
        )


def require_tenant(request: Request, tenantId: str) -> ApiState:
    st = state(request)
    if tenantId != st.config.tenant_id:
        raise ApiNotFound(
            f"tenant {tenantId!r} is not served by this agent", status=404, code="tenant_not_found"
        )
    return st


Tenant = Annotated[ApiState, Depends(require_tenant)]
_ERR = {"model": schemas.ErrorBody}
_GUARD = {400: _ERR, 403: _ERR}  # edgecv.api.app.BrowserGuard: Host not allowed, cross-site browser request
tenant_router = APIRouter(
    prefix="/v1/tenants/{tenantId}",
    dependencies=[Depends(require_token)],
    responses={400: _ERR, 401: _ERR, 404: _ERR, 409: _ERR, 413: _ERR, 415: _ERR, 422: _ERR},
)
ops_router = APIRouter()


def _installed_names(st: ApiState) -> str:
    return ", ".join(sorted(st.models())) or "none"


def _check_model(st: ApiState, model: str) -> None:
    if model not in st.models():
        raise ModelNotFound(
            f"model {model!r} is not installed here; installed: {_installed_names(st)} (GET …/cv/models)"
        )


# -- jobs --------------------------------------------------------------------------------------------


@tenant_router.post(
    "/cv/jobs",
    operation_id="startJob",
    status_code=201,
    response_model=schemas.JobOut,
    responses={200: {"model": schemas.JobOut}},
    dependencies=[Depends(require_json)],
)
def start_job(st: Tenant, body: schemas.StartJob) -> JSONResponse:
    """Queue a job for an existing observation. The same observation and model give the same job (200)."""
    _check_model(st, body.model)
    try:
        job, created = st.store.create_job(body.observationId, body.model)
    except ObservationNotFound:
        raise ObservationNotFound(
            f"observation {body.observationId!r} does not exist; upload the image with "
            "POST …/observations first and use the id it returns"
        ) from None
    return JSONResponse(job.to_dict(), status_code=201 if created else 200)


@tenant_router.get("/cv/jobs/{id}", operation_id="getJob", response_model=schemas.JobOut)
def get_job(st: Tenant, id: str) -> JSONResponse:
    try:
        job = st.store.get_job(id)
    except JobNotFound:
        raise JobNotFound(f"job {id!r} does not exist; list jobs with GET …/cv/jobs") from None
    return JSONResponse(job.to_dict())


@tenant_router.get("/cv/jobs", operation_id="listJobs", response_model=schemas.JobPage)
def list_jobs(
    st: Tenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(pattern=JOB_ID, description="`nextCursor` of the previous page.")
    ] = None,
    status: schemas.JobStatus | None = None,
    model: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> JSONResponse:
    """Newest first. Keyset pagination: jobs created while you page never shift the pages still to come."""
    jobs, next_cursor = st.store.list_jobs(status=status, model=model, limit=limit, cursor=cursor)
    return JSONResponse(
        {"data": [j.to_dict() for j in jobs], "nextCursor": next_cursor, "hasMore": next_cursor is not None}
    )


@tenant_router.post(
    "/cv/jobs/{id}/flag",
    operation_id="flagJob",
    response_model=schemas.FlagOut,
    responses={404: _ERR, 409: _ERR},
    dependencies=[Depends(require_json)],
)
def flag_job(st: Tenant, id: str, body: schemas.FlagJob) -> JSONResponse:
    """Keep a completed job's image for labelling (`edgecv export --flagged`), whatever the sampling
    policy; 409 `cannot_keep` when the job is not completed, its image is gone or the kept images' disk
    share is used up. Flagging again replaces the reason."""
    from edgecv.hard_images import HardImages

    kept = HardImages(st.store, st.config, st.budget).flag(id, body.reason)
    return JSONResponse(
        {
            "jobId": kept.job_id,
            "observationId": kept.observation_id,
            "reason": kept.reason,
            "detail": kept.detail,
            "keptAt": kept.kept_at,
            "sizeBytes": kept.size_bytes,
        }
    )


# -- observations ------------------------------------------------------------------------------------


def _multipart_body(**properties: dict) -> dict:
    """The OpenAPI request body of a multipart upload: a required ``file`` part and the given fields, no
    others (the handlers refuse unknown fields with 422)."""
    schema = {"type": "object", "required": ["file"], "additionalProperties": False, "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


_UPLOAD_DOC = _multipart_body(
    file={"type": "string", "format": "binary", "description": "JPEG, PNG, BMP or WebP"},
    metadata={"type": "string", "description": "JSON object stored with the observation"},
    model={"type": "string", "description": "Also queue a job for this model"},
)


def _safe_name(filename: str | None) -> str:
    """The upload's file name as a label only: last path part, printable, at most 200 characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or "upload"


# a string (to its closing quote, or to the end when unterminated: never retried, so linear) or a bracket
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


def _json_depth(text: str) -> int:
    """How deep objects and arrays nest in a JSON text (brackets inside strings do not count), without
    parsing it: ``json.loads`` recurses once per level and fails with RecursionError near 1000."""
    depth = deepest = 0
    for token in _JSON_TOKEN.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _parse_metadata(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        raise ApiError(
            "metadata must be a text field with a JSON object", status=422, code="invalid_metadata"
        )
    size = len(raw.encode())
    if size > MAX_METADATA_BYTES:
        raise ApiError(
            f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} (64 KB) of JSON is accepted",
            status=422,
            code="invalid_metadata",
        )
    depth = _json_depth(raw)
    if depth > MAX_METADATA_DEPTH:
        raise ApiError(
            f"metadata nests objects/arrays {depth} levels deep; at most {MAX_METADATA_DEPTH} are accepted",
            status=422,
            code="invalid_metadata",
        )
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("metadata is not valid JSON", status=422, code="invalid_metadata") from None
    try:
        check_wire_json(value)
    except ValueError as exc:
        raise ApiError(f"metadata cannot be stored: {exc}", status=422, code="invalid_metadata") from None
    if not isinstance(value, dict):
        raise ApiError("metadata must be a JSON object", status=422, code="invalid_metadata")
    return value


@tenant_router.post(
    "/observations",
    operation_id="createObservation",
    status_code=201,
    response_model=schemas.ObservationCreated,
    openapi_extra=_UPLOAD_DOC,
    responses={413: _ERR, 415: _ERR},
)
async def create_observation(st: Tenant, request: Request) -> JSONResponse:
    """Upload one image (multipart field ``file``), optional ``metadata`` JSON and ``model`` to queue a job.

    Identical bytes are one observation: uploading them again returns the same id."""
    from edgecv.ingest import ingest_bytes

    require_multipart(request, "a 'file' part")
    # text parts may be as large as the body limit (BodyLimit answers 413 beyond it), so that the
    # field checks below, not the multipart parser's generic 400, answer an over-long metadata field
    max_part = st.config.api.max_upload_mb * 1024 * 1024
    async with request.form(max_files=1, max_fields=8, max_part_size=max_part) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                "multipart part 'file' with the image is required", status=422, code="file_missing"
            )
        unknown = sorted(set(form.keys()) - set(UPLOAD_FIELDS))
        if unknown:
            raise ApiError(
                f"unknown form field(s) {', '.join(map(repr, unknown))}; send {', '.join(UPLOAD_FIELDS)}",
                status=422,
                code="invalid_request",
            )
        part_type = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
        if part_type not in UPLOAD_TYPES:
            raise ApiError(
                f"file part has content type {part_type!r}; send one of {', '.join(UPLOAD_TYPES)}",
                status=415,
                code="unsupported_media_type",
            )
        metadata = _parse_metadata(form.get("metadata"))
        model = form.get("model") or None
        if model is not None:
            if not isinstance(model, str) or len(model) > MAX_MODEL_NAME:
                raise ApiError(
                    f"model must be a text field of at most {MAX_MODEL_NAME} characters (GET …/cv/models)",
                    status=422,
                    code="invalid_request",
                )
            _check_model(st, model)
        data = await upload.read()
        name = _safe_name(upload.filename)
    try:
        result = await run_in_threadpool(
            ingest_bytes,
            st.store,
            st.config,
            data,
            name=name,
            metadata=metadata,
            model=model,
            budget=st.budget,
        )
    except DiskFull:  # 507 with the message; intake pauses until space returns
        if st.budget is not None:
            st.budget.disk_full("an uploaded image")
        raise
    body = _observation_dict(st, result.observation)
    body["job"] = result.job.to_dict() if result.job else None
    return JSONResponse(body, status_code=201)


def _observation_dict(st: ApiState, observation: Any) -> dict[str, Any]:
    body = observation.to_dict()
    body["jobs"] = [j.to_dict() for j in st.store.jobs_for_observation(observation.id)]
    return body


def _observation(st: ApiState, id: str) -> Any:
    try:
        return st.store.get_observation(id)
    except ObservationNotFound:
        raise ObservationNotFound(f"observation {id!r} does not exist") from None


@tenant_router.get("/observations/{id}", operation_id="getObservation", response_model=schemas.ObservationOut)
def get_observation(st: Tenant, id: str) -> JSONResponse:
    return JSONResponse(_observation_dict(st, _observation(st, id)))


@tenant_router.get(
    "/observations/{id}/image",
    operation_id="getObservationImage",
    response_class=Response,
    responses={
        200: {
            "content": {"image/*": {}},
            "description": "The image bytes as uploaded to a client on this machine; to any other client with "
            "faces blurred (or blocked out) per [privacy] faces, re-encoded. The X-Edgecv-Privacy header says "
            "which, e.g. `detector=centerface; faces=blur; found=1`.",
        },
        403: _ERR,
        410: _ERR,
    },
)
def get_observation_image(st: Tenant, id: str, request: Request) -> Response:
    observation = _observation(st, id)
    spool = st.config.spool_dir.resolve()
    path = (st.config.data_dir / observation.spool_path).resolve()
    if not path.is_relative_to(spool) or not path.is_file():
        return error_response(410, "image_gone", f"the image of {id} is no longer in the spool (retention)")
    client = request.client.host if request.client is not None else ""
    if is_loopback(client) or not st.privacy.active:
        report = {"faces": "off"} if not st.privacy.active else {"client": "loopback", "faces": "original"}
        return FileResponse(
            Path(path), media_type=observation.media_type, headers={PRIVACY_HEADER: privacy_header(report)}
        )
    try:
        out = st.privacy.outgoing(path.read_bytes(), observation.media_type)
    except PrivacyError as exc:
        return error_response(403, exc.code, f"the image of {id} is not served to remote clients: {exc}")
    return Response(out.data, media_type=out.media_type, headers={PRIVACY_HEADER: privacy_header(out.report)})


# -- models --------------------------------------------------------------------------------------------

_PRIVATE_MODEL_KEYS = ("path",)


@tenant_router.get("/cv/models", operation_id="listModels", response_model=schemas.ModelList)
def list_models(st: Tenant) -> JSONResponse:
    """The model packages installed on this device (name, version, description, use case, labels …)."""
    data = []
    for name in sorted(st.models()):
        info = st.models()[name].to_dict()
        data.append({k: v for k, v in info.items() if k not in _PRIVATE_MODEL_KEYS})
    return JSONResponse({"data": data})


# -- catalogue -----------------------------------------------------------------------------------------

SKU_PATH = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
MAX_CATALOG_FILES = 20
_SKU_FIELDS = {
    "name": str,
    "currency": str,
    "gtin": str,
    "size": str,
    "expectedPrice": float,
    "heightMm": float,
}
_FILES = {
    "type": "array",
    "items": {"type": "string", "format": "binary"},
    "minItems": 1,
    "maxItems": MAX_CATALOG_FILES,
}
_CATALOG_UPLOAD_DOC = _multipart_body(
    file={**_FILES, "description": "Reference images (JPEG, PNG, WebP; 8 px or more)"},
    **{
        k: {"type": "number", "minimum": 0, "maximum": 1e8}
        if t is float
        else {"type": "string", "maxLength": 256}
        for k, t in _SKU_FIELDS.items()
    },
)
_MATCH_DOC = _multipart_body(
    file={**_FILES, "description": "Product photos; one result per part, in order"},
    top={"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
    model={"type": "string", "description": "Detector that finds the product"},
)


async def _catalog_form(st: ApiState, request: Request, fields: dict[str, type]) -> tuple[list, dict]:
    """(files [(name, bytes)], field values) of a multipart catalogue request; ApiError on a bad one."""
    require_multipart(request, "'file' parts")
    max_part = st.config.api.max_upload_mb * 1024 * 1024
    files, values = [], {}
    async with request.form(max_files=MAX_CATALOG_FILES, max_fields=16, max_part_size=max_part) as form:
        unknown = sorted(set(form.keys()) - set(fields) - {"file"})
        if unknown:
            raise ApiError(
                f"unknown form field(s) {', '.join(map(repr, unknown))}; send file, {', '.join(fields)}",
                status=422,
                code="invalid_request",
            )
        for key, value in form.multi_items():
            if key == "file":
                if not isinstance(value, UploadFile):
                    raise ApiError("'file' parts must be files", status=422, code="invalid_request")
                files.append((_safe_name(value.filename), await value.read()))
            elif key in fields:
                if not isinstance(value, str) or len(value) > 256:
                    raise ApiError(
                        f"{key} must be a text field of at most 256 characters",
                        status=422,
                        code="invalid_request",
                    )
                typ = fields[key]
                try:
                    values[key] = typ(value)
                except ValueError:
                    raise ApiError(
                        f"{key} must be a number, got {value!r}", status=422, code="invalid_request"
                    ) from None
                if typ is float and not (0 <= values[key] <= 1e8):
                    raise ApiError(f"{key} must be a non-negative number", status=422, code="invalid_request")
    return files, values


@tenant_router.get("/catalog", operation_id="getCatalog", response_model=schemas.CatalogList)
def get_catalog(st: Tenant) -> JSONResponse:
    """The catalogue's SKUs (id, name, reference images, expected price …) and its version."""
    from edgecv.catalog import service

    index, skus = service.list_skus(st.config)
    return JSONResponse({**index.describe(), "data": skus})


@tenant_router.get("/catalog/check", operation_id="checkCatalog", response_model=schemas.CatalogCheck)
def check_catalog(st: Tenant) -> JSONResponse:
    """Unusable images, malformed sku.json, duplicates and SKUs that look alike."""
    from edgecv.catalog import service

    index, problems = service.check_catalog(st.config)
    return JSONResponse({**index.describe(), "problems": [p.to_dict() for p in problems]})


@tenant_router.get("/catalog/skus/{sku}", operation_id="getSku", response_model=schemas.CatalogSku)
def get_sku(st: Tenant, sku: Annotated[str, Path_(pattern=SKU_PATH)]) -> JSONResponse:
    from edgecv.catalog import service

    body = service.show_sku(st.config, sku)
    body.pop("folder", None)
    return JSONResponse(body)


@tenant_router.post(
    "/catalog/skus/{sku}/images",
    operation_id="addSkuImages",
    status_code=201,
    response_model=schemas.CatalogSku,
    openapi_extra=_CATALOG_UPLOAD_DOC,
    responses={413: _ERR, 415: _ERR},
)
async def add_sku_images(
    st: Tenant, sku: Annotated[str, Path_(pattern=SKU_PATH)], request: Request
) -> JSONResponse:
    """Add reference images to SKU (created when new) and/or set its details (multipart fields). A running
    agent uses them within seconds."""
    from edgecv.catalog import service

    files, meta = await _catalog_form(st, request, _SKU_FIELDS)
    if not files:
        raise ApiError(
            "at least one multipart part 'file' with a reference image is required",
            status=422,
            code="file_missing",
        )
    entry = await run_in_threadpool(service.add_sku, st.config, sku, files, meta)
    body = service.show_sku(st.config, entry.id)
    body.pop("folder", None)
    return JSONResponse(body, status_code=201)


@tenant_router.delete(
    "/catalog/skus/{sku}", operation_id="deleteSku", status_code=204, response_class=Response
)
def delete_sku(st: Tenant, sku: Annotated[str, Path_(pattern=SKU_PATH)]) -> Response:
    from edgecv.catalog import service

    service.remove_sku(st.config, sku)
    return Response(status_code=204)


@tenant_router.post(
    "/catalog/match",
    operation_id="matchCatalog",
    response_model=schemas.CatalogMatches,
    openapi_extra=_MATCH_DOC,
    responses={413: _ERR, 415: _ERR},
)
async def match_catalog(st: Tenant, request: Request) -> JSONResponse:
    """The catalogue SKUs most like the product in each photo, best first, or "unknown product"."""
    from edgecv.catalog import service

    files, values = await _catalog_form(st, request, {"top": int, "model": str})
    if not files:
        raise ApiError(
            "at least one multipart part 'file' with a photo is required", status=422, code="file_missing"
        )
    top = values.get("top", 5)
    if not 1 <= top <= 100:
        raise ApiError("top must be 1..100", status=422, code="invalid_request")
    model = values.get("model")
    if model is not None:
        _check_model(st, model)
    data = await run_in_threadpool(
        service.match_files, st.config, files, top=top, model=model, detectors=st.detector_pool()
    )
    return JSONResponse({"data": data})


# -- webhooks ------------------------------------------------------------------------------------------


@tenant_router.post(
    "/webhooks",
    operation_id="createWebhook",
    status_code=201,
    response_model=schemas.WebhookOut,
    dependencies=[Depends(require_json)],
)
def create_webhook(st: Tenant, body: schemas.WebhookIn) -> JSONResponse:
    """Register an endpoint for job events. The response carries its ``whsec_`` secret, once."""
    check_url(body.url)
    endpoint = webhook_sql.create_endpoint(
        st.store, body.url, generate_secret(), list(dict.fromkeys(body.events))
    )
    log.info("webhook endpoint %s registered for %s", endpoint.id, ", ".join(endpoint.events))
    return JSONResponse(endpoint.to_dict(with_secret=True), status_code=201)


@tenant_router.get("/webhooks", operation_id="listWebhooks", response_model=schemas.WebhookList)
def list_webhooks(st: Tenant) -> JSONResponse:
    return JSONResponse({"data": [e.to_dict() for e in webhook_sql.list_endpoints(st.store)]})


@tenant_router.get("/webhooks/{id}", operation_id="getWebhook", response_model=schemas.WebhookOut)
def get_webhook(st: Tenant, id: str) -> JSONResponse:
    return JSONResponse(webhook_sql.get_endpoint(st.store, id).to_dict())


@tenant_router.delete(
    "/webhooks/{id}", operation_id="deleteWebhook", status_code=204, response_class=Response
)
def delete_webhook(st: Tenant, id: str) -> Response:
    webhook_sql.delete_endpoint(st.store, id)
    return Response(status_code=204)


# -- operations ----------------------------------------------------------------------------------------


@ops_router.get("/healthz", operation_id="healthz", response_model=schemas.Health)
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok", "checks": {}}


@ops_router.get(
    "/readyz",
    operation_id="readyz",
    response_model=schemas.Health,
    responses={503: {"model": schemas.Health}},
)
def readyz(request: Request) -> JSONResponse:
    """The job log answers and has this build's schema, and intake is not paused (full disk, disk budget)."""
    from edgecv.store import schema_version

    st = state(request)
    checks = {}
    try:
        version = st.store.user_version()
        checks["store"] = (
            "ok" if version == schema_version() else f"schema {version}, expected {schema_version()}"
        )
    except Exception as exc:  # any failure means not ready
        checks["store"] = f"error: {type(exc).__name__}"
    try:
        checks["models"] = f"{len(st.models())} installed"
    except Exception as exc:
        checks["models"] = f"error: {type(exc).__name__}"
    paused = st.budget.pause_reason() if st.budget is not None else None
    checks["intake"] = "ok" if paused is None else f"paused: {paused}"
    ready = checks["store"] == "ok" and paused is None
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


@ops_router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    dependencies=[Depends(require_token)],
    responses={200: {"content": {"text/plain": {}}}, 401: _ERR},
)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    m = state(request).metrics
    return Response(m.render(), media_type=m.content_type)


@ops_router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
def openapi_document(request: Request) -> JSONResponse:
    """The OpenAPI document; with an ``api.token`` it needs the token like the rest of the API."""
    st = state(request)
    return JSONResponse(agent_document(request.app.openapi(), st.config, sorted(st.models())))


def register(app: FastAPI) -> None:
    app.include_router(tenant_router, responses=_GUARD)
    app.include_router(ops_router, responses=_GUARD)

"""The FastAPI application: error translation, the Host/Origin guard and the upload size guard.

Routes live in :mod:`edgecv.api.routes` and the state they read in :mod:`edgecv.api.state`; routes translate between HTTP and library calls and hold no
business rules. Every error leaves as ``{"error": {"code": "…", "message": "…"}}``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgecv import __version__
from edgecv.api import dashboard, routes
from edgecv.api.auth import cross_site_reason, host_allowed, token_matches
from edgecv.api.metrics import Metrics
from edgecv.api.state import ApiState, ModelsProvider, error_response
from edgecv.config import ApiSettings, Config
from edgecv.errors import (
    ApiError,
    CatalogError,
    ConfigError,
    EdgecvError,
    JobNotFound,
    ModelNotFound,
    ObservationNotFound,
    RejectedFile,
    SkuNotFound,
    StoreError,
    WebhookNotFound,
)
from edgecv.privacy import PrivacyFilter
from edgecv.store import Store
from edgecv.upstream.budget import DiskBudget

log = logging.getLogger(__name__)

_STATUS_FOR: list[tuple[type[EdgecvError], int]] = [
    (ApiError, 400),
    (JobNotFound, 404),
    (ObservationNotFound, 404),
    (WebhookNotFound, 404),
    (SkuNotFound, 404),
    (CatalogError, 422),
    (ModelNotFound, 422),
    (RejectedFile, 422),
    (ConfigError, 422),
    (StoreError, 400),
]
_CODE_STATUS = {
    "file_too_large": 413,
    "webhook_from_config": 409,
    "cannot_keep": 409,
    "disk_budget_exceeded": 507,
    "disk_full": 507,
}


def _status_for(exc: EdgecvError) -> int:
    if isinstance(exc, ApiError) and exc.status:
        return exc.status
    if exc.code in _CODE_STATUS:
        return _CODE_STATUS[exc.code]
    for cls, status in _STATUS_FOR:
        if isinstance(exc, cls):
            return status
    return 500


async def _edgecv_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EdgecvError)
    status = _status_for(exc)
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return error_response(status, exc.code, str(exc), headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = exc.headers
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such path {request.url.path}; the API is described at /openapi.json"
    if exc.status_code == 405:
        allowed = _allowed_methods(request, (headers or {}).get("Allow"))
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}"
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message, headers)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request, starlette_allow: str | None) -> list[str]:
    """Every method the API serves on the request's path: FastAPI has one route per method, and
    Starlette's 405 names only the methods of the first route whose path matched. The path templates
    of the OpenAPI document are the public list of routes (``/openapi.json`` itself is not in it)."""
    methods = {m.strip() for m in (starlette_allow or "").split(",") if m.strip() in _METHOD_ORDER}
    path = request.url.path
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods.update(m.upper() for m in item if m.upper() in _METHOD_ORDER)
    return sorted(methods, key=_METHOD_ORDER.index)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the agent log has the details")


PROBES = ("/healthz", "/readyz")


class BrowserGuard:
    """Pure ASGI guard against web pages: DNS rebinding and cross-site requests.

    403 for a request whose ``Origin`` host is not an allowed host or that says ``Sec-Fetch-Site:
    cross-site`` (any method, any path). 400 for a ``Host`` that is not an allowed host, except on the
    probes and for requests carrying the valid bearer token (a web page cannot know it). Allowed hosts:
    127.0.0.1, localhost, [::1] and ``api.allowed_hosts``. No CORS headers are ever sent.
    """

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.allowed = frozenset(settings.allowed_hosts)
        self.token = settings.token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        reason = cross_site_reason(headers.get("origin"), headers.get("sec-fetch-site"), self.allowed)
        if reason is not None:
            return error_response(
                403,
                "cross_site_request",
                f"request from a web page of another site refused ({reason}); call the API from a program, "
                "or add the page's host name to api.allowed_hosts",
            )
        if scope["path"] in PROBES or host_allowed(headers.get("host"), self.allowed):
            return None
        if self.token and token_matches(headers.get("authorization"), self.token):
            return None
        return error_response(
            400,
            "host_not_allowed",
            f"Host {headers.get('host', '')!r} is not a name of this API; use 127.0.0.1, localhost or [::1], "
            "or add the name to api.allowed_hosts (EDGECV_API_ALLOWED_HOSTS)",
        )


class BodyLimit:
    """Pure ASGI guard: answer 413 once a request body passes ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        mb = self.max_bytes / (1024 * 1024)
        response = error_response(
            413, "too_large", f"request body is over the {mb:g} MB upload limit (api.max_upload_mb)"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(
    config: Config,
    store: Store,
    *,
    metrics: Metrics | None = None,
    models: ModelsProvider | None = None,
    budget: DiskBudget | None = None,
    privacy: PrivacyFilter | None = None,
) -> FastAPI:
    """The ASGI app for ``config``'s tenant over ``store``. ``models`` lists installed packages
    (default: :func:`edgecv.runtime.installed.installed_models`); uploads ask ``budget`` (the agent's disk
    budget) before they are spooled."""
    if models is None:
        from edgecv.runtime.installed import installed_models

        def models() -> dict[str, Any]:
            return installed_models(config)

    if metrics is None:
        metrics = Metrics()
    metrics.bind_store(store)
    app = FastAPI(
        title="edgecv local API",
        version=__version__,
        description="The CV Jobs API served by an edgecv agent for one tenant. Errors are "
        '`{"error": {"code", "message"}}`.',
        redoc_url=None,
        docs_url=None,  # Swagger UI loads its assets from a CDN: a blank page on an offline device
        openapi_url=None,  # served by routes.openapi_document, behind the token when one is set
    )
    app.state.edgecv = ApiState(config, store, metrics, models, budget, privacy)
    app.add_exception_handler(EdgecvError, _edgecv_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(BodyLimit, max_bytes=config.api.max_upload_mb * 1024 * 1024)
    app.add_middleware(BrowserGuard, settings=config.api)  # added last: runs first
    routes.register(app)
    app.include_router(dashboard.router)  # the pages at / (edgecv.api.dashboard)
    return app

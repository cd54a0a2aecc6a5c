"""The dashboard: server-rendered pages at ``/`` on the local API (the agent's and ``edgecv serve``'s).

Same rules as the API (:mod:`edgecv.api.app` guards Host and Origin first): without ``api.token`` (the
API then binds to loopback only) the pages open as they are; with one, a request needs the bearer token
or the session cookie that ``/login`` sets after the token was typed in. Every page is sent with a strict
Content-Security-Policy (``default-src 'self'``): the browser loads nothing from anywhere but the device,
and runs no inline script. The assets are two files in ``static/`` shipped inside the wheel.

Read-only: the pages show what :mod:`edgecv.status`, the job log and the catalogue say; nothing here
changes a job.
"""

from __future__ import annotations

import socket
from datetime import date, datetime, timezone
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from edgecv import status as status_mod
from edgecv.api import pages
from edgecv.api.auth import SESSION_COOKIE, is_loopback, session_matches, session_value, token_matches
from edgecv.api.routes import JOB_ID, get_observation_image
from edgecv.api.state import ApiState, error_response, state
from edgecv.errors import JobNotFound, ObservationNotFound, PrivacyError
from edgecv.ids import first_id_at
from edgecv.ingest import quarantined
from edgecv.upstream.budget import DiskBudget
from edgecv.upstream.images import image_bytes

CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGE_SIZE = 25
THUMB_PX = 160
SESSION_MAX_AGE_S = 7 * 24 * 3600

router = APIRouter(include_in_schema=False)


def _device_name() -> str:
    return socket.gethostname()


def _headers(cache: str = "no-store") -> dict[str, str]:
    return {**SECURITY_HEADERS, "cache-control": cache}


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers=_headers())


def _signed_in(request: Request) -> bool:
    """No ``api.token``: everyone who got past the Host/Origin guard (loopback-only bind). With one: the
    bearer token, or the session cookie derived from it."""
    token = state(request).config.api.token
    if not token:
        return True
    return token_matches(request.headers.get("authorization"), token) or session_matches(
        request.cookies.get(SESSION_COOKIE), token
    )


def _login_redirect(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303)
    response.headers.update(_headers())
    return response


def _unauthorised() -> JSONResponse:
    response = error_response(
        401, "unauthorized", "sign in at /login with api.token, or send Authorization: Bearer <api.token>"
    )
    response.headers.update(_headers())
    return response


def _safe_next(value: str | None) -> str:
    """Only a path on this dashboard (never ``//host`` or a URL): no open redirect after signing in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# -- sign in -----------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if _signed_in(request):
        return RedirectResponse(_safe_next(next), status_code=303, headers=_headers())
    return _html(pages.login_page(None, _safe_next(next)))


@router.post("/login")
async def login(request: Request) -> Response:
    token = state(request).config.api.token
    async with request.form(max_files=0, max_fields=4, max_part_size=4096) as form:
        given = str(form.get("token") or "")
        target = _safe_next(str(form.get("next") or "/"))
    if not token:
        return RedirectResponse(target, status_code=303, headers=_headers())
    if not token_matches(f"Bearer {given}", token):
        return _html(pages.login_page("That is not this agent's api.token.", target), status_code=401)
    response = RedirectResponse(target, status_code=303, headers=_headers())
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303, headers=_headers())
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    if name not in STATIC:
        return error_response(404, "not_found", f"no such dashboard file {name!r}")
    data = resources.files("edgecv.api").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name], headers=_headers("max-age=300"))


# -- status ------------------------------------------------------------------------------------------


def _status_values(st: ApiState) -> tuple[dict, dict, dict]:
    snapshot = status_mod.status_snapshot(st.config)
    activity = status_mod.activity(st.store)
    disk = status_mod.disk(st.config, st.budget or DiskBudget.from_config(st.store, st.config))
    return snapshot, activity, disk


def _model_rows(st: ApiState, snapshot: dict) -> list[dict]:
    loaded = snapshot["agent"].get("modelsLoaded", {}) if snapshot["agent"].get("running") else {}
    rows = []
    for m in snapshot["models"]:
        where = loaded.get(m["name"])
        package = st.models().get(m["name"])
        rows.append(
            {
                **m,
                "pipeline": getattr(package, "pipeline", None),
                "loaded": f"{where.get('device')} ({where.get('backend')}/{where.get('precision')})"
                if where
                else f"not loaded yet (device preference {st.config.device})",
            }
        )
    return rows


@router.get("/")
def status_page(request: Request) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    st = state(request)
    snapshot, activity, disk = _status_values(st)
    return _html(pages.status_page(snapshot, activity, disk, _model_rows(st, snapshot), _device_name()))


@router.get("/live.json")
def live(request: Request) -> Response:
    """The status page's numbers, polled by its script every few seconds."""
    if not _signed_in(request):
        return _unauthorised()
    st = state(request)
    snapshot, activity, disk = _status_values(st)
    return JSONResponse(
        {
            "values": pages.live_values(snapshot, activity, disk),
            "perMinute": activity["perMinute"],
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        headers=_headers(),
    )


# -- jobs --------------------------------------------------------------------------------------------


def _day_bounds(day: str) -> tuple[str, str]:
    """``(after, before)`` job ids bounding the jobs created on ``day`` (UTC, ``YYYY-MM-DD``)."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=timezone.utc)
    ms = int(start.timestamp() * 1000)
    return first_id_at("job", ms - 1), first_id_at("job", ms + 24 * 3600 * 1000)


@router.get("/jobs")
def jobs_page(
    request: Request,
    status: str | None = None,
    model: str | None = None,
    date_: Annotated[str | None, Query(alias="date")] = None,
    cursor: Annotated[str | None, Query(pattern=JOB_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    st = state(request)
    status = status or None
    model = model or None
    if status is not None and status not in pages.STATUSES:
        return _html(
            pages.layout(
                "Jobs", "jobs", f"<p class=error>status must be one of {', '.join(pages.STATUSES)}</p>"
            ),
            status_code=422,
        )
    after = before = None
    if date_:
        try:
            after, before = _day_bounds(date_)
        except ValueError:
            return _html(
                pages.layout("Jobs", "jobs", "<p class=error>date must be YYYY-MM-DD</p>"), status_code=422
            )
    upper = min(cursor, before) if cursor and before else cursor or before
    jobs, next_cursor = st.store.list_jobs(status=status, model=model, limit=limit, cursor=upper, after=after)
    names = st.store.original_names([j.observation_id for j in jobs])
    filters = {
        "status": status,
        "model": model,
        "date": date_ or None,
        "limit": str(limit) if limit != PAGE_SIZE else None,
        "cursor": cursor,
    }
    models = sorted(set(st.models()) | ({model} if model else set()))
    return _html(
        pages.jobs_page([j.to_dict() for j in jobs], names, filters, models, next_cursor, _device_name())
    )


def _job(st: ApiState, job_id: str) -> Any:
    try:
        return st.store.get_job(job_id)
    except JobNotFound:
        return None


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    st = state(request)
    job = _job(st, job_id)
    if job is None:
        return _html(
            pages.layout(
                "Job not found",
                "jobs",
                f"<p>There is no job {pages.e(job_id)}. <a href=/jobs>All jobs</a></p>",
            ),
            status_code=404,
        )
    try:
        observation = st.store.get_observation(job.observation_id).to_dict()
    except ObservationNotFound:
        observation = {}
    return _html(
        pages.job_page(
            job.to_dict(), observation, _device_name(), inference_ms=job.inference_ms, ran_on=job.device
        )
    )


@router.get("/jobs/{job_id}/image")
def job_image(request: Request, job_id: str) -> Response:
    """The job's image, as the API serves it (faces blurred for remote clients per ``[privacy]``)."""
    if not _signed_in(request):
        return _unauthorised()
    st = state(request)
    job = _job(st, job_id)
    if job is None:
        return error_response(404, "job_not_found", f"job {job_id!r} does not exist")
    response = get_observation_image(st, job.observation_id, request)
    response.headers.update(_headers("private, max-age=3600"))
    return response


@router.get("/jobs/{job_id}/thumb")
async def job_thumb(request: Request, job_id: str) -> Response:
    """A small JPEG of the job's image for the jobs list (privacy filter first for remote clients)."""
    if not _signed_in(request):
        return _unauthorised()
    st = state(request)
    job = _job(st, job_id)
    if job is None:
        return error_response(404, "job_not_found", f"job {job_id!r} does not exist")
    try:
        observation = st.store.get_observation(job.observation_id)
    except ObservationNotFound:
        return error_response(410, "image_gone", f"the observation of {job_id} is gone")
    spool = st.config.spool_dir.resolve()
    path = (st.config.data_dir / observation.spool_path).resolve()
    if not path.is_relative_to(spool):
        return error_response(410, "image_gone", f"the image of {job_id} is not in the spool")
    client = request.client.host if request.client is not None else ""
    privacy = None if is_loopback(client) or not st.privacy.active else st.privacy
    try:
        data, media_type, _ = await run_in_threadpool(
            image_bytes, path, "thumbnail", observation.media_type, THUMB_PX, privacy
        )
    except PrivacyError as exc:
        return error_response(403, exc.code, f"the image of {job_id} is not served to remote clients: {exc}")
    if data is None:
        return error_response(
            410, "image_gone", f"the image of {job_id} is no longer in the spool (retention)"
        )
    return Response(data, media_type=media_type, headers=_headers("private, max-age=3600"))


# -- quarantine, models, catalogue -------------------------------------------------------------------


@router.get("/quarantine")
def quarantine_page(request: Request) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    st = state(request)
    entries, total = quarantined(st.config)
    return _html(pages.quarantine_page(entries, total, str(st.config.quarantine_dir), _device_name()))


@router.get("/models")
def models_page(request: Request) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    st = state(request)
    agent = status_mod.running_agent(st.config) or {}
    packages = [st.models()[name].to_dict() for name in sorted(st.models())]
    return _html(pages.models_page(packages, agent.get("models", {}), _device_name()))


@router.get("/catalog")
def catalog_page(request: Request) -> Response:
    if not _signed_in(request):
        return _login_redirect(request)
    from edgecv.catalog import service

    st = state(request)
    index, skus = service.list_skus(st.config)
    return _html(pages.catalog_page(index.describe(), skus, str(st.config.catalog_dir), _device_name()))


@router.get("/catalog/{sku}/{image}")
def catalog_image(request: Request, sku: str, image: str) -> Response:
    """A reference image of a catalogue SKU (only names the catalogue lists)."""
    if not _signed_in(request):
        return _unauthorised()
    from edgecv.catalog.folder import scan

    st = state(request)
    entries, _ = scan(st.config.catalog_dir)
    entry = next((s for s in entries if s.id == sku), None)
    if entry is None or image not in entry.to_dict().get("images", []):
        return error_response(404, "not_found", f"no reference image {image!r} of SKU {sku!r}")
    path = st.config.catalog_dir / sku / image
    media = {"png": "image/png", "webp": "image/webp"}.get(image.rsplit(".", 1)[-1].lower(), "image/jpeg")
    return Response(path.read_bytes(), media_type=media, headers=_headers("private, max-age=300"))

"""The dashboard's HTML: pure functions from the values a page shows to its markup (no I/O, no state).

Every value goes through :func:`e` (HTML escaping); there is no inline script or style, so the pages run
under the strict Content-Security-Policy of :mod:`edgecv.api.dashboard`. The few dynamic parts (boxes over
the image, live numbers) are drawn by ``static/dashboard.js`` from JSON data blocks and ``/live.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from edgecv import __version__

NAV = (("status", "/", "Status"), ("jobs", "/jobs", "Jobs"), ("quarantine", "/quarantine", "Quarantine"),
       ("models", "/models", "Models"), ("catalog", "/catalog", "Catalogue"))  # fmt: skip
STATUSES = ("queued", "processing", "completed", "failed")


def e(value: Any) -> str:
    """Text for HTML (attribute-safe); ``None`` shows as an en dash."""
    return "–" if value is None else escape(str(value), quote=True)


def size(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def json_block(element_id: str, value: Any) -> str:
    """A non-executed JSON data block (``</`` escaped so the data cannot close the element)."""
    text = json.dumps(value, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{e(element_id)}">{text}</script>'


def layout(title: str, active: str, body: str, *, live: bool = False, device: str = "") -> str:
    nav = "".join(
        f'<a href="{href}"{" class=active" if key == active else ""}>{label}</a>' for key, href, label in NAV
    )
    live_attr = ' data-live-url="/live.json"' if live else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · edgecv</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head>'
        f'<body{live_attr}><header><span class="brand">edgecv</span><nav>{nav}</nav>'
        f'<span class="device">{e(device)} · v{e(__version__)}</span></header>'
        f"<main><h1>{e(title)}</h1>{body}</main></body></html>\n"
    )


def login_page(message: str | None, next_path: str) -> str:
    note = f'<p class="error">{e(message)}</p>' if message else ""
    body = (
        f"{note}<p>This agent has an <code>api.token</code>. Enter it to open the dashboard; the browser keeps "
        "a session cookie derived from it (never the token itself).</p>"
        '<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label>API token <input type="password" name="token" autocomplete="current-password" required></label>'
        '<button type="submit">Open</button></form>'
    )
    return layout("Sign in", "", body)


# -- status ------------------------------------------------------------------------------------------


def live_values(snapshot: Mapping[str, Any], activity: Mapping[str, Any], disk: Mapping[str, Any]) -> dict:
    """The status page's changing values, flat (``key → text``), as the page shows them and as
    ``/live.json`` sends them (the page's script puts each into ``[data-live=key]``)."""
    sync, backlog = snapshot["sync"], snapshot["sync"]["backlog"]
    values = {
        "queue.depth": snapshot["queue"]["depth"],
        "queue.processing": snapshot["queue"]["processing"],
        **{f"jobs.{s}": snapshot["jobs"].get(s, 0) for s in STATUSES},
        "hour.completed": activity["completed"],
        "hour.failed": activity["failed"],
        "hour.perMinute": f"{activity['jobsPerMinute']:g}",
        "sync.state": sync["state"] if sync["configured"] else "disabled (no sync.url)",
        "sync.pending": backlog["pending"],
        "sync.parked": backlog["parked"],
        "sync.images": backlog["imagesPending"],
        "sync.lastError": sync["lastError"] or "none",
        "sync.lastSuccess": sync["lastSuccessAt"] or "never",
        "disk.used": size(disk["usedBytes"]),
        "disk.budget": size(disk["budgetBytes"]),
        "disk.free": size(disk["freeBytes"]),
        "disk.intake": f"PAUSED: {disk['paused']}" if disk["paused"] else "accepting images",
    }
    return {k: str(v) for k, v in values.items()}


def _live(values: Mapping[str, str], key: str) -> str:
    return f'<span data-live="{e(key)}">{e(values[key])}</span>'


def _stat(values: Mapping[str, str], key: str, label: str) -> str:
    return f'<div class="stat"><b>{_live(values, key)}</b><small>{e(label)}</small></div>'


def throughput_svg(per_minute: list[Mapping[str, Any]]) -> str:
    """One bar per minute (completed, failed stacked on top), scaled to the busiest minute."""
    top = max([m["completed"] + m["failed"] for m in per_minute] + [1])
    bars = []
    for i, m in enumerate(per_minute):
        h_ok = 40 * m["completed"] / top
        h_bad = 40 * m["failed"] / top
        tip = f"{m['minute']}Z: {m['completed']} completed, {m['failed']} failed"
        bars.append(
            f"<g><title>{e(tip)}</title>"
            f'<rect class="ok" x="{i * 4}" y="{40 - h_ok:.2f}" width="3" height="{h_ok:.2f}"/>'
            f'<rect class="bad" x="{i * 4}" y="{40 - h_ok - h_bad:.2f}" width="3" height="{h_bad:.2f}"/></g>'
        )
    width = max(4 * len(per_minute), 4)
    return (
        f'<svg id="throughput" class="spark" viewBox="0 0 {width} 40" preserveAspectRatio="none" '
        f'role="img" aria-label="jobs finished per minute">{"".join(bars)}</svg>'
    )


def status_page(
    snapshot: Mapping[str, Any],
    activity: Mapping[str, Any],
    disk: Mapping[str, Any],
    models: list[Mapping[str, Any]],
    device: str,
) -> str:
    v = live_values(snapshot, activity, disk)
    agent = snapshot["agent"]
    if agent.get("running"):
        agent_text = f"agent running (pid {agent.get('pid')}) since {agent.get('startedAt')}"
    else:
        agent_text = "no agent running on this data dir (this API serves the job log alone)"
    cards = (
        '<section class="cards">'
        f'<div class="card"><h2>Queue</h2>{_stat(v, "queue.depth", "queued")}'
        f"{_stat(v, 'queue.processing', 'processing')}</div>"
        f'<div class="card"><h2>Last hour</h2>{_stat(v, "hour.completed", "completed")}'
        f"{_stat(v, 'hour.failed', 'failed')}{_stat(v, 'hour.perMinute', 'jobs / min')}"
        f"{throughput_svg(activity['perMinute'])}</div>"
        '<div class="card"><h2>Jobs by status</h2>'
        + "".join(_stat(v, f"jobs.{s}", s) for s in STATUSES)
        + "</div>"
        f'<div class="card"><h2>Sync</h2><p>{_live(v, "sync.state")}</p>'
        f"{_stat(v, 'sync.pending', 'pending')}{_stat(v, 'sync.parked', 'parked')}"
        f"{_stat(v, 'sync.images', 'images to upload')}"
        f'<p class="small">last success {_live(v, "sync.lastSuccess")}; last error {_live(v, "sync.lastError")}</p></div>'
        f'<div class="card"><h2>Disk</h2>{_stat(v, "disk.used", "spool + job log")}'
        f"{_stat(v, 'disk.budget', 'budget (sync.disk_budget_mb)')}{_stat(v, 'disk.free', 'free on disk')}"
        f'<p class="small">{_live(v, "disk.intake")}</p></div>'
        "</section>"
    )
    errors = "".join(
        f'<tr><td><a href="/jobs/{e(j["id"])}">{e(j["id"])}</a></td><td>{e(j["model"])}</td>'
        f"<td>{e(j['completedAt'])}</td><td><code>{e(j['error']['code'])}</code></td>"
        f"<td>{e(j['error']['message'])}</td></tr>"
        for j in activity["lastErrors"]
    )
    errors_table = (
        f'<table id="last-errors"><tr><th>job</th><th>model</th><th>failed at</th><th>code</th><th>message</th></tr>'
        f"{errors}</table>"
        if errors
        else '<p id="last-errors">No failed jobs.</p>'
    )
    return layout(
        "Status",
        "status",
        f'<p class="small">{e(agent_text)}; data dir {e(snapshot["dataDir"])}; inbox '
        f"{e(snapshot['inbox'] or '(not set)')}</p>"
        f"{cards}<h2>Last errors</h2>{errors_table}<h2>Models and devices</h2>{models_table(models)}",
        live=True,
        device=device,
    )


def models_table(models: list[Mapping[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{e(m['name'])}</td><td>{e(m['version'])}</td><td>{e(m.get('pipeline'))}</td>"
        f"<td>{e(', '.join(m['weights']))}</td><td>{e(m['loaded'])}</td></tr>"
        for m in models
    )
    if not rows:
        return "<p>No model packages installed (<code>edgecv models list</code>).</p>"
    return (
        '<table id="models"><tr><th>model</th><th>version</th><th>pipeline</th><th>weights</th>'
        f"<th>loaded on (device, backend/precision)</th></tr>{rows}</table>"
    )


# -- jobs --------------------------------------------------------------------------------------------


def _outcome(job: Mapping[str, Any]) -> str:
    if job["status"] == "failed" and job.get("error"):
        return f"<code>{e(job['error']['code'])}</code>"
    if job["status"] == "completed":
        result = job.get("result") or {}
        n = len(result.get("detections", []))
        text = f"{n} detection(s)"
        if (result.get("domain") or {}).get("inDomain") is False:
            text += ", not in the model's domain"
        return e(text)
    return ""


def jobs_page(
    jobs: list[Mapping[str, Any]],
    names: Mapping[str, str],
    filters: Mapping[str, str | None],
    models: Iterable[str],
    next_cursor: str | None,
    device: str,
) -> str:
    def option(value: str, current: str | None, label: str | None = None) -> str:
        selected = " selected" if value == (current or "") else ""
        return f'<option value="{e(value)}"{selected}>{e(label or value)}</option>'

    form = (
        '<form method="get" action="/jobs" class="filters">'
        '<label>status <select name="status">'
        + option("", filters.get("status"), "any")
        + "".join(option(s, filters.get("status")) for s in STATUSES)
        + '</select></label><label>model <select name="model">'
        + option("", filters.get("model"), "any")
        + "".join(option(m, filters.get("model")) for m in models)
        + f'</select></label><label>created on (UTC) <input type="date" name="date" value="{e(filters.get("date") or "")}">'
        '</label><button type="submit">Filter</button> <a href="/jobs">clear</a></form>'
    )
    rows = "".join(
        f'<tr class="job {e(j["status"])}"><td><a href="/jobs/{e(j["id"])}">'
        f'<img class="thumb" loading="lazy" alt="" src="/jobs/{e(j["id"])}/thumb"></a></td>'
        f'<td><a href="/jobs/{e(j["id"])}">{e(j["id"])}</a></td><td>{e(names.get(j["observationId"], ""))}</td>'
        f'<td><span class="badge {e(j["status"])}">{e(j["status"])}</span></td><td>{e(j["model"])}</td>'
        f"<td>{e(j['createdAt'])}</td><td>{_outcome(j)}</td></tr>"
        for j in jobs
    )
    table = (
        '<table id="jobs"><tr><th></th><th>job</th><th>file</th><th>status</th><th>model</th><th>created</th>'
        f"<th>outcome</th></tr>{rows}</table>"
        if rows
        else '<p id="jobs">No jobs match.</p>'
    )
    query = {k: v for k, v in filters.items() if v and k != "cursor"}
    paging = []
    if filters.get("cursor"):
        paging.append(f'<a id="first-page" href="/jobs?{e(urlencode(query))}">« newest</a>')
    if next_cursor:
        paging.append(
            f'<a id="next-page" href="/jobs?{e(urlencode({**query, "cursor": next_cursor}))}">older »</a>'
        )
    return layout("Jobs", "jobs", f'{form}{table}<p class="paging">{" ".join(paging)}</p>', device=device)


def _attributes(attributes: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (attributes or {}).items())


def job_page(
    job: Mapping[str, Any],
    observation: Mapping[str, Any],
    device: str,
    *,
    inference_ms: float | None = None,
    ran_on: str | None = None,
) -> str:
    """``job`` as the API returns it; ``inference_ms`` and ``ran_on`` (the device) from the job log."""
    result = job.get("result") or {}
    detections = result.get("detections", [])
    facts = [
        ("status", f'<span class="badge {e(job["status"])}">{e(job["status"])}</span>'),
        ("model", e(f"{job['model']} {job.get('modelVersion') or ''}".strip())),
        ("file", e(observation.get("originalName"))),
        ("image", e(f"{observation.get('width')}×{observation.get('height')} px, {size(observation.get('sizeBytes'))}")),
        ("created", e(job.get("createdAt"))),
        ("started", e(job.get("startedAt"))),
        ("finished", e(job.get("completedAt"))),
        ("inference", e(None if inference_ms is None else f"{inference_ms:.1f} ms on {ran_on}")),
    ]  # fmt: skip
    if job.get("error"):
        facts.append(("error", f"<code>{e(job['error']['code'])}</code> {e(job['error']['message'])}"))
    domain = result.get("domain") or {}
    if domain.get("inDomain") is False:
        facts.append(
            ("domain", e(f"not the model's kind of picture ({domain.get('scene', '')}); no detections"))
        )
    facts_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    figure = (
        '<div class="figure" id="figure">'
        f'<img id="job-image" src="/jobs/{e(job["id"])}/image" alt="{e(observation.get("originalName"))}" '
        f'width="{e(observation.get("width"))}" height="{e(observation.get("height"))}">'
        "</div>"
        '<p id="box-info" class="small">Hover a box for its name, confidence and attributes.</p>'
        + json_block(
            "job-data",
            {
                "width": observation.get("width"),
                "height": observation.get("height"),
                "detections": detections,
            },
        )
    )
    det_rows = "".join(
        f"<tr><td>{i + 1}</td><td>{e(d.get('objectName'))}</td><td>{d.get('confidence', 0):.2f}</td>"
        f"<td>{e(_box(d.get('boundingBox')))}</td><td>{e(_attributes(d.get('attributes')))}</td></tr>"
        for i, d in enumerate(detections)
    )
    det_table = (
        '<table id="detections"><tr><th>#</th><th>name</th><th>confidence</th><th>box (x, y, w, h)</th>'
        f"<th>attributes</th></tr>{det_rows}</table>"
        if det_rows
        else ""
    )
    shelf = shelf_section(result) if _is_shelf(result) else ""
    body = (
        f'<div class="job-view"><div>{figure}</div><table class="facts">{facts_html}</table></div>'
        f"{shelf}{'<h2>Detections</h2>' + det_table if det_table else ''}"
        f'<h2>Result JSON</h2><pre id="result-json">{e(json.dumps(job, indent=2))}</pre>'
    )
    return layout(f"Job {job['id']}", "jobs", body, device=device)


def _box(box: Mapping[str, Any] | None) -> str:
    if not box:
        return ""
    return f"{box.get('x')}, {box.get('y')}, {box.get('width')}, {box.get('height')}"


def _is_shelf(result: Mapping[str, Any]) -> bool:
    return "complianceScore" in (result.get("summary") or {})


def facing_runs(detections: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The facing runs of a shelf result, in its order (top row first, left to right): consecutive packs of
    one product in one row, as many as the first one's ``facings`` (docs/results.md)."""
    runs: list[dict[str, Any]] = []
    for d in detections:
        attrs = d.get("attributes") or {}
        run = runs[-1] if runs else None
        if (
            run is not None
            and run["name"] == d.get("objectName")
            and run["position"] == attrs.get("shelfPosition")
            and run["packs"] < (run["facings"] or 1)
        ):
            run["packs"] += 1
            continue
        runs.append(
            {
                "position": attrs.get("shelfPosition"),
                "name": d.get("objectName"),
                "facings": attrs.get("facings"),
                "price": attrs.get("priceTag"),
                "packs": 1,
            }
        )
    return runs


def shelf_section(result: Mapping[str, Any]) -> str:
    """Rows (by shelf position, top first), facing runs with their price tags, out-of-stock, compliance."""
    summary = result.get("summary") or {}
    score = summary.get("complianceScore")
    facts = [
        (
            "compliance",
            "–" if score is None else f"{score * 100:.1f} % ({summary.get('complianceBasis', '')})",
        ),
        ("products", summary.get("totalProducts")),
        ("unique SKUs", summary.get("uniqueSKUs")),
        ("shelf rows", summary.get("shelfRows")),
        ("price tags", summary.get("priceTags")),
        ("empty tag slots", summary.get("emptyTagSlots")),
        ("out of stock", ", ".join(summary.get("outOfStock") or []) or "none"),
    ]
    if summary.get("priceCompliance") is not None:
        facts.append(("price compliance", f"{summary['priceCompliance'] * 100:.1f} %"))
    if summary.get("mispricedSKUs"):
        facts.append(("mispriced", ", ".join(summary["mispricedSKUs"])))
    rows = "".join(
        f"<tr><td>{e(run['position'])}</td><td>{e(run['name'])}</td><td>{e(run['facings'])}</td>"
        f"<td>{e(run['price'])}</td></tr>"
        for run in facing_runs(result.get("detections", []))
    )
    facts_html = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    return (
        f'<h2>Shelf</h2><table id="shelf-summary" class="facts">{facts_html}</table>'
        '<table id="shelf-runs"><tr><th>row</th><th>product</th><th>facings</th><th>price tag</th></tr>'
        f"{rows}</table>"
    )


# -- quarantine, models, catalogue -------------------------------------------------------------------


def quarantine_page(entries: list[Mapping[str, Any]], total: int, folder: str, device: str) -> str:
    rows = "".join(
        f"<tr><td>{e(q['quarantinedAt'])}</td><td><code>{e(q['code'])}</code></td><td>{e(q['file'])}</td>"
        f"<td>{e(q['reason'])}</td><td>{e(size(q['sizeBytes']))}</td></tr>"
        for q in entries
    )
    shown = f"the newest {len(entries)} of " if total > len(entries) else ""
    body = (
        f"<p>{shown}{total} file(s) in <code>{e(folder)}</code>: bytes that are not an image edgecv can "
        "accept. Fix a file and drop it into the inbox again; each has a <code>.reason</code> file beside it.</p>"
        + (
            '<table id="quarantine"><tr><th>quarantined</th><th>code</th><th>file as dropped</th><th>reason</th>'
            f"<th>size</th></tr>{rows}</table>"
            if rows
            else ""
        )
    )
    return layout("Quarantine", "quarantine", body, device=device)


def models_page(packages: list[Mapping[str, Any]], loaded: Mapping[str, Any], device: str) -> str:
    sections = []
    for p in packages:
        where = loaded.get(p["name"])
        on = (
            f"loaded on {where.get('device')} ({where.get('backend')}/{where.get('precision')})"
            if where
            else "not loaded yet"
        )
        evaluation = (p.get("evaluation") or {}).get("default") or {}
        labels = list(p.get("labels", []))
        sections.append(
            f'<section class="card model"><h2>{e(p["name"])} <small>{e(p.get("version"))}</small></h2>'
            f'<p>{e(p.get("description"))}</p><table class="facts">'
            f'<tr><th>pipeline</th><td>{e(p.get("pipeline"))}</td></tr>'
            f'<tr><th>input</th><td>{e((p.get("input") or {}).get("width"))}×{e((p.get("input") or {}).get("height"))}</td></tr>'
            f'<tr><th>weights</th><td>{e(", ".join(b["backend"] + "/" + b["precision"] for b in p.get("backends", [])))}</td></tr>'
            f'<tr><th>mAP50 / 50-95</th><td>{e(evaluation.get("mAP50"))} / {e(evaluation.get("mAP50_95"))}</td></tr>'
            f'<tr><th>now</th><td>{e(on)}</td></tr>'
            f'<tr><th>labels ({len(labels)})</th><td class="small">{e(", ".join(labels))}</td></tr></table></section>'
        )  # fmt: skip
    body = "".join(sections) or "<p>No model packages installed (<code>edgecv models list</code>).</p>"
    return layout("Models", "models", f'<div id="model-list">{body}</div>', device=device)


def catalog_page(describe: Mapping[str, Any], skus: list[Mapping[str, Any]], folder: str, device: str) -> str:
    rows = "".join(
        f"<tr><td>{_sku_image(s)}</td><td><code>{e(s['id'])}</code></td><td>{e(s.get('name'))}</td>"
        f"<td>{e(s.get('size'))}</td><td>{e(_price(s))}</td><td>{len(s.get('images', []))}</td></tr>"
        for s in skus
    )
    body = (
        f"<p>{e(describe.get('skus'))} SKU(s), {e(describe.get('references'))} reference image(s), version "
        f"<code>{e(describe.get('version'))}</code>, in <code>{e(folder)}</code> (<code>edgecv catalog add</code>).</p>"
        + (
            '<table id="catalog"><tr><th></th><th>SKU</th><th>name</th><th>size</th><th>expected price</th>'
            f"<th>images</th></tr>{rows}</table>"
            if rows
            else "<p>The catalogue is empty: shelf products keep the detector's labels.</p>"
        )
    )
    return layout("Catalogue", "catalog", body, device=device)


def _sku_image(sku: Mapping[str, Any]) -> str:
    images = sku.get("images") or []
    if not images:
        return ""
    return f'<img class="thumb" loading="lazy" alt="" src="/catalog/{e(sku["id"])}/{e(images[0])}">'


def _price(sku: Mapping[str, Any]) -> str | None:
    if sku.get("expectedPrice") is None:
        return None
    return f"{sku['expectedPrice']:.2f} {sku.get('currency') or ''}".strip()

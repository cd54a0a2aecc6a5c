"""``edgecv sync``: push pending results upstream once; ``edgecv sync --status``: backlog and last error."""

from __future__ import annotations

import json

import click

from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import EdgecvError
from edgecv.store import Store, outbox
from edgecv.upstream.budget import format_size
from edgecv.upstream.relay import require_sync_url
from edgecv.upstream.summary import sync_all, sync_status


@main.command()
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="Show the backlog, relay state and last error; send nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
@click.option(
    "--retry-parked",
    is_flag=True,
    help="Put results the upstream rejected back in the queue first (after fixing the cause upstream).",
)
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Give up after this many seconds."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a long backlog at a terminal)."
)
@pass_app
def sync(
    app: AppContext,
    show_status: bool,
    as_json: bool,
    retry_parked: bool,
    timeout: float,
    progress: bool | None,
) -> None:
    """Push every pending result (and image) to the tenant API once, then print a summary.

    Exits 1 when anything is still pending (upstream down, credentials refused, timeout).
    """
    config = app.config()
    try:
        if not show_status:
            require_sync_url(config.sync)  # before the job log is created just to say so
        store = Store(config.db_path)
    except EdgecvError as exc:
        raise fail(exc) from None
    try:
        if show_status:
            report = sync_status(store, config)
            click.echo(json.dumps(report, indent=2) if as_json else sync_status_text(report))
            return
        if retry_parked:
            click.echo(f"{outbox.requeue_parked(store)} parked result(s) queued again")
        summary = sync_all(store, config, deadline_s=timeout, progress=progress)
    except EdgecvError as exc:
        raise fail(exc) from None
    finally:
        store.close()
    click.echo(
        f"sent {summary.sent}, duplicate {summary.duplicate}, rejected {summary.rejected}, "
        f"still pending {summary.pending}"
        + (f", images pending {summary.images_pending}" if summary.images_pending else "")
    )
    if not summary.complete:
        click.echo(f"not everything was sent: {summary.state}: {summary.last_error or 'timed out'}", err=True)
        raise SystemExit(1)


def sync_status_text(report: dict) -> str:
    backlog, disk = report["backlog"], report["disk"]
    online = {True: "online", False: "offline", None: "unknown"}[report["online"]]
    lines = [
        f"upstream:      {report['url'] or '(sync.url not set)'} ({online})",
        f"relay state:   {report['state']}"
        + (f" (updated {report['updatedAt']})" if report["updatedAt"] else ""),
        f"backlog:       {backlog['pending']} pending, {backlog['parked']} parked, {backlog['sent']} sent, "
        f"{backlog['imagesPending']} images pending",
        f"last success:  {report['lastSuccessAt'] or 'never'}",
        f"last error:    {report['lastError'] or 'none'}"
        + (f" at {report['lastErrorAt']}" if report["lastErrorAt"] else ""),
        f"disk:          {format_size(disk['usedBytes'])} of {format_size(disk['budgetBytes'])}; "
        f"{disk['pruned']} images pruned, {disk['downscaled']} downscaled",
    ]
    if report["backoffUntil"]:
        lines.append(f"next retry:    {report['backoffUntil']}")
    if disk["refusingNewImages"]:
        lines.append(f"REFUSING NEW IMAGES: {disk['refusingNewImages']}")
    for item in report["parked"]:
        lines.append(f"parked:        {item['jobId']}: {item['reason']}")
    return "\n".join(lines)

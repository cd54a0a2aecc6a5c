"""``edgecv jobs list`` / ``edgecv jobs show`` / ``edgecv jobs flag``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecv.annotate import write_annotated
from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import EdgecvError
from edgecv.records import JOB_STATUSES, Job
from edgecv.store import Store


def open_store(app: AppContext) -> Store:
    try:
        return Store(app.config().db_path)
    except EdgecvError as exc:
        raise fail(exc) from None


NAME_WIDTH = 28  # file-name column of `jobs list`


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """``name`` in at most ``width`` characters, keeping its end (the file name): ``…/aisle-3/img.jpg``."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def job_line(job: Job, name: str | None = None) -> str:
    """One human-readable line per job; with ``name``, a file-name column after the id."""
    if job.status == "completed" and job.result is not None:
        outcome = f"{len(job.result.get('detections', []))} detection(s)"
    elif job.status == "failed":
        outcome = f"{job.error_code}: {job.error_message}"
    else:
        outcome = ""
    column = "" if name is None else f"{short_name(name):<{NAME_WIDTH}}  "
    return f"{job.id}  {column}{job.status:<10}  {job.model:<24}  {job.created_at}  {outcome}".rstrip()


@main.group()
def jobs() -> None:
    """Inspect the local job log."""


@jobs.command("list")
@click.option("--status", type=click.Choice(JOB_STATUSES), help="Only jobs in this state.")
@click.option("--model", help="Only jobs for this model.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Jobs per page (1-1000)."
)
@click.option("--cursor", help="Continue after this job id (from the previous page).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of jobs as the API returns them.")
@pass_app
def list_jobs(
    app: AppContext, status: str | None, model: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """List jobs, newest first: id, file name (as dropped, relative to the inbox; long names keep
    their end), status, model, created, outcome. --json prints the API's job objects unchanged."""
    store = open_store(app)
    try:
        page, next_cursor = store.list_jobs(status=status, model=model, limit=limit, cursor=cursor)
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in page], indent=2, ensure_ascii=False))
        return
    names = store.original_names([job.observation_id for job in page])
    for job in page:
        click.echo(job_line(job, names.get(job.observation_id, "?")))
    if next_cursor:
        click.echo(f"… more: --cursor {next_cursor}", err=True)


@jobs.command("show")
@click.argument("job_id")
@click.option(
    "--annotate",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the boxes, labels and key attributes on the image and write it here (.jpg/.png).",
)
@pass_app
def show_job(app: AppContext, job_id: str, annotate: Path | None) -> None:
    """Print one job exactly as the API returns it."""
    store = open_store(app)
    try:
        job = store.get_job(job_id)
        if annotate is not None:
            write_annotated(store, app.config(), job, annotate)
    except (EdgecvError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(job.to_json())
    if annotate is not None:
        click.echo(f"annotated image: {annotate}", err=True)


@jobs.command("flag")
@click.argument("job_id")
@click.option("--reason", default=None, help="Why the result needs a look (kept with the image).")
@pass_app
def flag_job(app: AppContext, job_id: str, reason: str | None) -> None:
    """Keep a completed job's image for labelling (`edgecv export --flagged`), whatever [hard_images] says.

    The image is linked into <data dir>/hard, so retention cannot delete it; it counts against the kept
    images' disk share (hard_images.max_mb / max_percent)."""
    from edgecv.hard_images import HardImages

    store = open_store(app)
    try:
        kept = HardImages(store, app.config()).flag(job_id, reason)
    except EdgecvError as exc:
        raise fail(exc) from None
    finally:
        store.close()
    click.echo(
        f"flagged {kept.job_id}: image kept in {kept.path}" + (f" ({kept.detail})" if kept.detail else "")
    )

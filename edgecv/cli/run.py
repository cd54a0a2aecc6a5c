"""``edgecv run IMAGE... --model NAME``: one-shot processing through the same job log."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from edgecv.annotate import write_annotated
from edgecv.cli import AppContext, backend_option, device_option, fail, main, pass_app
from edgecv.cli.jobs import job_line, open_store
from edgecv.errors import EdgecvError
from edgecv.oneshot import process_files
from edgecv.records import Job

PROGRESS_FROM = 4  # show a progress bar from this many images on


@main.command("run")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", help="Model name (default: the configured default model).")
@device_option
@backend_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON array of the jobs as the API returns them."
)
@click.option(
    "--annotate",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each image with its boxes and key attributes drawn into this folder (<job id>.jpg).",
)
@pass_app
def run_images(
    app: AppContext,
    images: tuple[Path, ...],
    model: str | None,
    device: str | None,
    backend: str | None,
    as_json: bool,
    annotate: Path | None,
) -> None:
    """Process IMAGE files now and print each job. Originals are left where they are."""
    cfg = app.config(device=device, backend=backend)
    store = open_store(app)
    bar = tqdm(
        total=len(images), unit="img", disable=True if len(images) < PROGRESS_FROM else None, leave=False
    )
    try:
        outcomes = process_files(
            store, cfg, list(images), model=model or cfg.default_model, progress=bar.update
        )
        if annotate is not None:
            for outcome in outcomes:
                if isinstance(outcome, Job):
                    write_annotated(store, cfg, outcome, annotate / f"{outcome.id}.jpg")
    except EdgecvError as exc:
        raise fail(exc) from None
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps([o.to_dict() for o in outcomes], indent=2, ensure_ascii=False))
    else:
        for path, outcome in zip(images, outcomes, strict=True):
            click.echo(f"{job_line(outcome) if isinstance(outcome, Job) else outcome.line()}  {path}")
    if any(not isinstance(o, Job) or o.status != "completed" for o in outcomes):
        raise SystemExit(1)

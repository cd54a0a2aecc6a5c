"""``edgecv export --flagged|--hard --format yolo|coco DIR``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import EdgecvError


@main.command("export")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--flagged", is_flag=True, help="Images users flagged (`edgecv jobs flag`, POST …/flag).")
@click.option("--hard", is_flag=True, help="Images the sampling policy kept ([hard_images]).")
@click.option(
    "--format", "fmt", type=click.Choice(["yolo", "coco"]), default="yolo", show_default=True,
    help="yolo: images/ labels/ data.yaml; coco: images/ annotations.json.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@pass_app
def export(app: AppContext, out_dir: Path, flagged: bool, hard: bool, fmt: str, as_json: bool) -> None:
    """Write images kept for labelling with their job results as pre-labels, for labelling tools.

    Pass --flagged, --hard or both. Nothing leaves the device: DIR is a local folder."""
    from edgecv.labels_export import HARD, export_kept
    from edgecv.store import Store

    if not (flagged or hard):
        raise click.UsageError("pass --flagged, --hard or both")
    reasons = (["flagged"] if flagged else []) + (HARD if hard else [])
    cfg = app.config()
    try:
        store = Store(cfg.db_path)
        try:
            report = export_kept(store, cfg.data_dir, out_dir, reasons=reasons, fmt=fmt)
        finally:
            store.close()
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(
        f"exported {report['images']} image(s), {report['boxes']} box(es), {len(report['classes'])} class(es) "
        f"as {fmt} into {out_dir}"
    )
    if report["missing"]:
        click.echo(
            f"skipped {len(report['missing'])} whose kept image is gone (first: {report['missing'][0]})"
        )

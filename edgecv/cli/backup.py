"""``edgecv backup FILE`` and ``edgecv restore FILE``: a consistent copy of the job log, and putting one back."""

from __future__ import annotations

from pathlib import Path

import click

from edgecv.agent import data_dir_lock
from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import AgentLocked, EdgecvError
from edgecv.store import recovery, schema_version


@main.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def backup(app: AppContext, file: Path) -> None:
    """Copy the job log to FILE (one self-contained SQLite file). Safe while the agent runs."""
    cfg = app.config()
    try:
        size = recovery.backup(cfg.db_path, file)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"backed up {cfg.db_path} to {file} ({size} bytes, quick_check ok)")


@main.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def restore(app: AppContext, file: Path) -> None:
    """Replace the job log with FILE (a backup). Stop the agent first; the current log is kept beside it."""
    cfg = app.config()
    try:
        recovery.check_backup_file(file, schema_version())
        with data_dir_lock(cfg.data_dir):
            previous = recovery.restore(file, cfg.db_path, schema_version())
    except AgentLocked:
        raise click.ClickException(
            f"an edgecv agent is running on {cfg.data_dir}; stop it (e.g. `sudo systemctl stop edgecv`), "
            "then run `edgecv restore` again"
        ) from None
    except EdgecvError as exc:
        raise fail(exc) from None
    kept = f"; the previous job log is kept as {previous}" if previous else ""
    click.echo(f"restored {cfg.db_path} from {file}{kept}")

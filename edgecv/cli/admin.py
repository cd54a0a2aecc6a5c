"""Operating a device: ``edgecv doctor``, ``edgecv status``, ``edgecv config init|check``,
``edgecv service install|uninstall``."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from pathlib import Path

import click

from edgecv import doctor as doctor_lib
from edgecv import service as service_lib
from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.config import DEFAULT_CONFIG_NAME, find_config_file, load_config
from edgecv.errors import ConfigError, EdgecvError
from edgecv.logging_setup import quiet
from edgecv.runtime.installed import check_model_names
from edgecv.status import status_lines, status_snapshot


@main.command("doctor")
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(list(doctor_lib.CHECKS)),
    help="Leave a check out (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON array.")
@pass_app
def doctor(app: AppContext, skip: tuple[str, ...], as_json: bool) -> None:
    """Check this device: runtimes, devices, models, data dir, disk, job log, inbox, upstream, clock.

    One line per check (OK, WARN or FAIL, with a fix for the last two). Exits 1 on any FAIL.
    """
    try:
        cfg = app.config()
    except click.ClickException as exc:
        results = [doctor_lib.Check("config", doctor_lib.FAIL, exc.message, "edgecv config check PATH")]
    else:
        # the checks load every model: their INFO lines would interleave with the report (--log-level shows them)
        with contextlib.nullcontext() if app.overrides.get("log_level") else quiet():
            results = doctor_lib.run_checks(cfg, skip=skip)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for result in results:
            click.echo(result.line())
    if doctor_lib.failed(results):
        raise SystemExit(1)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Queue depth, jobs by status, last completed and failed job, sync backlog, models and devices."""
    try:
        snapshot = status_snapshot(app.config())
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(snapshot, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(status_lines(snapshot)))


@main.group("config")
def config_group() -> None:
    """Write and validate edgecv.toml."""


@config_group.command("init")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=service_lib.DATA_DIR,
    show_default=True,
    help="data_dir to write into the file.",
)
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=service_lib.INBOX,
    show_default=True,
    help="inbox to write into the file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(path: Path | None, data_dir: Path, inbox: Path, force: bool) -> None:
    """Write a commented edgecv.toml to PATH (default ./edgecv.toml)."""
    path = path or Path(DEFAULT_CONFIG_NAME)
    if not service_lib.write_config(path, data_dir=data_dir, inbox=inbox, force=force):
        raise click.ClickException(f"{path} exists; pass --force to overwrite it, or choose another PATH")
    click.echo(f"wrote {path}; edit it, then run `edgecv config check {path}`")


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path | None) -> None:
    """Validate PATH (default $EDGECV_CONFIG, then ./edgecv.toml); name the bad key and why."""
    path = find_config_file(path, os.environ)
    if path is None:
        raise click.ClickException(
            f"no config file: pass PATH, set $EDGECV_CONFIG, or create ./{DEFAULT_CONFIG_NAME} "
            "with `edgecv config init`"
        )
    try:
        cfg = load_config(path, environ={})
        check_model_names(cfg)
    except ConfigError as exc:
        message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise click.ClickException(message + _suggestion(exc)) from None
    sync = f"sync to {cfg.sync.url}" if cfg.sync.url else "sync disabled"
    click.echo(f"{path}: ok (data_dir {cfg.data_dir}, inbox {cfg.inbox or '(not set)'}, {sync})")


def _suggestion(exc: ConfigError) -> str:
    """`` (did you mean 'workers'?)`` for an unknown key or name close to a valid one, else ``""``."""
    if not exc.key or not exc.choices:
        return ""
    if isinstance(exc.value, str):  # a mistyped value (a model name)
        section, typed = "", exc.value
    else:  # a mistyped key
        section, _, typed = exc.key.rpartition(".")
    close = difflib.get_close_matches(typed, exc.choices, n=1)
    if not close:
        return ""
    return f" (did you mean {f'{section}.' if section else ''}{close[0]!r}?)"


@main.group("service")
def service_group() -> None:
    """Install edgecv as a systemd service (see docs/install.md)."""


@service_group.command("install")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    help="Write under this folder instead of / (packaging, tests).",
)
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Inbox the service may write (default: the config's inbox, else /srv/edgecv/inbox).",
)
@click.option("--user", default=service_lib.SERVICE_USER, show_default=True, help="System user to run as.")
def service_install(root: Path, inbox: Path | None, user: str) -> None:
    """Write /etc/systemd/system/edgecv.service (and /etc/edgecv/edgecv.toml if missing).

    Runs no system commands: it prints the ones to run next.
    """
    try:
        report = service_lib.install_service(root, inbox=inbox, user=user)
    except PermissionError as exc:
        raise click.ClickException(f"{exc.filename}: permission denied; run it with sudo") from None
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"wrote {report.unit_path}")
    state = "wrote" if report.config_created else "kept existing"
    click.echo(f"{state} {report.config_path}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo("next, as root:")
    for command in report.commands:
        click.echo(f"  {command}")


@service_group.command("uninstall")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    help="Remove under this folder instead of / (packaging, tests).",
)
def service_uninstall(root: Path) -> None:
    """Remove the unit file. The config, the job log and the user stay."""
    try:
        removed, commands = service_lib.uninstall_service(root)
    except PermissionError as exc:
        raise click.ClickException(f"{exc.filename}: permission denied; run it with sudo") from None
    if not removed:
        click.echo("edgecv.service is not installed")
        return
    click.echo("removed edgecv.service; next, as root:")
    for command in commands:
        click.echo(f"  {command}")

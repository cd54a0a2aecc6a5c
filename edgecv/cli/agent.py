"""``edgecv agent``: watch an inbox and process everything that lands in it."""

from __future__ import annotations

from pathlib import Path

import click

from edgecv.agent import Agent
from edgecv.cli import AppContext, backend_option, device_option, fail, main, pass_app
from edgecv.errors import EdgecvError, PortInUse


@main.command("agent")
@click.option(
    "--inbox", type=click.Path(file_okay=False, path_type=Path), help="Folder to watch (env EDGECV_INBOX)."
)
@click.option(
    "--model", "default_model", help="Default model for images without a sidecar or folder mapping."
)
@click.option("--poll/--no-poll", default=None, help="Poll instead of inotify (network shares).")
@device_option
@backend_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker threads, each with its own compiled models (default: workers in edgecv.toml, 1).",
)
@click.option("--once", is_flag=True, help="Process what is in the inbox, then exit when the queue is empty.")
@pass_app
def agent(
    app: AppContext,
    inbox: Path | None,
    default_model: str | None,
    poll: bool | None,
    device: str | None,
    backend: str | None,
    workers: int | None,
    once: bool,
) -> None:
    """Watch INBOX recursively; every image becomes a job. Runs until SIGINT/SIGTERM."""
    cfg = app.config(
        inbox=inbox, default_model=default_model, poll=poll, device=device, backend=backend, workers=workers
    )
    runner = Agent(cfg, once=once)
    runner.install_signal_handlers()
    try:
        runner.run()
    except PortInUse as exc:
        raise click.ClickException(
            f"port {exc.port} is in use (another edgecv agent?); set api.port (EDGECV_API_PORT) "
            "or api.enabled = false, or stop it"
        ) from None
    except EdgecvError as exc:
        raise fail(exc) from None

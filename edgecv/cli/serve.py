"""``edgecv serve``: the local API alone (the agent serves it too, with the workers)."""

from __future__ import annotations

import threading

import click

from edgecv.cli import fail, main, pass_app
from edgecv.errors import EdgecvError, PortInUse


@main.command()
@click.option(
    "--host", help="Address to bind (default api.host, 127.0.0.1). Any other address needs api.token."
)
@click.option("--port", type=int, help="Port (default api.port, 8470).")
@click.option(
    "--webhooks/--no-webhooks",
    default=False,
    help="Also deliver webhooks from this process (off: `edgecv agent` delivers them).",
)
@pass_app
def serve(app, host: str | None, port: int | None, webhooks: bool) -> None:
    """Serve the CV Jobs API for the configured tenant over the local job log.

    The bearer token comes from EDGECV_API_TOKEN or [api] token in edgecv.toml, never from a flag.
    """
    from edgecv.services import build_services
    from edgecv.store import Store

    config = app.config(**{"api.host": host, "api.port": port})
    stop = threading.Event()
    try:
        store = Store(config.db_path)
        services = build_services(config, store, webhooks=webhooks, relay=False)
    except PortInUse as exc:
        raise click.ClickException(
            f"port {exc.port} is in use (another edgecv agent?); pass --port or stop it"
        ) from None
    except EdgecvError as exc:
        raise fail(exc) from None
    services.start_loops(stop)
    click.echo(
        f"edgecv API for tenant {config.tenant_id!r} on http://{config.api.host}:{config.api.port} "
        "(dashboard at /)",
        err=True,
    )
    try:
        services.api.serve_forever()
    finally:
        stop.set()
        store.close()

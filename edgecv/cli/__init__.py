"""The ``edgecv`` command: thin click commands that parse, call one library function, print.

Sub-command groups live in sibling modules (``jobs``, ``models``, ``agent``, ``sync``, ``serve`` …);
each registers itself on :data:`main` when imported below.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from edgecv import __version__
from edgecv.config import Config, load_config
from edgecv.errors import EdgecvError
from edgecv.logging_setup import LOG_FORMATS, configure_logging, register_secrets
from edgecv.paths import private_umask
from edgecv.threads import limit_malloc_arenas

COMMAND_MODULES = ("jobs", "models", "catalog", "run", "agent", "sync", "serve", "admin", "backup", "export")


class AppContext:
    """What every command gets: the global options, and the config loaded once on first use."""

    def __init__(self, config_file: Path | None, overrides: dict) -> None:
        self.config_file = config_file
        self.overrides = overrides
        self._config: Config | None = None

    def config(self, **more) -> Config:
        if self._config is None or more:
            try:
                self._config = load_config(self.config_file, {**self.overrides, **more})
            except EdgecvError as exc:
                raise click.ClickException(str(exc)) from None
            register_secrets(self._config)
        return self._config


# The inference options of the commands that run models (``run``, ``agent``), defined once.
device_option = click.option(
    "--device",
    type=click.Choice(["CPU", "GPU", "NPU", "AUTO"], case_sensitive=False),
    help="Inference device (default: device in edgecv.toml, CPU). An absent GPU/NPU falls back to CPU.",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["auto", "openvino", "onnx"]),
    help="Inference runtime (default: backend in edgecv.toml, auto: OpenVINO where the package has it).",
)


def fail(exc: EdgecvError) -> click.ClickException:
    """A known error → a click error whose text says what happened and how to fix it."""
    return click.ClickException(str(exc))


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecv")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="edgecv.toml to read (default: $EDGECV_CONFIG, then ./edgecv.toml).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the job log, spool and caches live (env EDGECV_DATA_DIR).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log lines on stderr from this level up (default: log_level in edgecv.toml, INFO).",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="Log lines on stderr: human-readable, or JSON lines. Secrets are always redacted.",
)
@click.pass_context
def main(
    ctx: click.Context,
    config_file: Path | None,
    data_dir: Path | None,
    log_level: str | None,
    log_format: str,
) -> None:
    """edgecv: the CV Jobs API on edge hardware."""
    private_umask()  # what edgecv writes (job log, spool, quarantine, caches) is for this user only
    limit_malloc_arenas()  # before any thread: per-thread arenas made a long-running agent's RSS creep
    ctx.obj = AppContext(config_file, {"data_dir": data_dir, "log_level": log_level})
    configure_logging((log_level or "INFO").upper(), log_format)


for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"edgecv.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"edgecv.cli.{_name}":
            raise

"""Which model packages are installed here, and whether the config names only installed ones.

Read by the agent, the detector pools, the API, ``edgecv status``, ``doctor`` and the CLI. Search order
(first folder holding a name wins): ``models_dirs`` from the config, the data dir's ``models/`` (where
``edgecv models add`` puts custom models), then the packages shipped with edgecv.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecv.config import Config
from edgecv.errors import ConfigError, ModelNotFound
from edgecv.runtime.package import ModelPackage, bundled_models_dir, discover_packages, load_package


def model_dirs(config: Config) -> list[Path]:
    dirs = [*config.models_dirs, config.user_models_dir]
    bundled = bundled_models_dir()
    if bundled is not None:
        dirs.append(bundled)
    return dirs


def installed_revision(config: Config, name: str) -> str | None:
    """Which bundle-installed version ``name`` points at now (the target of ``models/<name>``, swapped
    by ``edgecv models install`` / ``rollback``), or None for a package that is not bundle-installed.
    One ``readlink``: cheap enough for a running agent to ask before each job."""
    try:
        return os.readlink(config.user_models_dir / name)
    except OSError:
        return None


def installed_models(config: Config) -> dict[str, ModelPackage]:
    """Every installed package by name (manifests parsed; weights not hashed)."""
    return discover_packages(model_dirs(config))


def find_package(config: Config, name: str, *, verify: bool = True) -> ModelPackage:
    """The package for ``name``, sha256-verified, or ModelNotFound naming what is installed."""
    packages = installed_models(config)
    if name not in packages:
        known = ", ".join(sorted(packages)) or "none"
        raise ModelNotFound(
            f"model {name!r} is not installed (installed: {known}); "
            "add it with `edgecv models add` or choose another model"
        )
    return load_package(packages[name].path, verify=verify)


def configured_models(config: Config) -> dict[str, str]:
    """Every model the config names, by key: ``default_model`` and ``folders.<sub-folder>``."""
    return {"default_model": config.default_model, **{f"folders.{k}": v for k, v in config.folders.items()}}


def unknown_models(config: Config) -> dict[str, str]:
    """The configured models (key → name) that are not installed; empty when every name is."""
    installed = installed_models(config)
    return {key: name for key, name in configured_models(config).items() if name not in installed}


def check_model_names(config: Config) -> None:
    """Raise ConfigError naming every configured model that is not installed (every image would fail)."""
    unknown = unknown_models(config)
    if not unknown:
        return
    installed = sorted(installed_models(config))
    named = ", ".join(f"{key} {name!r}" for key, name in unknown.items())
    raise ConfigError(
        f"{named}: not installed (installed: {', '.join(installed) or 'none'}); "
        "fix the name in edgecv.toml, or install the model with `edgecv models add`",
        key=next(iter(unknown)),
        value=next(iter(unknown.values())),
        hint="an installed model name",
        choices=installed,
    )

"""Folders edgecv writes to: created on first use, or a clear :class:`DataDirError` saying how to fix it."""

from __future__ import annotations

import os
from pathlib import Path

from edgecv.errors import DataDirError


def ensure_writable_dir(path: Path, what: str = "data dir") -> Path:
    """Create ``path`` (and its parents) if needed and check this user can write in it.

    Raises DataDirError naming ``what``, the path, and how to fix it, instead of an OSError traceback.
    """
    path = Path(path)
    hint = (
        f"create it writable by this user (sudo install -d -o $(id -un) {path}), "
        "or choose another with --data-dir (EDGECV_DATA_DIR, data_dir in edgecv.toml)"
    )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        if isinstance(exc, (NotADirectoryError, FileExistsError)):
            reason += ": part of the path is a file"
        raise DataDirError(f"{what} {path} cannot be created ({reason}); {hint}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"{what} {path} is not writable by this user; {hint}")
    return path

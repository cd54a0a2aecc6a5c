"""Folders edgecv writes to: created on first use, or a clear :class:`DataDirError` saying how to fix it."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from edgecv.errors import DataDirError

log = logging.getLogger(__name__)


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


# -- private at rest -----------------------------------------------------------------------------
# The data dir holds the job log (webhook secrets), spooled images and quarantined files: nothing in it
# is for other local users. New files and folders are 0600 / 0700 (the umask below); what we find
# looser is tightened. "Looser" means other users may read, write or enter it, or the group may write:
# 0750 / 0640 stay as they are, so a service group (systemd's StateDirectoryMode=0750) keeps its read.

PRIVATE_UMASK = 0o077
_LOOSE_BITS = 0o027  # group write + anything for others


def private_umask() -> int:
    """Make every file this process creates private to its user (umask |= 077); returns the old umask."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def tighten(path: Path) -> tuple[int, int] | None:
    """Clear the loose bits of ``path`` (never following a symlink); ``(old, new)`` mode if it changed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    old = stat.S_IMODE(st.st_mode)
    if not old & _LOOSE_BITS:
        return None
    new = old & ~_LOOSE_BITS
    try:
        os.chmod(path, new)
    except PermissionError:  # another user's file hard-linked into the spool: its folder is private
        return None
    return old, new


def secure_paths(paths: Iterable[Path], root: Path) -> int:
    """Tighten each of ``paths`` (not what is below them); one warning line; returns how many changed."""
    changed = [(p, *r) for p in paths if (r := tighten(Path(p))) is not None]
    _report(changed, Path(root))
    return len(changed)


def secure_data_dir(data_dir: Path, *, skip: Iterable[Path | None] = ()) -> int:
    """Create ``data_dir`` private (0700) and tighten it and everything below it (agent, serve and run
    start-up), except the folders in ``skip`` (an inbox inside the data dir belongs to the uploaders).
    One warning line says what was repaired; returns how many paths changed."""
    data_dir = ensure_writable_dir(data_dir)
    skipped = {Path(p).absolute() for p in skip if p is not None}
    changed: list[tuple[Path, int, int]] = []
    stack = [data_dir]
    if (r := tighten(data_dir)) is not None:
        changed.append((data_dir, *r))
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            continue
        for entry in entries:
            path = Path(entry.path)
            if path.absolute() in skipped:
                continue
            if (r := tighten(path)) is not None:
                changed.append((path, *r))
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
    _report(changed, data_dir)
    return len(changed)


def _report(changed: list[tuple[Path, int, int]], root: Path) -> None:
    if not changed:
        return
    path, old, new = changed[0]
    try:
        shown = str(path.relative_to(root)) if path != root else str(root)
    except ValueError:
        shown = str(path)
    log.warning(
        "%d path(s) under %s could be read or changed by other local users; tightened them (e.g. %s %04o -> %04o)",
        len(changed),
        root,
        shown,
        old,
        new,
    )


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (before SQLite opens it with 0644)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def readable_by_others(path: Path) -> bool:
    """True if users other than the owner and its group may read (or list) ``path``."""
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o004)

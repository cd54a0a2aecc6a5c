"""Read-only views of a job log for ``edgecv status`` and ``edgecv doctor``.

These open the database with ``mode=ro``: no migration runs, nothing is created, and a database written
by a newer edgecv is reported instead of touched. Tables added by later migrations may be missing in an
older database; the functions here then answer as if they were empty.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.errors import SchemaTooNew, StoreError
from edgecv.records import Job


@dataclass(frozen=True)
class DatabaseHealth:
    path: Path
    size_bytes: int
    wal_bytes: int
    user_version: int
    integrity: str  # "ok" or SQLite's list of problems


class ReadOnlyStore:
    """Just enough of :class:`~edgecv.store.Store` (``path``, ``conn``) for read-only helpers."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path


@contextlib.contextmanager
def open_readonly(path: Path) -> Iterator[ReadOnlyStore]:
    """The job log at ``path``, read-only. Raises StoreError if it cannot be opened."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no job log yet (the agent creates it on first start)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        if not any(word in str(exc) for word in ("not a database", "malformed")):
            raise StoreError(
                f"{path}: cannot read the job log ({exc}); run as the user the agent runs as "
                "(e.g. `sudo -u edgecv edgecv status`)"
            ) from None
        raise StoreError(
            f"{path}: the job log is damaged ({exc}); restart the agent (it sets the file aside in "
            "damaged/ and rebuilds the log) or stop it and `edgecv restore FILE` from a backup"
        ) from None
    try:
        yield ReadOnlyStore(conn, path)
    finally:
        conn.close()


def check_schema(store: ReadOnlyStore, known: int) -> int:
    """The database's schema version; SchemaTooNew when a newer edgecv wrote it."""
    version = store.conn.execute("PRAGMA user_version").fetchone()[0]
    if version > known:
        raise SchemaTooNew(
            f"{store.path} was written by a newer edgecv (schema {version}; this version knows up to "
            f"{known}). Upgrade edgecv; the database was not modified."
        )
    return version


def database_health(path: Path) -> DatabaseHealth:
    """Sizes, schema version and ``PRAGMA integrity_check`` of the job log at ``path``."""
    path = Path(path)
    wal = path.with_name(path.name + "-wal")
    with open_readonly(path) as store:
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
        integrity = ", ".join(row[0] for row in store.conn.execute("PRAGMA integrity_check"))
    return DatabaseHealth(
        path=path,
        size_bytes=path.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        user_version=version,
        integrity=integrity,
    )


def last_job(store: ReadOnlyStore, status: str) -> Job | None:
    """The most recently finished job with ``status`` (``completed`` or ``failed``)."""
    from edgecv.store import _job  # the one place rows become records

    row = store.conn.execute(
        "SELECT * FROM jobs WHERE status = ? ORDER BY completed_at DESC, id DESC LIMIT 1", (status,)
    ).fetchone()
    return _job(row) if row else None


def recent_failures(store: ReadOnlyStore, limit: int) -> list[Job]:
    """The ``limit`` most recently failed jobs, newest first."""
    from edgecv.store import _job

    rows = store.conn.execute(
        "SELECT * FROM jobs WHERE status = 'failed' ORDER BY completed_at DESC, id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_job(row) for row in rows]


def newest_job_time(store: ReadOnlyStore) -> str | None:
    """The latest timestamp any job carries (ISO UTC), for the clock sanity check."""
    row = store.conn.execute(
        "SELECT MAX(MAX(created_at, COALESCE(started_at, ''), COALESCE(completed_at, ''))) FROM jobs"
    ).fetchone()
    return row[0] or None


def optional(fn: Any, *args: Any, default: Any = None) -> Any:
    """``fn(*args)``, or ``default`` when a table it reads does not exist in this (older) schema."""
    try:
        return fn(*args)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return default
        raise

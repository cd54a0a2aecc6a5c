"""A damaged job log: the start-up check, setting a bad file aside, salvaging its rows; backup and restore.

At start-up (the agent holds the data-dir lock) :func:`check_job_log` opens the job log as SQLite
would (its write-ahead log applied) and runs ``PRAGMA quick_check``. A file that is not a SQLite
database, cannot be opened, or fails the check is never used silently: :func:`set_aside` moves it
(with its ``-wal`` and ``-shm``, which belong to it and would corrupt any other database) into
``<data-dir>/damaged/`` with a ``.reason`` file beside it, and :func:`salvage` copies every row
that can still be read into the fresh job log. The caller then re-ingests spooled images that lost
their observation (``ingest.recover_spool``).

:func:`backup` uses SQLite's online backup API (a consistent snapshot while the agent writes);
:func:`check_backup_file` and :func:`restore` put such a file back when no agent runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecv.errors import SchemaTooNew, StoreError

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm")
# salvage order: referenced tables first (foreign keys), then those that reference them
SALVAGE_ORDER = (
    "settings",
    "observations",
    "jobs",
    "outbox",
    "sync_images",
    "spool_retention",
    "sync_status",
    "webhook_endpoints",
    "webhook_deliveries",
)
JSON_COLUMNS = {"observations": ("metadata",), "jobs": ("result",)}


class JobLogDamaged(StoreError):
    """The job log failed the start-up check; ``problem`` says how."""

    code = "job_log_damaged"

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass
class SalvageReport:
    copied: dict[str, int] = field(default_factory=dict)  # rows copied per table
    skipped: dict[str, int] = field(default_factory=dict)  # rows read but unusable (bad JSON, lost parent)
    unreadable: list[str] = field(default_factory=list)  # tables that could not be read to the end

    def summary(self) -> str:
        if self.unreadable == ["all"]:
            return "nothing in it was readable"
        parts = [f"{table} {n}" for table, n in self.copied.items() if n]
        text = "rows salvaged: " + (", ".join(parts) or "none")
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{t} {n}" for t, n in self.skipped.items())
        if self.unreadable:
            text += "; read only in part: " + ", ".join(self.unreadable)
        return text


def side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in SIDE_FILES]


def problem_of(path: Path, *, known_version: int | None = None) -> str | None:
    """Why the job log at ``path`` must not be used, or None when it passes ``quick_check``.

    Opens it read-write as the agent would (SQLite applies or discards the write-ahead log: a
    truncated WAL loses only its incomplete tail). A missing file is no problem (a new log starts).
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        return "it is not a regular file"
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        return "it is not a SQLite database (wrong file header)"
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        return f"SQLite cannot open it ({exc})"
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if known_version is not None and version > known_version:
            return None  # a newer edgecv's log: Store refuses it with SchemaTooNew, untouched
        rows = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.DatabaseError as exc:
        return f"SQLite cannot read it ({exc})"
    finally:
        conn.close()
    if rows != ["ok"]:
        return "PRAGMA quick_check found: " + "; ".join(rows)
    return None


def set_aside(path: Path, damaged_dir: Path, problem: str) -> Path:
    """Move the job log and its ``-wal``/``-shm`` into ``damaged_dir`` with a ``.reason`` file; the new path."""
    damaged_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = damaged_dir / f"{path.name}.{stamp}"
    n = 1
    while dest.exists():
        dest = damaged_dir / f"{path.name}.{stamp}.{n}"
        n += 1
    for src, dst in zip([path, *side_files(path)], [dest, *side_files(dest)], strict=True):
        if src.exists():
            shutil.move(src, dst)
    dest.with_name(dest.name + ".reason").write_text(
        f"file: {path}\nproblem: {problem}\nmoved: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
        "what was readable was copied into a new job log; images still in the spool were queued again.\n",
        encoding="utf-8",
    )
    return dest


def salvage(damaged: Path, conn: sqlite3.Connection) -> SalvageReport:
    """Copy every readable, well-formed row of the job log at ``damaged`` into ``conn`` (the fresh log).

    Row by row, table by table: a table whose pages cannot be read keeps what was read before the
    error; a row with unparseable JSON or whose parent row was lost is skipped. Never raises on damage.
    """
    report = SalvageReport()
    try:
        src = sqlite3.connect(f"{damaged.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        log.warning("nothing salvaged from %s: %s", damaged, exc)
        report.unreadable.append("all")
        return report
    try:
        for table in SALVAGE_ORDER:
            _salvage_table(src, conn, table, report)
    finally:
        src.close()
    return report


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _salvage_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, report: SalvageReport
) -> None:
    try:
        have = set(_columns(src, table))
    except sqlite3.DatabaseError:
        report.unreadable.append(table)
        return
    columns = [c for c in _columns(dst, table) if c in have]
    if not columns:
        return  # an older log without this table
    names = ", ".join(columns)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    json_at = [columns.index(c) for c in JSON_COLUMNS.get(table, ()) if c in columns]
    copied = skipped = 0
    dst.execute("BEGIN IMMEDIATE")
    try:
        cursor = src.execute(f"SELECT {names} FROM {table}")
        while True:
            try:
                rows = cursor.fetchmany(500)
            except sqlite3.DatabaseError:
                report.unreadable.append(table)
                break
            if not rows:
                break
            for row in rows:
                if not _json_ok(row, json_at):
                    skipped += 1
                    continue
                try:
                    copied += dst.execute(insert, row).rowcount
                except sqlite3.Error:  # a lost parent row (foreign key), a broken value
                    skipped += 1
    except sqlite3.DatabaseError:
        report.unreadable.append(table)
    dst.execute("COMMIT")
    report.copied[table] = copied
    if skipped:
        report.skipped[table] = skipped


def _json_ok(row: tuple, positions: list[int]) -> bool:
    for i in positions:
        if row[i] is not None:
            try:
                json.loads(row[i])
            except (TypeError, ValueError):
                return False
    return True


# -- backup and restore --------------------------------------------------------------------------


def backup(db_path: Path, dest: Path) -> int:
    """Copy the live job log at ``db_path`` to ``dest`` with SQLite's online backup API.

    Safe while the agent writes: the copy is one consistent snapshot. ``dest`` is a single file (no
    WAL), written beside its final name and renamed into place, then checked. Returns its size.
    """
    db_path, dest = Path(db_path), Path(dest)
    if not db_path.is_file():
        raise StoreError(f"{db_path}: no job log to back up (the agent creates it on first start)")
    if dest.exists():
        raise StoreError(f"{dest} exists; choose another file name or delete it first")
    if not dest.parent.is_dir():
        raise StoreError(f"{dest.parent} is not a folder; create it first")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        src = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            out = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(out, pages=1024)
                out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                result = [row[0] for row in out.execute("PRAGMA quick_check")]
            finally:
                out.close()
        finally:
            src.close()
        if result != ["ok"]:
            raise StoreError(f"the backup failed its check ({'; '.join(result)}); the job log may be damaged")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        raise StoreError(f"backup of {db_path} failed: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        for side in side_files(tmp):
            side.unlink(missing_ok=True)
    return dest.stat().st_size


def check_backup_file(path: Path, known_version: int) -> int:
    """The schema version of a job-log file fit to restore; StoreError saying why not otherwise."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    problem = problem_of(path, known_version=known_version)
    if problem is not None:
        raise StoreError(f"{path} cannot be restored: {problem}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    if version > known_version:
        raise SchemaTooNew(
            f"{path} was written by a newer edgecv (schema {version}; this version knows up to "
            f"{known_version}); upgrade edgecv first"
        )
    if not {"jobs", "observations"} <= tables:
        raise StoreError(f"{path} is a SQLite database but not an edgecv job log (no jobs table)")
    return version


def restore(src: Path, db_path: Path, known_version: int) -> Path | None:
    """Replace the job log at ``db_path`` with the checked backup ``src`` (no agent may run on it).

    The current log, with its ``-wal``/``-shm``, moves to ``<name>.before-restore-<time>`` beside it
    (returned; None when there was none). The copy is written beside its final name, fsynced and renamed.
    """
    src, db_path = Path(src), Path(db_path)
    check_backup_file(src, known_version)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(f".{db_path.name}.restore.tmp")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    previous = None
    if db_path.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        previous = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
        for cur, old in zip([db_path, *side_files(db_path)], [previous, *side_files(previous)], strict=True):
            if cur.exists():
                os.replace(cur, old)
    else:
        for side in side_files(db_path):  # a stray WAL would be applied to the restored file
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
    os.replace(tmp, db_path)
    return previous


# -- start-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    """What the start-up check did with a damaged job log."""

    problem: str
    moved_to: Path
    report: SalvageReport

    def message(self, path: Path) -> str:
        return (
            f"job log {path} is damaged ({self.problem}); it was moved to {self.moved_to} (with its -wal and "
            f"-shm) and a new job log was started; {self.report.summary()}; images still in the spool are "
            f"queued again. Keep {self.moved_to} for support; if you have a newer backup, stop the agent "
            "and run `edgecv restore FILE`"
        )


def open_checked(path: Path, damaged_dir: Path):
    """The job log at ``path`` after the start-up check: ``(store, None)``, or ``(store, Rebuilt)`` when
    the file was damaged, set aside and salvaged into a new log. Call only while holding the data-dir lock.

    A missing ``-wal`` beside a ``-shm`` (the log was copied or cleaned without its write-ahead log) is
    logged as a warning: the newest transactions are gone, and the spool check queues their images again.
    """
    from edgecv.store import Store, schema_version

    path = Path(path)
    wal, shm = side_files(path)
    if path.exists() and shm.exists() and not wal.exists():
        log.warning(
            "job log %s: its write-ahead log (%s) is missing while %s is there; the newest transactions "
            "may be lost. Images still in the spool are queued again.",
            path,
            wal.name,
            shm.name,
        )
    problem = problem_of(path, known_version=schema_version())
    if problem is None:
        return Store(path), None
    moved = set_aside(path, damaged_dir, problem)
    store = Store(path)
    report = salvage(moved, store.conn)
    rebuilt = Rebuilt(problem, moved, report)
    log.error("%s", rebuilt.message(path))
    return store, rebuilt

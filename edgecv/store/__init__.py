"""The job log: every SQL statement edgecv runs lives in this package.

stdlib sqlite3, WAL mode, one connection per thread, autocommit mode with explicit transactions
(``BEGIN IMMEDIATE`` for every write, so writers queue on the busy timeout instead of failing on
upgrade). Schema versions are the numbered ``migrations/*.sql`` files, applied in order and recorded
in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from edgecv.errors import DiskFull, JobNotFound, ObservationNotFound, SchemaTooNew, StoreError
from edgecv.ids import new_id, not_before
from edgecv.paths import create_private_file, ensure_writable_dir, secure_paths
from edgecv.records import JOB_STATUSES, Job, Observation, utc_now
from edgecv.store import mqtt as mqtt_sql
from edgecv.store import outbox
from edgecv.store import webhooks as webhook_sql

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every ``migrations/NNNN_name.sql``, in order."""
    found = []
    for entry in resources.files("edgecv.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise StoreError(f"migration {name}: expected version {expected}, got {version}")
    return found


def schema_version() -> int:
    """The schema version this build of edgecv writes."""
    return len(migrations())


def _job(row: sqlite3.Row, result: Any = None) -> Job:
    """The Job of a row; ``result`` is the already-parsed result when the caller just wrote it."""
    return Job(
        id=row["id"],
        observation_id=row["observation_id"],
        model=row["model"],
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        result=result if result is not None else json.loads(row["result"]) if row["result"] else None,
        error_code=row["error_code"],
        error_message=row["error_message"],
        inference_ms=row["inference_ms"],
        device=row["device"],
        model_version=row["model_version"] if "model_version" in row.keys() else None,  # read-only v1-v5
        lease_owner=row["lease_owner"],
    )


def _observation(row: sqlite3.Row, id_key: str = "id", created_key: str = "created_at") -> Observation:
    """An observation from a row (``id_key`` / ``created_key`` name those columns in a joined query)."""
    return Observation(
        id=row[id_key],
        sha256=row["sha256"],
        spool_path=row["spool_path"],
        original_name=row["original_name"],
        media_type=row["media_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
        metadata=json.loads(row["metadata"]),
        created_at=row[created_key],
    )


class Store:
    """The SQLite job log. Thread-safe: each thread gets its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []  # owner thread, conn
        self._lock = threading.Lock()
        # one writer at a time inside this process: a thread waiting for another thread's transaction
        # wakes the moment it commits, instead of sleeping in SQLite's busy handler (1, 2, 5, 10 … ms
        # steps); other processes (the CLI, a second reader) still meet the busy timeout
        self._write_lock = threading.RLock()
        self.on_job_queued: Callable[[Job], None] | None = None  # called after the commit that queues a job
        ensure_writable_dir(self.path.parent)
        create_private_file(self.path)  # webhook secrets live here: never readable by other local users
        self._migrate()
        secure_paths([self.path.parent, *self.files()], self.path.parent)

    def files(self) -> list[Path]:
        """The job log's files on disk: the database and its WAL and shared-memory files."""
        return [
            self.path,
            self.path.with_name(self.path.name + "-wal"),
            self.path.with_name(self.path.name + "-shm"),
        ]

    # -- connections and transactions ---------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            me = threading.current_thread()
            with self._lock:
                # threads come and go (backlog lanes, decode pools): close the connections of those that
                # ended, or a long-running agent would keep two file descriptors per backlog forever
                ended = [c for t, c in self._connections if not t.is_alive()]
                self._connections = [(t, c) for t, c in self._connections if t.is_alive()]
                self._connections.append((me, conn))
            for old in ended:
                with contextlib.suppress(sqlite3.Error):
                    old.close()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception, a failed ``COMMIT`` included).
        Not re-entrant. A full disk raises :class:`DiskFull` (nothing of the transaction is kept)."""
        conn = self.conn
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                    raise DiskFull.writing("the job log", self.path) from exc
                raise

    def close(self) -> None:
        with self._lock:
            for _, conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        steps = migrations()
        target = len(steps)
        current = self.conn.execute("PRAGMA user_version").fetchone()[0]  # a read: writes nothing
        if current > target:
            raise SchemaTooNew(
                f"{self.path} was written by a newer edgecv (schema {current}; this version knows "
                f"up to {target}). Upgrade edgecv; the database was not modified."
            )
        self.conn.execute("PRAGMA journal_mode = WAL")  # persistent: stored in the database file
        with self.transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for version, name, sql in steps[current:]:
                log.info("applying migration %s", name)
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
        for table in ("observations", "jobs", "webhook_deliveries"):  # ids continue after the newest
            newest = self.conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0]
            if newest:
                not_before(newest)

    def user_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        return ", ".join(row[0] for row in self.conn.execute("PRAGMA integrity_check"))

    # -- settings -------------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting_once(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return what is stored (first writer wins)."""
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, value))
            return conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()[0]

    # -- observations and job creation ----------------------------------------------------------

    def add_observation(
        self,
        *,
        sha256: str,
        spool_path: str,
        original_name: str,
        media_type: str,
        size_bytes: int,
        width: int,
        height: int,
        metadata: dict[str, Any],
        model: str | None,
    ) -> tuple[Observation, Job | None, bool]:
        """Insert an observation (and a queued job for ``model``) in one transaction.

        Identical bytes are one observation; the same observation and model are one job. Returns
        ``(observation, job, created)`` where ``created`` says whether a new job was queued.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM observations WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                obs_id = new_id("obs")
                conn.execute(
                    "INSERT INTO observations (id, sha256, spool_path, original_name, media_type, size_bytes,"
                    " width, height, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        obs_id,
                        sha256,
                        spool_path,
                        original_name,
                        media_type,
                        size_bytes,
                        width,
                        height,
                        json.dumps(metadata, ensure_ascii=False),
                        utc_now(),
                    ),
                )
                row = conn.execute("SELECT * FROM observations WHERE id = ?", (obs_id,)).fetchone()
            observation = _observation(row)
            if model is None:
                return observation, None, False
            job, created = self._insert_job(conn, observation.id, model)
        if created:
            self._queued(job)
        return observation, job, created

    def create_job(self, observation_id: str, model: str) -> tuple[Job, bool]:
        """Queue a job for an existing observation; the existing job if one exists for that model."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM observations WHERE id = ?", (observation_id,)).fetchone() is None:
                raise ObservationNotFound(f"observation {observation_id} does not exist")
            job, created = self._insert_job(conn, observation_id, model)
        if created:
            self._queued(job)
        return job, created

    def _queued(self, job: Job) -> None:
        if self.on_job_queued is not None:
            self.on_job_queued(job)

    @staticmethod
    def _insert_job(conn: sqlite3.Connection, observation_id: str, model: str) -> tuple[Job, bool]:
        row = conn.execute(
            "SELECT * FROM jobs WHERE observation_id = ? AND model = ?", (observation_id, model)
        ).fetchone()
        if row is not None:
            return _job(row), False
        job_id = new_id("job")
        conn.execute(
            "INSERT INTO jobs (id, observation_id, model, status, created_at) VALUES (?, ?, ?, 'queued', ?)",
            (job_id, observation_id, model, utc_now()),
        )
        return _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()), True

    def get_observation(self, observation_id: str) -> Observation:
        row = self.conn.execute("SELECT * FROM observations WHERE id = ?", (observation_id,)).fetchone()
        if row is None:
            raise ObservationNotFound(f"observation {observation_id} does not exist")
        return _observation(row)

    def original_names(self, observation_ids: list[str]) -> dict[str, str]:
        """Each observation's file name as dropped (relative to the inbox), by observation id."""
        ids = list(dict.fromkeys(observation_ids))
        if not ids:
            return {}
        rows = self.conn.execute(
            f"SELECT id, original_name FROM observations WHERE id IN ({', '.join('?' * len(ids))})", ids
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def observation_hashes(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT sha256 FROM observations")}

    def observations_without_jobs(self) -> list[Observation]:
        """Observations no job refers to (after a damaged job log lost some of its job rows)."""
        rows = self.conn.execute(
            "SELECT * FROM observations WHERE id NOT IN (SELECT observation_id FROM jobs) ORDER BY id"
        ).fetchall()
        return [_observation(r) for r in rows]

    def find_observation_by_hash(self, sha256: str) -> Observation | None:
        row = self.conn.execute("SELECT * FROM observations WHERE sha256 = ?", (sha256,)).fetchone()
        return _observation(row) if row else None

    # -- reading jobs ---------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"job {job_id} does not exist; list jobs with `edgecv jobs list`")
        return _job(row)

    def list_jobs(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        after: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first. ``cursor`` is the last id of the previous page; returns ``(jobs, next_cursor)``.
        ``after`` keeps only ids above it (with ``cursor``, a time window: ids sort by creation time).

        Keyset pagination on the time-sortable id: jobs inserted while a client pages have larger ids
        and never shift the pages it has not read yet.
        """
        if status is not None and status not in JOB_STATUSES:
            raise StoreError(f"status: expected one of {', '.join(JOB_STATUSES)}, got {status!r}")
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
        if cursor is not None:
            clauses.append("id < ?")
            params.append(cursor)
        if after is not None:
            clauses.append("id > ?")
            params.append(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(int(limit), 1000))
        rows = self.conn.execute(
            f"SELECT * FROM jobs {where} ORDER BY id DESC LIMIT ?", (*params, limit + 1)
        ).fetchall()
        jobs = [_job(r) for r in rows[:limit]]
        next_cursor = jobs[-1].id if len(rows) > limit else None
        return jobs, next_cursor

    def jobs_for_observation(self, observation_id: str) -> list[Job]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE observation_id = ? ORDER BY id", (observation_id,)
        ).fetchall()
        return [_job(r) for r in rows]

    # -- leases and state transitions -----------------------------------------------------------

    def count_queued(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]

    def count_open(self, model: str, *, up_to: int) -> int:
        """Jobs of ``model`` queued or processing, counted up to ``up_to`` (stops early: cheap)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status IN ('queued', 'processing')"
            " AND model = ? LIMIT ?)",
            (model, up_to),
        ).fetchone()
        return int(row[0])

    def claim_jobs(self, owner: str, lease_s: float, *, limit: int, model: str | None = None) -> list[Job]:
        """Claim up to ``limit`` oldest queued jobs (of ``model``, if given) at once, oldest first."""
        only = " AND model = ?" if model is not None else ""
        with self.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = 'processing', lease_owner = ?, lease_expires_at = ?,"
                " attempts = attempts + 1, started_at = ? WHERE id IN"
                f" (SELECT id FROM jobs WHERE status = 'queued'{only} ORDER BY id LIMIT ?) RETURNING *",
                (
                    owner,
                    time.time() + lease_s,
                    utc_now(),
                    *((model,) if model is not None else ()),
                    int(limit),
                ),
            ).fetchall()
        return sorted((_job(r) for r in rows), key=lambda j: j.id)

    def claim_job(self, owner: str, lease_s: float, *, job_id: str | None = None) -> Job | None:
        """Take the oldest queued job (or ``job_id`` if it is queued): ``processing``, leased, attempts + 1."""
        pick = "?" if job_id else "(SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1)"
        params = (owner, time.time() + lease_s, utc_now(), *((job_id,) if job_id else ()))
        with self.transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'processing', lease_owner = ?, lease_expires_at = ?,"
                f" attempts = attempts + 1, started_at = ? WHERE id = {pick} AND status = 'queued'"
                " RETURNING *",
                params,
            ).fetchone()
        return _job(row) if row else None

    def complete_job(
        self,
        job_id: str,
        owner: str,
        result: dict[str, Any],
        *,
        inference_ms: float | None = None,
        device: str | None = None,
        model_version: str | None = None,
    ) -> Job:
        """``processing → completed`` with its result and outbox row, in one transaction;
        ``model_version``: the version of the package it ran on."""
        # the returned Job carries ``result`` itself rather than parsing back what was written (~0.3 ms
        # a dense shelf); pipelines return JSON-native values (lists, dicts, str, int, float, bool, None)
        return self._finish(
            job_id,
            owner,
            "completed",
            result=json.dumps(result, ensure_ascii=False),
            parsed=result,
            inference_ms=inference_ms,
            device=device,
            model_version=model_version,
        )

    def fail_job(self, job_id: str, owner: str, code: str, message: str) -> Job:
        """``processing → failed`` with a stable error code and a message saying what to do."""
        return self._finish(job_id, owner, "failed", error_code=code, error_message=message)

    def _finish(self, job_id: str, owner: str, status: str, **values: Any) -> Job:
        with self.transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = ?, completed_at = ?, result = ?, error_code = ?, error_message = ?,"
                " inference_ms = ?, device = ?, model_version = ?, lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND status = 'processing' AND lease_owner = ? RETURNING *",
                (
                    status,
                    utc_now(),
                    values.get("result"),
                    values.get("error_code"),
                    values.get("error_message"),
                    values.get("inference_ms"),
                    values.get("device"),
                    values.get("model_version"),
                    job_id,
                    owner,
                ),
            ).fetchone()
            if row is None:
                raise StoreError(f"job {job_id} is not leased to {owner}; it was not finished twice")
            job = _job(row, values.get("parsed"))
            self._on_finished(conn, job)
        return job

    def _on_finished(self, conn: sqlite3.Connection, job: Job) -> None:
        """Rows written in the finishing transaction: the outbox entry for upstream sync, the
        webhook deliveries and the MQTT event (each module owns its table's rows)."""
        outbox.enqueue_job_result(conn, job)
        webhook_sql.enqueue_job_event(conn, job)
        mqtt_sql.enqueue_job_event(conn, job)

    def fail_queued_job(self, job_id: str, code: str, message: str) -> Job:
        """Fail a job that never ran (e.g. its model is not installed): claim and fail in one go."""
        owner = f"reject:{job_id}"
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'processing', lease_owner = ?, started_at = ? WHERE id = ? AND status = 'queued'",
                (owner, utc_now(), job_id),
            )
        return self.fail_job(job_id, owner, code, message)

    def release_jobs(self, job_ids: list[str], owner: str) -> int:
        """Hand claimed jobs that were never started back to the queue (attempt not counted)."""
        with self.transaction() as conn:
            return sum(
                conn.execute(
                    "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL,"
                    " lease_expires_at = NULL, started_at = NULL"
                    " WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                    (job_id, owner),
                ).rowcount
                for job_id in job_ids
            )

    def renew_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND status = 'processing' AND lease_owner = ?",
                (time.time() + lease_s, job_id, owner),
            )
            return cur.rowcount == 1

    def correct_leases(self, step_s: float, lease_s: float) -> int:
        """The system clock jumped by ``step_s`` seconds: bring lease expiries written before the jump
        back to what they meant, so no lease looks expired early (clock forward: a job in hand would be
        run twice) or lives on for the size of the jump (clock back). Only expiries that the jump made
        impossible are moved (forward: already past; back: further ahead than ``lease_s``); those
        written after it are right as they are. Returns how many were corrected."""
        now = time.time()
        if step_s > 0:
            where, params = "lease_expires_at <= ?", (now,)
        else:
            where, params = "lease_expires_at > ?", (now + lease_s,)
        with self.transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET lease_expires_at = lease_expires_at + ? WHERE status = 'processing' AND {where}",
                (step_s, *params),
            ).rowcount

    def recover_jobs(self, max_attempts: int, *, only_expired: bool = False) -> tuple[int, int]:
        """Return abandoned ``processing`` jobs to ``queued``; fail those that used up their attempts.

        At start-up (the agent holds the data-dir lock) every ``processing`` job is abandoned; while
        running, only those whose lease expired. Returns ``(requeued, failed)``.
        """
        now = time.time()
        expired = " AND lease_expires_at < ?" if only_expired else ""
        params: tuple = (now,) if only_expired else ()
        with self.transaction() as conn:
            rows = conn.execute(f"SELECT * FROM jobs WHERE status = 'processing'{expired}", params).fetchall()
            requeued = failed = 0
            for row in rows:
                if row["attempts"] >= max_attempts:
                    message = (
                        f"processing was interrupted {row['attempts']} times (crash, kill or lost lease); "
                        "the image may crash the runtime. Inspect it, then resubmit it under another name."
                    )
                    done = conn.execute(
                        "UPDATE jobs SET status = 'failed', completed_at = ?, error_code = 'attempts_exhausted',"
                        " error_message = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? RETURNING *",
                        (utc_now(), message, row["id"]),
                    ).fetchone()
                    self._on_finished(conn, _job(done))
                    failed += 1
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL"
                        " WHERE id = ?",
                        (row["id"],),
                    )
                    requeued += 1
        if requeued or failed:
            log.warning(
                "recovered abandoned jobs: %d requeued, %d failed (attempts exhausted)", requeued, failed
            )
        return requeued, failed


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (sqlite3.complete_statement decides where one ends)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(part.strip().startswith("--") for part in buf.strip().splitlines()):
        out.append(buf.strip())
    return out

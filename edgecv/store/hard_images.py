"""Hard-image SQL: the images kept for labelling (``hard_images`` table, schema 9) and the sampler's cursor.

The policy lives in :mod:`edgecv.hard_images`; this module only reads and writes rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecv.records import Job, Observation
from edgecv.store import Store, _job, _observation

CURSOR_KEY = "hard_images.cursor"  # "<completed_at>|<job id>" of the last job the sampler looked at


@dataclass(frozen=True)
class KeptImage:
    job_id: str
    observation_id: str
    reason: str
    class_key: str
    detail: str | None
    path: str
    size_bytes: int
    kept_at: str
    day: str
    upload_state: str = "pending"
    upload_error: str | None = None
    revision: int = 0


def _kept(row) -> KeptImage:
    return KeptImage(*(row[k] for k in KeptImage.__dataclass_fields__))


def cursor(store: Store) -> tuple[str, str]:
    value = store.get_setting(CURSOR_KEY) or "|"
    completed_at, _, job_id = value.partition("|")
    return completed_at, job_id


def set_cursor(store: Store, completed_at: str, job_id: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (CURSOR_KEY, f"{completed_at}|{job_id}"),
        )


def completed_since(store: Store, after: tuple[str, str], limit: int) -> list[tuple[Job, Observation]]:
    """Completed jobs (with their observations) after ``after`` = (completed_at, job id), in order."""
    rows = store.conn.execute(
        "SELECT j.*, o.id AS o_id, o.sha256, o.spool_path, o.original_name, o.media_type, o.size_bytes,"
        " o.width, o.height, o.metadata, o.created_at AS o_created_at"
        " FROM jobs j JOIN observations o ON o.id = j.observation_id"
        " WHERE j.status = 'completed' AND (j.completed_at > ? OR (j.completed_at = ? AND j.id > ?))"
        " ORDER BY j.completed_at, j.id LIMIT ?",
        (after[0], after[0], after[1], limit),
    ).fetchall()
    return [(_job(r), _obs_of(r)) for r in rows]


def _obs_of(row) -> Observation:
    return _observation(row, id_key="o_id", created_key="o_created_at")


def job_with_observation(store: Store, job_id: str) -> tuple[Job, Observation] | None:
    row = store.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    obs = store.conn.execute("SELECT * FROM observations WHERE id = ?", (row["observation_id"],)).fetchone()
    return _job(row), _observation(obs)


def kept_on(store: Store, day: str, class_key: str) -> int:
    """How many images were kept on ``day`` for ``class_key`` (flags not counted)."""
    return store.conn.execute(
        "SELECT COUNT(*) FROM hard_images WHERE day = ? AND class_key = ? AND reason != 'flagged'",
        (day, class_key),
    ).fetchone()[0]


def get(store: Store, job_id: str) -> KeptImage | None:
    row = store.conn.execute("SELECT * FROM hard_images WHERE job_id = ?", (job_id,)).fetchone()
    return _kept(row) if row else None


def keep(store: Store, image: KeptImage) -> bool:
    """Record a kept image; False when the job already has one (the first record stays)."""
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO hard_images (job_id, observation_id, reason, class_key, detail, path,"
            " size_bytes, kept_at, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                image.job_id,
                image.observation_id,
                image.reason,
                image.class_key,
                image.detail,
                image.path,
                image.size_bytes,
                image.kept_at,
                image.day,
            ),
        )
        return cur.rowcount == 1


def mark_flagged(store: Store, job_id: str, detail: str | None) -> None:
    """A user flagged a job whose image is already kept: the flag wins (reason and detail)."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE hard_images SET reason = 'flagged', class_key = 'flagged', detail = ?,"
            " upload_state = 'pending', upload_error = NULL, revision = revision + 1 WHERE job_id = ?",
            (detail, job_id),
        )


def listed(store: Store, reasons: list[str]) -> list[tuple[KeptImage, Job, Observation]]:
    """Kept images with one of ``reasons``, oldest first, with their jobs and observations."""
    marks = ", ".join("?" for _ in reasons)
    rows = store.conn.execute(
        f"SELECT job_id FROM hard_images WHERE reason IN ({marks}) ORDER BY kept_at, job_id", reasons
    ).fetchall()
    return _with_jobs(store, rows)


def pending_uploads(store: Store, limit: int) -> list[tuple[KeptImage, Job, Observation]]:
    """Kept images not yet acknowledged by the tenant API, oldest first."""
    rows = store.conn.execute(
        "SELECT job_id FROM hard_images WHERE upload_state = 'pending' ORDER BY kept_at, job_id LIMIT ?",
        (limit,),
    ).fetchall()
    return _with_jobs(store, rows)


def mark_upload(store: Store, job_id: str, revision: int, state: str, error: str | None) -> None:
    """Record an upload's outcome, unless the row changed since it was read (a new flag: send again)."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE hard_images SET upload_state = ?, upload_error = ?, uploaded_at = CASE WHEN ? = 'sent'"
            " THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE uploaded_at END"
            " WHERE job_id = ? AND revision = ? AND upload_state = 'pending'",
            (state, error, state, job_id, revision),
        )


def upload_counts(store: Store) -> dict[str, int]:
    return dict(
        store.conn.execute("SELECT upload_state, COUNT(*) FROM hard_images GROUP BY upload_state").fetchall()
    )


def _with_jobs(store: Store, rows) -> list[tuple[KeptImage, Job, Observation]]:
    out = []
    for (job_id,) in rows:
        kept = get(store, job_id)
        pair = job_with_observation(store, job_id)
        if kept is not None and pair is not None:
            out.append((kept, *pair))
    return out


def totals(store: Store) -> tuple[dict[str, int], int]:
    """Kept images by reason, and their bytes."""
    by_reason = dict(
        store.conn.execute("SELECT reason, COUNT(*) FROM hard_images GROUP BY reason").fetchall()
    )
    total = store.conn.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM hard_images").fetchone()[0]
    return by_reason, total

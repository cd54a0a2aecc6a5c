"""The SQLite job log: transactions, dedupe, leases, recovery, pagination, migrations."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from edgecv.errors import JobNotFound, ObservationNotFound, SchemaTooNew, StoreError
from edgecv.store import Store, schema_version


def add(store: Store, sha: str, model: str = "m"):
    return store.add_observation(
        sha256=sha,
        spool_path=f"spool/{sha}.jpg",
        original_name=f"{sha}.jpg",
        media_type="image/jpeg",
        size_bytes=10,
        width=4,
        height=3,
        metadata={"tags": ["a"]},
        model=model,
    )


def test_wal_mode_and_schema_version(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.user_version() == schema_version() >= 1
    assert store.integrity_check() == "ok"


def test_observation_and_job_in_one_transaction_and_dedupe(store):
    obs, job, created = add(store, "aa")
    assert created and job.status == "queued" and job.observation_id == obs.id
    assert obs.id.startswith("obs_") and job.id.startswith("job_")
    obs2, job2, created2 = add(store, "aa")
    assert (obs2.id, job2.id, created2) == (obs.id, job.id, False)
    _, job3, created3 = add(store, "aa", model="other")
    assert created3 and job3.id != job.id and job3.observation_id == obs.id


def test_failed_insert_rolls_back_observation(store):
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:
        conn.execute(
            "INSERT INTO observations (id, sha256, spool_path, original_name, media_type, size_bytes, width,"
            " height, created_at) VALUES ('obs_x', 'zz', 'p', 'n', 'image/jpeg', 1, 1, 1, 't')"
        )
        conn.execute(
            "INSERT INTO jobs (id, observation_id, model, status, created_at) VALUES ('j', 'obs_x', 'm', 'bogus', 't')"
        )
    assert store.find_observation_by_hash("zz") is None


def test_claim_complete_writes_result_and_outbox_once(store):
    _, job, _ = add(store, "bb")
    claimed = store.claim_job("w1", 60)
    assert claimed.id == job.id and claimed.status == "processing" and claimed.attempts == 1
    assert store.claim_job("w2", 60) is None
    done = store.complete_job(job.id, "w1", {"detections": [], "summary": {}}, inference_ms=3.0, device="CPU")
    assert done.status == "completed" and done.result == {"detections": [], "summary": {}}
    assert done.to_dict()["error"] is None and done.completed_at
    with pytest.raises(StoreError, match="not leased"):
        store.complete_job(job.id, "w1", {"detections": []})
    rows = store.conn.execute("SELECT job_id, idempotency_key FROM outbox").fetchall()
    assert [tuple(r) for r in rows] == [(job.id, f"{job.id}:v1")]


def test_only_the_lease_owner_can_finish(store):
    _, job, _ = add(store, "cc")
    store.claim_job("w1", 60)
    with pytest.raises(StoreError):
        store.fail_job(job.id, "intruder", "x", "y")
    failed = store.fail_job(job.id, "w1", "image_unreadable", "send it again")
    assert failed.to_dict()["error"] == {"code": "image_unreadable", "message": "send it again"}


def test_recovery_requeues_then_fails_after_max_attempts(store):
    _, job, _ = add(store, "dd")
    for attempt in (1, 2):
        store.claim_job("w", 60)
        assert store.recover_jobs(max_attempts=3) == (1, 0)
        assert store.get_job(job.id).status == "queued"
        assert store.get_job(job.id).attempts == attempt
    store.claim_job("w", 60)
    assert store.recover_jobs(max_attempts=3) == (0, 1)
    final = store.get_job(job.id)
    assert final.status == "failed" and final.error_code == "attempts_exhausted"
    assert store.conn.execute("SELECT COUNT(*) FROM outbox WHERE job_id = ?", (job.id,)).fetchone()[0] == 1


def test_only_expired_leases_are_recovered_while_running(store):
    add(store, "ee")
    add(store, "ff")
    store.claim_job("w", 60)
    store.claim_job("w", -1)  # already expired
    assert store.recover_jobs(max_attempts=3, only_expired=True) == (1, 0)


def test_pagination_is_stable_while_jobs_are_inserted(store):
    ids = [add(store, f"p{i}")[1].id for i in range(7)]
    page1, cursor = store.list_jobs(limit=3)
    assert [j.id for j in page1] == ids[::-1][:3]
    for i in range(5):
        add(store, f"new{i}")  # inserted between page reads
    page2, cursor2 = store.list_jobs(limit=3, cursor=cursor)
    page3, cursor3 = store.list_jobs(limit=3, cursor=cursor2)
    assert [j.id for j in page2 + page3] == ids[::-1][3:]
    assert cursor3 is None


def test_list_filters_and_errors(store):
    add(store, "x1", model="a")
    add(store, "x2", model="b")
    assert [j.model for j in store.list_jobs(model="a")[0]] == ["a"]
    assert len(store.list_jobs(status="queued")[0]) == 2
    with pytest.raises(StoreError, match="status: expected one of"):
        store.list_jobs(status="done")
    with pytest.raises(JobNotFound):
        store.get_job("job_nope")
    with pytest.raises(ObservationNotFound):
        store.create_job("obs_nope", "a")


def test_concurrent_claims_never_hand_out_a_job_twice(tmp_path):
    path = tmp_path / "db.sqlite"
    store = Store(path)
    for i in range(60):
        add(store, f"c{i}")
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        own = Store(path)
        while (job := own.claim_job(name, 60)) is not None:
            with lock:
                claimed.append(job.id)
        own.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == 60


def test_connections_of_ended_threads_are_closed(store):
    """Backlog lanes and decode pools are new threads every backlog: their connections must not pile up."""
    for _ in range(5):
        t = threading.Thread(target=store.count_queued)
        t.start()
        t.join()
    store.count_queued()  # this thread's first use closes the ended threads' connections
    assert len(store._connections) <= 2
    opened, done = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: (store.count_queued(), opened.set(), done.wait(5)))
    t.start()
    assert opened.wait(5)
    store.count_queued()
    assert any(owner is t for owner, _ in store._connections)  # a live thread's connection is kept
    done.set()
    t.join()


def test_database_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "db.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer edgecv"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 999


def test_ids_are_time_sortable_and_unique():
    from edgecv.ids import new_id

    ids = [new_id("job") for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(len(i) == 30 for i in ids)

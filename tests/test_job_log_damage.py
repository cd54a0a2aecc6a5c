"""A damaged job log: the start-up check sets it aside, salvages rows, and re-queues from the spool;
``edgecv backup`` / ``edgecv restore`` on a real data dir."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading

import pytest
from click.testing import CliRunner
from helpers.agent import AgentThread, wait_until
from helpers.images import distinct_jpeg

from edgecv.agent import data_dir_lock
from edgecv.cli import main
from edgecv.ingest import ingest_bytes
from edgecv.store import Store, recovery

PAGE = 4096


def fill(store, config, n, start=0):
    for i in range(start, start + n):
        ingest_bytes(store, config, distinct_jpeg(i), name=f"img{i}.jpg", model="rect")


def spooled(config) -> int:
    return sum(1 for p in config.spool_dir.glob("*/*") if not p.name.startswith("."))


def every_image_has_one_finished_job(config) -> bool:
    with sqlite3.connect(config.db_path) as conn:
        rows = conn.execute(
            "SELECT o.sha256, COUNT(j.id), SUM(j.status IN ('completed', 'failed')) FROM observations o"
            " LEFT JOIN jobs j ON j.observation_id = o.id GROUP BY o.id"
        ).fetchall()
    return len(rows) == spooled(config) and all(count == 1 and done == 1 for _, count, done in rows)


def crash_snapshot(store, config, tmp_path):
    """Copies of the job log and its WAL as a power cut would leave them (the store still open)."""
    snap = tmp_path / "snap"
    snap.mkdir()
    wal = config.db_path.with_name(config.db_path.name + "-wal")
    assert wal.stat().st_size > 0
    shutil.copy(config.db_path, snap / "db")
    shutil.copy(wal, snap / "wal")
    shutil.copy(config.db_path.with_name(config.db_path.name + "-shm"), snap / "shm")
    store.close()
    return snap


def root_page(path, table) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]


def flip_page(path, page: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek((page - 1) * PAGE)
        data = bytearray(fh.read(64))
        fh.seek((page - 1) * PAGE)
        fh.write(bytes(b ^ 0xA5 for b in data))


# -- the check itself ------------------------------------------------------------------------------


def test_a_healthy_or_missing_log_passes(store, config, tmp_path):
    fill(store, config, 3)
    assert recovery.problem_of(config.db_path) is None
    assert recovery.problem_of(tmp_path / "absent.db") is None


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "edgecv.db"
    path.write_text("this is a text file, not a job log\n" * 200)
    assert "not a SQLite database" in recovery.problem_of(path)


def test_flipped_bytes_in_a_table_page_fail_quick_check(store, config):
    fill(store, config, 20)
    store.close()  # checkpointed: the pages are in the database file
    flip_page(config.db_path, root_page(config.db_path, "jobs"))
    problem = recovery.problem_of(config.db_path)
    assert problem is not None and ("quick_check" in problem or "cannot read" in problem)


# -- the agent at start-up -------------------------------------------------------------------------


def test_agent_sets_a_damaged_log_aside_salvages_rows_and_requeues_lost_jobs(store, config, caplog):
    fill(store, config, 12)
    store.close()
    flip_page(config.db_path, root_page(config.db_path, "jobs"))
    with caplog.at_level(logging.ERROR), AgentThread(config) as running:
        assert running.agent.rebuilt is not None
        wait_until(lambda: every_image_has_one_finished_job(config))
        assert running.store.integrity_check() == "ok"
    moved = running.agent.rebuilt.moved_to
    assert moved.parent == config.damaged_dir and moved.exists()
    reason = moved.with_name(moved.name + ".reason").read_text()
    assert "quick_check" in reason or "cannot read" in reason
    assert running.agent.rebuilt.report.copied["observations"] == 12  # their pages were intact
    message = caplog.text
    assert f"moved to {moved}" in message and "edgecv restore FILE" in message
    assert recovery.problem_of(config.db_path) is None


def test_agent_replaces_a_file_that_is_not_a_database(config, caplog):
    config.data_dir.mkdir(parents=True)
    config.db_path.write_bytes(b"\x00garbage" * 1000)
    (config.inbox / "a.jpg").write_bytes(distinct_jpeg(1))
    with caplog.at_level(logging.ERROR), AgentThread(config) as running:
        wait_until(lambda: len(running.done_jobs()) == 1)
    assert "not a SQLite database" in caplog.text
    assert len(list(config.damaged_dir.glob("edgecv.db.*.reason"))) == 1


def test_a_truncated_wal_loses_only_its_tail_and_the_spool_requeues_the_rest(store, config, tmp_path):
    fill(store, config, 4)
    store.close()
    store = Store(config.db_path)
    fill(store, config, 10, start=4)  # these ten live only in the WAL
    snap = crash_snapshot(store, config, tmp_path)
    shutil.copy(snap / "db", config.db_path)
    with open(snap / "wal", "rb") as src, open(config.db_path.with_name("edgecv.db-wal"), "wb") as dst:
        data = src.read()
        dst.write(data[: len(data) // 2 + 100])  # cut inside a frame
    assert recovery.problem_of(config.db_path) is None  # SQLite drops the incomplete tail
    with AgentThread(config) as running:
        assert running.agent.rebuilt is None
        wait_until(lambda: every_image_has_one_finished_job(config))
    assert spooled(config) == 14


def test_a_missing_wal_beside_the_log_is_reported_and_the_spool_requeues(store, config, tmp_path, caplog):
    fill(store, config, 3)
    store.close()
    store = Store(config.db_path)
    fill(store, config, 5, start=3)
    snap = crash_snapshot(store, config, tmp_path)
    shutil.copy(snap / "db", config.db_path)
    shutil.copy(snap / "shm", config.db_path.with_name("edgecv.db-shm"))  # the WAL itself is gone
    with caplog.at_level(logging.WARNING), AgentThread(config):
        wait_until(lambda: every_image_has_one_finished_job(config))
    assert "write-ahead log (edgecv.db-wal) is missing" in caplog.text
    assert "recovered 5 spooled image(s)" in caplog.text


# -- backup and restore ----------------------------------------------------------------------------


@pytest.fixture
def cli(config):
    env = {
        "EDGECV_DATA_DIR": str(config.data_dir),
        "EDGECV_MODELS_DIRS": str(config.models_dirs[0]),
        "EDGECV_DEFAULT_MODEL": "rect",
        "EDGECV_CONFIG": "",
    }
    runner = CliRunner(env=env)
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_backup_while_a_writer_runs_is_consistent(store, config, tmp_path, cli):
    fill(store, config, 5)
    stop = threading.Event()

    def writer():
        i = 100
        while not stop.is_set():
            fill(store, config, 1, start=i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cli("backup", str(tmp_path / "b1.db"))
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert "quick_check ok" in result.output
    with sqlite3.connect(tmp_path / "b1.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        observations = conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert observations >= 5 and jobs == observations  # one snapshot: no half-written ingest
    again = cli("backup", str(tmp_path / "b1.db"))
    assert again.exit_code == 1
    assert again.output.strip().splitlines()[-1].startswith("Error: ") and "exists" in again.output


def test_restore_refuses_while_an_agent_holds_the_data_dir(store, config, tmp_path, cli):
    fill(store, config, 2)
    assert cli("backup", str(tmp_path / "b.db")).exit_code == 0
    with data_dir_lock(config.data_dir):
        result = cli("restore", str(tmp_path / "b.db"))
    assert result.exit_code == 1
    assert "an edgecv agent is running" in result.output and "Traceback" not in result.output


def test_restore_checks_the_file_first(store, config, tmp_path, cli):
    fill(store, config, 2)
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    result = cli("restore", str(bad))
    assert result.exit_code == 1 and "not a SQLite database" in result.output
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    result = cli("restore", str(other))
    assert result.exit_code == 1 and "not an edgecv job log" in result.output
    assert result.output.count("Error:") == 1
    with sqlite3.connect(config.db_path) as conn:  # untouched
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 2


def test_restore_puts_a_backup_back_and_keeps_the_previous_log(store, config, tmp_path, cli):
    fill(store, config, 2)
    assert cli("backup", str(tmp_path / "b.db")).exit_code == 0
    fill(store, config, 3, start=2)
    store.close()
    result = cli("restore", str(tmp_path / "b.db"))
    assert result.exit_code == 0, result.output
    kept = list(config.data_dir.glob("edgecv.db.before-restore-*"))
    assert len(kept) == 1 and str(kept[0]) in result.output
    restored = Store(config.db_path)
    try:
        assert len(restored.list_jobs()[0]) == 2
        assert restored.integrity_check() == "ok"
    finally:
        restored.close()


def test_status_and_doctor_name_a_damaged_log_and_the_way_out(config, cli):
    config.data_dir.mkdir(parents=True)
    config.db_path.write_bytes(b"\x00garbage" * 1000)
    result = cli("status")
    assert result.exit_code == 1 and "the job log is damaged" in result.output
    assert "edgecv restore FILE" in result.output and "Traceback" not in result.output
    doctor = cli("doctor", "--skip", "upstream")
    assert "the job log is damaged" in doctor.output

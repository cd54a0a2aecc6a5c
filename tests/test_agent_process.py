"""The agent as a real process: SIGTERM exits cleanly, SIGKILL mid-backlog loses nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.agent import wait_until
from helpers.images import distinct_jpeg

from edgecv.cli import main

pytestmark = pytest.mark.process


def start_agent(
    data_dir: Path, inbox: Path, models_root: Path, log: Path, **extra_env: str
) -> subprocess.Popen:
    env = {
        **os.environ,
        "EDGECV_DATA_DIR": str(data_dir),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_DEFAULT_MODEL": "rect",
        "EDGECV_API_ENABLED": "false",
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "edgecv", "agent", "--inbox", str(inbox)],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def db_rows(data_dir: Path, sql: str) -> list[tuple]:
    if not (data_dir / "edgecv.db").exists():
        return []
    conn = sqlite3.connect(data_dir / "edgecv.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def count_done(data_dir: Path) -> int:
    rows = db_rows(data_dir, "SELECT COUNT(*) FROM jobs WHERE status IN ('completed', 'failed')")
    return rows[0][0] if rows else 0


def test_sigterm_finishes_and_exits_cleanly(tmp_path, models_root):
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    proc = start_agent(data_dir, inbox, models_root, tmp_path / "agent.log")
    try:
        (inbox / "one.jpg").write_bytes(distinct_jpeg(1))
        wait_until(lambda: count_done(data_dir) == 1, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert "agent stopped" in (tmp_path / "agent.log").read_text()
    assert db_rows(data_dir, "SELECT status FROM jobs") == [("completed",)]


def test_second_agent_on_the_same_data_dir_is_refused(tmp_path, models_root):
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    first = start_agent(data_dir, inbox, models_root, tmp_path / "a.log")
    try:
        wait_until(lambda: "agent ready" in (tmp_path / "a.log").read_text(), timeout=60)
        second = start_agent(data_dir, inbox, models_root, tmp_path / "b.log")
        assert second.wait(timeout=60) == 1
        assert "another edgecv agent is running" in (tmp_path / "b.log").read_text()
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("kills", [2])
def test_sigkill_mid_backlog_loses_nothing_and_runs_nothing_twice(tmp_path, models_root, kills):
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    images = {f"img-{i:03d}.jpg": distinct_jpeg(i) for i in range(60)}
    for name, data in images.items():
        (inbox / name).write_bytes(data)
    log = tmp_path / "agent.log"
    done_before = 0
    for _ in range(kills):
        proc = start_agent(data_dir, inbox, models_root, log)
        try:
            wait_until(lambda d=done_before: count_done(data_dir) > d + 3, timeout=90, interval=0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done_before = count_done(data_dir)
    assert done_before < len(images), "the backlog finished before the kill; the test proves nothing"
    proc = start_agent(data_dir, inbox, models_root, log)
    try:
        wait_until(lambda: count_done(data_dir) == len(images), timeout=180)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    hashes = {hashlib.sha256(d).hexdigest() for d in images.values()}
    rows = db_rows(
        data_dir,
        "SELECT o.sha256, j.status, j.attempts FROM jobs j JOIN observations o ON o.id = j.observation_id",
    )
    assert sorted(r[0] for r in rows) == sorted(hashes)  # exactly one job per accepted image
    assert {r[1] for r in rows} <= {"completed", "failed"}
    outbox = db_rows(data_dir, "SELECT COUNT(*), COUNT(DISTINCT job_id) FROM outbox")[0]
    assert outbox == (len(images), len(images))  # finished exactly once each
    assert db_rows(data_dir, "PRAGMA integrity_check") == [("ok",)]
    assert list(inbox.iterdir()) == []


def test_once_processes_the_inbox_and_exits(tmp_path, models_root):
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    for i in range(3):
        (inbox / "sub" / f"{i}.jpg").write_bytes(distinct_jpeg(80 + i))
    (inbox / "broken.jpg").write_text("not an image")
    env = {
        **os.environ,
        "EDGECV_DATA_DIR": str(data_dir),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_DEFAULT_MODEL": "rect",
        "EDGECV_API_ENABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "edgecv", "agent", "--inbox", str(inbox), "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "inbox and queue empty: 3 completed, 0 failed" in done.stderr
    assert count_done(data_dir) == 3
    assert [p.name for p in (data_dir / "quarantine").iterdir() if p.suffix == ".jpg"][0].endswith(
        "broken.jpg"
    )


def test_doctor_and_status_describe_the_running_agent_not_the_config(tmp_path, models_root):
    """The agent got --inbox and its models on its command line; doctor and status, run with only the
    data dir, report the agent's inbox and models, then "no agent running" once it stopped."""
    data_dir, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    log = tmp_path / "agent.log"
    proc = start_agent(data_dir, inbox, models_root, log, EDGECV_API_ENABLED="true", EDGECV_API_PORT="0")
    runner = CliRunner(env={"EDGECV_CONFIG": "", "EDGECV_DATA_DIR": str(data_dir)})
    skip = [f"--skip={c}" for c in ("versions", "devices", "models", "upstream")]
    try:
        wait_until(lambda: "agent ready" in log.read_text(), timeout=60)
        state = json.loads((data_dir / "agent-state.json").read_text())
        assert state["pid"] == proc.pid and state["settings"]["inbox"] == str(inbox)
        assert "api_key" not in json.dumps(state) and "token" not in json.dumps(state)
        doctor = runner.invoke(main, ["doctor", *skip], catch_exceptions=False)
        assert doctor.exit_code == 0, doctor.output
        lines = doctor.output.splitlines()
        assert lines[0] == (
            f"OK   agent: agent running (pid {proc.pid}) since {state['startedAt']}, inbox {inbox} "
            f"(inotify), default model rect, 1 worker(s), API on {state['apiUrl']}"
        )
        assert state["apiUrl"].startswith("http://127.0.0.1:") and not state["apiUrl"].endswith(":0")
        assert any(line.startswith(f"OK   inbox: {inbox} exists") for line in lines)
        status = runner.invoke(main, ["status"], catch_exceptions=False)
        assert status.exit_code == 0, status.output
        assert (
            f"agent:      running (pid {proc.pid}, since {state['startedAt']}), API on {state['apiUrl']}"
            in (status.output.splitlines())
        )
        assert f"inbox:      {inbox}" in status.output.splitlines()
        assert any(line.startswith("model:      rect ") for line in status.output.splitlines())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    assert not (data_dir / "agent-state.json").exists()  # removed on a clean stop
    stopped = runner.invoke(main, ["doctor", *skip], catch_exceptions=False)
    assert stopped.output.splitlines()[0] == f"OK   agent: no agent running on {data_dir}"
    assert "FAIL inbox: not set; the agent refuses to start" in stopped.output
    status = runner.invoke(main, ["status"], catch_exceptions=False).output.splitlines()
    assert "agent:      no agent running (inbox and models below are from the config)" in status
    assert "inbox:      (not set)" in status


def test_second_signal_exits_at_once(config, monkeypatch):
    """The first SIGTERM/SIGINT asks for a clean stop; a second one exits now (a stuck job, or a stop
    that waits up to lease_s per thread, must not keep the agent up)."""
    from edgecv.agent import Agent

    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    agent = Agent(config)
    agent._on_signal(signal.SIGTERM, None)
    assert agent.stop_event.is_set() and exits == []
    agent._on_signal(signal.SIGINT, None)
    assert exits == [128 + signal.SIGINT]

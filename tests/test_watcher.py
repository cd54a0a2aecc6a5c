"""The real agent on a real inbox: inotify and polling, incomplete writes, sidecars, catch-up."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.agent import AgentThread, wait_until
from helpers.images import distinct_jpeg, jpeg_bytes

from edgecv.watcher import classify


def big_jpeg(tmp_path: Path) -> Path:
    """A ~6 MB JPEG (noise compresses badly) with the red rectangle in it."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 60, (2400, 3200, 3), dtype=np.uint8)
    image[800:1400, 1000:1800] = (0, 0, 255)
    path = tmp_path / "big-source.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert path.stat().st_size > 3_000_000
    return path


def observations(agent) -> list:
    rows = agent.store.conn.execute("SELECT id, sha256, size_bytes FROM observations").fetchall()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("a.jpg", "image"),
        ("sub/dir/B.JPEG", "image"),
        ("a.json", "sidecar"),
        (".hidden.jpg", None),
        (".cache/a.jpg", None),
        ("a.jpg.tmp", None),
        ("a.jpg.part", None),
        ("a.jpg.crdownload", None),
        ("a.jpg~", None),
        ("notes.txt", None),
    ],
)
def test_path_filter(tmp_path, rel, kind):
    assert classify(tmp_path / rel, tmp_path) == kind


@pytest.mark.process
def test_large_copy_slow_writer_and_temp_rename_each_give_one_complete_observation(config, inbox, tmp_path):
    source = big_jpeg(tmp_path)
    expected = source.read_bytes()
    with AgentThread(config) as agent:
        shutil.copyfile(source, inbox / "copied.jpg")  # cp of a large file
        with open(inbox / "slow.jpg", "wb") as fh:  # a writer that pauses mid-file
            fh.write(distinct_jpeg(1)[:3000])
            fh.flush()
            time.sleep(2.5)
            fh.write(distinct_jpeg(1)[3000:])
        tmp = inbox / "renamed.jpg.part"  # write to temp, then rename
        tmp.write_bytes(distinct_jpeg(2))
        os.rename(tmp, inbox / "renamed.jpg")
        wait_until(lambda: len(agent.done_jobs()) == 3, timeout=60)
        obs = observations(agent)
        sizes = sorted(size for _, _, size in obs)
        assert sizes == sorted([len(expected), len(distinct_jpeg(1)), len(distinct_jpeg(2))])
        assert all(j.status == "completed" for j in agent.done_jobs())
        assert list(inbox.iterdir()) == []


@pytest.mark.process
def test_ignored_files_stay_in_the_inbox(config, inbox):
    with AgentThread(config) as agent:
        for name in (".hidden.jpg", "x.jpg.tmp", "readme.txt"):
            (inbox / name).write_bytes(jpeg_bytes())
        (inbox / "real.jpg").write_bytes(distinct_jpeg(5))
        wait_until(lambda: len(agent.done_jobs()) == 1)
        time.sleep(0.3)
        assert sorted(p.name for p in inbox.iterdir()) == [".hidden.jpg", "readme.txt", "x.jpg.tmp"]


@pytest.mark.process
def test_sidecar_is_consumed_whichever_arrives_first(config, inbox):
    with AgentThread(config) as agent:
        (inbox / "first.json").write_text('{"tags": ["sidecar-first"], "capturedAt": "2026-11-28T10:00:00Z"}')
        time.sleep(0.2)
        (inbox / "first.jpg").write_bytes(distinct_jpeg(6))
        wait_until(lambda: len(agent.done_jobs()) == 1)
        (inbox / "second.jpg").write_bytes(distinct_jpeg(7))  # image first, sidecar a moment later
        time.sleep(0.4)
        (inbox / "second.jpg.json").write_text('{"tags": ["image-first"], "store": "S-12"}')
        wait_until(lambda: len(agent.done_jobs()) == 2)
        meta = {
            r["original_name"]: r["metadata"]
            for r in agent.store.conn.execute("SELECT original_name, metadata FROM observations")
        }
        assert '"sidecar-first"' in meta["first.jpg"] and "capturedAt" in meta["first.jpg"]
        assert '"image-first"' in meta["second.jpg"] and '"S-12"' in meta["second.jpg"]
        assert list(inbox.iterdir()) == []


@pytest.mark.process
def test_files_present_at_start_are_picked_up_and_nothing_runs_twice(config, inbox):
    for i in range(3):
        (inbox / f"early-{i}.jpg").write_bytes(distinct_jpeg(10 + i))
    os.makedirs(inbox / "nested")
    (inbox / "nested" / "deep.jpg").write_bytes(distinct_jpeg(13))
    with AgentThread(config) as agent:
        wait_until(lambda: len(agent.done_jobs()) == 4)
    (inbox / "again.jpg").write_bytes(distinct_jpeg(10))  # same bytes as early-0, after a restart
    with AgentThread(config) as agent:
        time.sleep(1.0)
        wait_until(lambda: not (inbox / "again.jpg").exists())
        assert len(agent.done_jobs()) == 4
        assert agent.store.conn.execute("SELECT SUM(attempts) FROM jobs").fetchone()[0] == 4


@pytest.mark.process
def test_polling_mode_waits_for_a_stable_file(config, inbox):
    config.poll = True
    config.poll_interval_s = 0.2
    config.settle_s = 0.6
    with AgentThread(config) as agent:
        data = distinct_jpeg(20)
        with open(inbox / "share.jpg", "wb") as fh:
            fh.write(data[:2000])
            fh.flush()
            time.sleep(1.5)  # longer than settle_s: the end-of-image check keeps it waiting
            fh.write(data[2000:])
        wait_until(lambda: len(agent.done_jobs()) == 1, timeout=30)
        assert observations(agent)[0][2] == len(data)


@pytest.mark.process
def test_files_written_into_a_brand_new_folder_are_picked_up(config, inbox):
    with AgentThread(config) as agent:
        for i in range(3):
            folder = inbox / f"new-{i}" / "deeper"
            folder.mkdir(parents=True)  # the file lands before the folder's inotify watch exists
            (folder / "photo.jpg").write_bytes(distinct_jpeg(100 + i))
        staged = inbox.parent / "staged"
        (staged / "sub").mkdir(parents=True)
        (staged / "sub" / "moved.jpg").write_bytes(distinct_jpeg(110))
        os.rename(staged, inbox / "moved-in")  # a whole folder moved into the inbox
        wait_until(lambda: len(agent.done_jobs()) == 4, timeout=30)
        assert len(observations(agent)) == 4


def _arrive(how: str, inbox: Path, stage: Path, data: bytes) -> str:
    """Make an image arrive in the inbox ``how``; return its name relative to the inbox."""
    stage.mkdir(exist_ok=True)
    if how == "write":  # written in place, then closed
        (inbox / "arrived.jpg").write_bytes(data)
    elif how == "rename_inside":  # written under a temporary name inside the inbox, then renamed
        (inbox / "arrived.jpg.part").write_bytes(data)
        os.rename(inbox / "arrived.jpg.part", inbox / "arrived.jpg")
    elif how == "sibling_move":  # cp to a sibling folder, then mv into the inbox (same filesystem)
        (stage / "arrived.jpg").write_bytes(data)
        os.rename(stage / "arrived.jpg", inbox / "arrived.jpg")
    elif how == "folder_move":  # a whole folder of images moved into the inbox
        (stage / "batch").mkdir()
        (stage / "batch" / "arrived.jpg").write_bytes(data)
        os.rename(stage / "batch", inbox / "batch")
        return "batch/arrived.jpg"
    elif how == "symlink_inside":  # a link to a file kept in a hidden folder of the inbox
        (inbox / ".kept").mkdir()
        (inbox / ".kept" / "target.jpg").write_bytes(data)
        os.symlink(inbox / ".kept" / "target.jpg", inbox / "arrived.jpg")
    elif how == "symlink_outside":
        (stage / "target.jpg").write_bytes(data)
        os.symlink(stage / "target.jpg", inbox / "arrived.jpg")
    elif how == "hardlink":
        (stage / "linked.jpg").write_bytes(data)
        os.link(stage / "linked.jpg", inbox / "arrived.jpg")
    else:
        raise ValueError(how)
    return "arrived.jpg"


ARRIVALS = ["write", "rename_inside", "sibling_move", "folder_move", "symlink_inside", "hardlink"]


def _settle(agent, inbox: Path, marker_seed: int) -> None:
    """Wait until every event about earlier files has been handled: inotify delivers events in order,
    so once a marker written after them is ingested and the intake is idle, nothing else is coming."""
    (inbox / "zz-marker.jpg").write_bytes(distinct_jpeg(marker_seed))
    wait_until(lambda: not (inbox / "zz-marker.jpg").exists())
    wait_until(agent.agent.watcher.intake.idle)


@pytest.mark.process
@pytest.mark.parametrize("how", ARRIVALS)
def test_every_way_of_arriving_gives_exactly_one_job(config, inbox, tmp_path, caplog, how):
    caplog.set_level(logging.INFO, logger="edgecv.ingest")
    with AgentThread(config) as agent:
        name = _arrive(how, inbox, tmp_path / "stage", distinct_jpeg(300))
        _settle(agent, inbox, 301)
        assert not os.path.lexists(inbox / name)
        wait_until(lambda: len(agent.done_jobs()) == 2, timeout=30)  # the arrival and the marker
        rows = agent.store.conn.execute(
            "SELECT original_name FROM observations WHERE original_name = ?", (name,)
        ).fetchall()
        assert len(rows) == 1
        ingest_lines = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert len(ingest_lines) == 1 and ingest_lines[0].startswith("queued "), ingest_lines
        assert all(j.status == "completed" for j in agent.done_jobs())
        assert not config.quarantine_dir.exists() or not any(config.quarantine_dir.iterdir())


@pytest.mark.process
def test_symlink_to_outside_made_while_running_is_quarantined(config, inbox, tmp_path):
    with AgentThread(config) as agent:
        _arrive("symlink_outside", inbox, tmp_path / "stage", distinct_jpeg(310))
        _settle(agent, inbox, 311)
        # wait for the link itself to be handled, not only for the marker behind it (one loaded full-suite
        # run saw the checks below run first; cause not found). A link never quarantined still fails here.
        wait_until(lambda: not os.path.lexists(inbox / "arrived.jpg"))
        wait_until(agent.agent.watcher.intake.idle)
        reasons = list(config.quarantine_dir.glob("*.reason"))
        assert len(reasons) == 1
        assert "code: symlink_outside" in reasons[0].read_text()
        # the marker is queued once ingested and done a moment later (a loaded run checked in between)
        wait_until(lambda: len(agent.done_jobs()) == 1)  # the marker only
        assert len(agent.done_jobs()) == 1
        assert (tmp_path / "stage" / "target.jpg").exists()  # the link's target is left alone

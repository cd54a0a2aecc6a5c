"""A full disk at every write, on a small tmpfs of the test's own: intake pauses with a reason (log,
``status``, ``doctor``, ``/readyz``), nothing accepted is lost, and it resumes by itself."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
from helpers.agent import AgentThread, wait_until
from helpers.images import distinct_jpeg

from edgecv import doctor, ingest
from edgecv.annotate import write_annotated
from edgecv.errors import DiskFull
from edgecv.ingest import ingest_bytes, ingest_file, quarantine
from edgecv.status import status_snapshot
from edgecv.store import Store
from edgecv.upstream.budget import DiskBudget
from edgecv.work.pool import DetectorPool
from edgecv.work.worker import Worker

MIB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs mounted at ``tmp_path/fs`` (root only; skipped with the reason elsewhere)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: a size-limited filesystem cannot be made")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


class Filler:
    """Takes up the free space of a filesystem, leaving ``leave`` bytes, until :meth:`free`."""

    def __init__(self, root: Path) -> None:
        self.path = root / "filler.bin"

    def fill(self, leave: int = 0) -> None:
        room = shutil.disk_usage(self.path.parent).free - leave
        with open(self.path, "ab") as fh:
            while room > 0:
                chunk = min(room, MIB)
                try:
                    fh.write(b"\0" * chunk)
                    fh.flush()
                except OSError:
                    break
                room -= chunk

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def on_small_fs(config, small_fs, monkeypatch):
    config.data_dir = small_fs / "data"
    config.min_free_mb = 1
    monkeypatch.setattr(ingest, "DISK_FULL_RETRY_S", 0.2)
    monkeypatch.setattr(Worker, "DISK_FULL_RETRY_S", 0.2)
    return config, Filler(small_fs)


def test_intake_pauses_below_min_free_and_resumes_by_itself(on_small_fs, inbox, caplog):
    config, filler = on_small_fs
    config.api.enabled, config.api.port = True, 0
    with caplog.at_level(logging.INFO), AgentThread(config) as running:
        url = running.agent.services[0].url
        for i in range(3):
            (inbox / f"before{i}.jpg").write_bytes(distinct_jpeg(i))
        wait_until(lambda: len(running.done_jobs()) == 3)
        filler.fill(leave=512 * 1024)  # under min_free_mb = 1
        for i in range(3, 8):
            (inbox / f"during{i}.jpg").write_bytes(distinct_jpeg(i))
        wait_until(lambda: "intake paused: disk full" in caplog.text)
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["intake"].startswith("paused: disk full")
        snapshot = status_snapshot(config)
        assert snapshot["intake"]["paused"] and "min_free_mb" in snapshot["intake"]["reason"]
        disk = doctor.check_disk(config)[0]
        assert disk.status == doctor.FAIL and "disk full" in disk.detail
        assert len(list(inbox.glob("during*.jpg"))) == 5  # waiting, not quarantined
        assert not config.quarantine_dir.exists() or not any(config.quarantine_dir.iterdir())
        filler.free()
        wait_until(lambda: len(running.done_jobs()) == 8)
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        assert running.store.integrity_check() == "ok"
    assert "intake resumed" in caplog.text
    assert not list(inbox.iterdir())
    assert all(j.status == "completed" for j in running.done_jobs())


def test_spool_write_on_a_full_disk_leaves_the_file_in_the_inbox(on_small_fs, inbox, caplog):
    config, filler = on_small_fs
    config.min_free_mb = 0  # no early pause: the write itself meets ENOSPC
    store = Store(config.db_path)
    budget = DiskBudget.from_config(store, config)
    try:
        photo = inbox / "photo.jpg"
        photo.write_bytes(distinct_jpeg(1))
        filler.fill()
        with caplog.at_level(logging.ERROR), pytest.raises(ingest.NotReady):
            ingest_file(store, config, photo, inbox, budget=budget)
        assert photo.exists()
        assert not [p for p in config.spool_dir.rglob("*") if p.is_file()]  # no partial spool file
        assert budget.disk_full_reason is not None and "intake paused" in caplog.text
        assert budget.may_accept_image(1000)[0] is False  # still full
        filler.free()
        assert budget.may_accept_image(1000) == (True, None)
        result = ingest_file(store, config, photo, inbox, budget=budget)
        assert result.created and not photo.exists()
    finally:
        store.close()


def test_sqlite_commit_on_a_full_disk_raises_disk_full_and_keeps_the_log_sound(on_small_fs):
    config, filler = on_small_fs
    store = Store(config.db_path)
    try:
        ingest_bytes(store, config, distinct_jpeg(0), name="first.jpg", model="rect")
        filler.fill()
        with pytest.raises(DiskFull, match="disk full while writing the job log"):
            for i in range(5000):  # metadata-only rows until the WAL cannot grow
                store.set_setting_once(f"k{i}", "x" * 2000)
        assert store.integrity_check() == "ok"
        assert not store.conn.in_transaction  # the failed COMMIT was rolled back
        filler.free()
        _, job, created = store.add_observation(
            sha256="ab" * 32,
            spool_path="spool/ab/x.jpg",
            original_name="x.jpg",
            media_type="image/jpeg",
            size_bytes=1,
            width=1,
            height=1,
            metadata={},
            model="rect",
        )
        assert created and job.status == "queued"
    finally:
        store.close()


def test_a_finished_job_waits_for_space_and_is_recorded_once(on_small_fs):
    config, filler = on_small_fs
    store = Store(config.db_path)
    try:
        ingest_bytes(store, config, distinct_jpeg(0), name="a.jpg", model="rect")
        worker = Worker(store, config)
        worker.stop_event = threading.Event()
        real = store.complete_job
        met_full = []

        def complete_on_full_disk(*args, **kwargs):
            if not met_full:
                filler.fill()
                threading.Timer(0.5, filler.free).start()
                try:
                    return real(*args, **kwargs)
                except DiskFull:
                    met_full.append(True)
                    raise
            return real(*args, **kwargs)

        store.complete_job = complete_on_full_disk
        job = store.claim_job(worker.owner, config.lease_s)
        done = worker.process(job)
        assert met_full, "the disk never refused the commit"
        assert done.status == "completed" and done.attempts == 1
        assert store.get_job(job.id).status == "completed"
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_quarantine_on_a_full_disk_keeps_the_file_where_it_was(on_small_fs, inbox):
    config, filler = on_small_fs
    config.data_dir.mkdir(parents=True)
    bad = inbox / "broken.jpg"
    bad.write_bytes(b"not an image")
    filler.fill()
    with pytest.raises(DiskFull, match="the quarantine"):
        quarantine(config, bad, "not an image", "not_an_image")
    assert bad.exists()
    assert not list(config.quarantine_dir.glob("*"))  # no reason file without its image
    filler.free()
    moved = quarantine(config, bad, "not an image", "not_an_image")
    assert moved.exists() and moved.with_name(moved.name + ".reason").exists()


def test_annotated_image_on_a_full_disk_is_a_clear_error_and_no_partial_file(on_small_fs, tmp_path):
    config, filler = on_small_fs
    store = Store(config.db_path)
    try:
        ingest_bytes(store, config, distinct_jpeg(0), name="a.jpg", model="rect")
        worker = Worker(store, config)
        job = worker.process(store.claim_job(worker.owner, config.lease_s))
        out = config.data_dir / "annotated" / "a.jpg"
        filler.fill()
        with pytest.raises(DiskFull, match="annotated image"):
            write_annotated(store, config, job, out)
        assert not out.exists() and not list(out.parent.glob(".*"))
        filler.free()
        assert write_annotated(store, config, job, out).stat().st_size > 0
    finally:
        store.close()


def test_model_cache_on_a_full_disk_loads_without_caching(on_small_fs, image_array):
    config, filler = on_small_fs
    config.backend = "openvino"
    config.data_dir.mkdir(parents=True)
    filler.fill()
    detector = DetectorPool(config).load("rect")
    assert detector.backend == "openvino"
    on_full = detector.detect(image_array)
    cache = config.cache_dir / "openvino"
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing half-written
    filler.free()
    cached = DetectorPool(config).load("rect")
    assert [p for p in cache.rglob("*") if p.is_file()]  # with space, the cache is written
    again = cached.detect(image_array)
    assert len(on_full) == len(again) >= 1
    np.testing.assert_allclose(on_full.xyxy, again.xyxy, atol=1)

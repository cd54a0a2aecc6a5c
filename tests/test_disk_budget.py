"""The one disk-budget owner: ingest asks it, it cleans under its one lock, in the documented order
(synced images dropped, then unsynced ones downscaled, then new images wait in the inbox)."""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
from helpers.images import distinct_jpeg
from helpers.sync_server import make_jobs

from edgecv.store import outbox
from edgecv.store.outbox import Ack
from edgecv.upstream.budget import DiskBudget
from edgecv.watcher import Intake


def _spool(config, prefix: str, n: int) -> int:
    """Real noisy PNGs at the spool paths ``make_jobs`` records; returns one file's size."""
    rng = np.random.default_rng(len(prefix))
    for i in range(n):
        path = config.data_dir / "spool" / f"{prefix}-{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".png", rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
        path.write_bytes(data.tobytes())
    return path.stat().st_size


def _finished_jobs(store, config, prefix: str, n: int, *, synced: bool) -> int:
    make_jobs(store, n, prefix=prefix)
    if synced:
        acks = [Ack(e.outbox_id, None) for e in outbox.pending_entries(store, n)]
        outbox.record_replies(store, acks, [], None)
    return _spool(config, prefix, n)


def _spooled(config, prefix: str) -> list[str]:
    return sorted(p.name for p in (config.data_dir / "spool").glob(f"{prefix}-*"))


def _used(budget: DiskBudget) -> int:
    return budget.used_bytes(fresh=True)


def test_ingest_drops_synced_images_to_make_room_and_keeps_unsynced_ones(store, config, inbox):
    size = _finished_jobs(store, config, "synced", 3, synced=True)
    _finished_jobs(store, config, "unsynced", 3, synced=False)
    new = distinct_jpeg(1)
    budget = DiskBudget.from_config(store, config)
    budget.budget_bytes = _used(budget) - 2 * size + len(new)  # room once two synced images are gone
    path = inbox / "new.jpg"
    path.write_bytes(new)

    result = Intake(store, config, inbox, budget=budget).process(path)

    assert result is not None and result.created and not path.exists()
    assert len(_spooled(config, "synced")) <= 1
    assert _spooled(config, "unsynced") == [f"unsynced-{i}.jpg" for i in range(3)]
    assert outbox.retention_counts(store)["downscaled"] == 0  # dropping synced ones was enough


def test_a_full_budget_leaves_new_images_in_the_inbox_with_a_logged_reason(store, config, inbox, caplog):
    _finished_jobs(store, config, "unsynced", 2, synced=False)
    budget = DiskBudget.from_config(store, config)
    budget.budget_bytes = _used(budget) // 4  # nothing synced to drop, downscaling cannot reach it
    path = inbox / "new.jpg"
    path.write_bytes(distinct_jpeg(2))
    intake = Intake(store, config, inbox, budget=budget)

    with caplog.at_level(logging.WARNING):
        assert intake.process(path) is None
    assert path.exists()
    assert outbox.retention_counts(store) == {"pruned": 0, "downscaled": 2}  # tried before refusing
    assert "new.jpg stays in the inbox: disk budget reached" in caplog.text
    assert budget.refusing is not None and "new images are refused" in budget.refusing

    budget.budget_bytes = 10 * 2**30  # the operator raises the budget: the next attempt is accepted
    assert intake.process(path) is not None and not path.exists()
    assert budget.refusing is None


def test_ingest_and_the_relay_clean_under_the_one_lock(store, config):
    size = _finished_jobs(store, config, "synced", 12, synced=True)
    budget = DiskBudget.from_config(store, config)
    budget.budget_bytes = _used(budget) - 6 * size
    inside, most = 0, 0
    clean = budget._drop_synced

    def watched_clean(need: int) -> int:
        nonlocal inside, most
        assert budget._lock.locked()
        inside += 1
        most = max(most, inside)
        time.sleep(0.02)  # widen the window a second cleaner would need
        try:
            return clean(need)
        finally:
            inside -= 1

    budget._drop_synced = watched_clean
    askers = [threading.Thread(target=budget.may_accept_image, args=(size,)) for _ in range(3)]
    relays = [threading.Thread(target=budget.enforce) for _ in range(3)]
    for thread in askers + relays:
        thread.start()
    for thread in askers + relays:
        thread.join()

    assert most == 1
    pruned = outbox.retention_counts(store)["pruned"]
    assert 12 - len(_spooled(config, "synced")) == pruned  # every deleted file recorded exactly once
    assert budget.refusing is None


def test_the_relay_and_the_api_get_the_budget_they_are_built_with(store, config):
    from edgecv.services import build_services

    config.sync.url = "http://127.0.0.1:9"
    budget = DiskBudget.from_config(store, config)
    services = build_services(config, store, budget=budget, webhooks=False, api=False)
    assert services.relay is not None and services.relay.budget is budget
    app = __import__("edgecv.api.app", fromlist=["create_app"]).create_app(config, store, budget=budget)
    assert app.state.edgecv.budget is budget

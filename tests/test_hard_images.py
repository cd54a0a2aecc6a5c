"""Images kept for labelling: the sampling policy, user flags (CLI and API), the disk share, status, export.

Real job log, real spool files, real HTTP on loopback for the API route.
"""

from __future__ import annotations

import json
import os

import pytest
import requests
from click.testing import CliRunner
from helpers.api import live_api, queued_job

from edgecv.cli import main
from edgecv.config import HardImagesSettings
from edgecv.errors import CannotKeep, JobNotFound
from edgecv.hard_images import HardImages, hard_reasons, sampled, share_bytes
from edgecv.labels_export import export_kept
from edgecv.status import status_lines, status_snapshot
from edgecv.store import hard_images as sql
from edgecv.upstream.budget import DiskBudget


def det(name: str, conf: float, box=(10, 20, 30, 40), **attributes):
    x, y, w, h = box
    return {
        "objectName": name,
        "confidence": conf,
        "boundingBox": {"x": x, "y": y, "width": w, "height": h},
        "attributes": attributes,
    }


SURE = {"detections": [det("bottle", 0.93)], "summary": {"totalProducts": 1}}
UNSURE = {"detections": [det("bottle", 0.91), det("can", 0.31, (5, 5, 50, 60))], "summary": {}}
OUT = {"detections": [], "summary": {}, "domain": {"scene": "retail", "score": 0.1, "inDomain": False}}
MISPRICED = {
    "detections": [det("cola-330ml", 0.95, priceTag="2.49", expectedPrice=1.99, priceMatch=False)],
    "summary": {"mispricedSKUs": ["cola-330ml"]},
}


def finished(store, config, i: int, result: dict):
    job = queued_job(store, config, i)
    assert store.claim_job("w", 60, job_id=job.id) is not None
    return store.complete_job(job.id, "w", result, inference_ms=1.0, device="CPU")


def test_what_counts_as_hard():
    settings = HardImagesSettings()
    assert hard_reasons(SURE, settings) == []
    assert [(h.reason, h.class_key) for h in hard_reasons(UNSURE, settings)] == [("low_confidence", "can")]
    assert hard_reasons(UNSURE, settings)[0].detail == "confidence 0.31 (can)"
    assert [h.reason for h in hard_reasons(OUT, settings)] == ["out_of_domain"]
    assert [(h.reason, h.class_key) for h in hard_reasons(MISPRICED, settings)] == [
        ("price_mismatch", "cola-330ml")
    ]
    by_attribute = {"detections": [det("tea", 0.9, priceMatch=False)], "summary": {}}
    assert [h.class_key for h in hard_reasons(by_attribute, settings)] == ["tea"]
    narrow = HardImagesSettings(confidence_low=0.4, confidence_high=0.6, reasons=["low_confidence"])
    assert hard_reasons(UNSURE, narrow) == [] and hard_reasons(OUT, narrow) == []
    assert hard_reasons(None, settings) == [] and hard_reasons({"detections": "x"}, settings) == []
    assert sampled("job_a", 1.0) and not sampled("job_a", 0.0)
    assert sampled("job_b", 0.5) == sampled("job_b", 0.5)  # the same job, the same answer
    assert 300 < sum(sampled(f"job_{i}", 0.5) for i in range(1000)) < 700


def test_the_sampler_keeps_hard_images_within_the_daily_cap(store, config):
    config.hard_images.enabled = True
    config.hard_images.per_class_per_day = 2
    jobs = [
        finished(store, config, i, r) for i, r in enumerate([SURE, UNSURE, OUT, MISPRICED, UNSURE, UNSURE])
    ]
    sampler = HardImages(store, config)
    assert sampler.run_once() == 6
    kept = {
        k.job_id: k for k, _, _ in sql.listed(store, ["low_confidence", "out_of_domain", "price_mismatch"])
    }
    assert set(kept) == {jobs[i].id for i in (1, 2, 3, 4)}  # the third unsure "can" is over the cap of 2
    assert sampler.skipped == {"daily cap": 1}
    assert kept[jobs[3].id].reason == "price_mismatch" and kept[jobs[3].id].class_key == "cola-330ml"
    assert sampler.run_once() == 0  # the cursor moved on: nothing is looked at twice
    later = finished(store, config, 10, OUT)
    assert sampler.run_once() == 1 and sql.get(store, later.id).reason == "out_of_domain"
    # the kept copy is a link to the spooled image: deleting the spool copy (retention) keeps it
    obs = store.get_observation(jobs[2].observation_id)
    copy = config.data_dir / kept[jobs[2].id].path
    assert copy.read_bytes() == (config.data_dir / obs.spool_path).read_bytes()
    assert os.stat(copy).st_nlink == 2
    (config.data_dir / obs.spool_path).unlink()
    assert copy.is_file()


def test_rate_zero_keeps_nothing_but_flags(store, config):
    config.hard_images.enabled = True
    config.hard_images.rate = 0.0
    job = finished(store, config, 1, UNSURE)
    sampler = HardImages(store, config)
    sampler.run_once()
    assert sql.get(store, job.id) is None and sampler.skipped == {"rate": 1}
    kept = sampler.flag(job.id, "the can is a bottle")
    assert (kept.reason, kept.detail) == ("flagged", "the can is a bottle")
    assert sampler.flag(job.id, "again").detail == "again"  # flagging again replaces the reason


def test_the_disk_share_is_never_exceeded(store, config):
    config.hard_images.enabled = True
    jobs = [finished(store, config, i, UNSURE) for i in range(3)]
    size = (config.data_dir / store.get_observation(jobs[0].observation_id).spool_path).stat().st_size
    config.hard_images.max_mb = 1
    config.sync.disk_budget_mb = 100
    config.hard_images.max_percent = 100 * (size * 1.5) / (100 * 1024 * 1024)  # room for one image
    assert share_bytes(config) < 2 * size
    sampler = HardImages(store, config)
    sampler.run_once()
    by_reason, used = sql.totals(store)
    assert by_reason == {"low_confidence": 1} and used <= share_bytes(config)
    assert sampler.skipped == {"no room": 2}
    assert "their share is" not in sampler.last_refusal and "hard_images.max_mb" in sampler.last_refusal
    with pytest.raises(CannotKeep, match="hard_images.max_mb / max_percent"):
        sampler.flag(jobs[2].id)
    assert sql.get(store, jobs[2].id) is None


def test_the_disk_budget_counts_a_kept_link_once(store, config, tmp_path):
    budget = DiskBudget.from_config(store, config)
    job = finished(store, config, 1, UNSURE)

    def images() -> int:  # the budget's measure less the job log's files
        return budget.used_bytes(fresh=True) - sum(p.stat().st_size for p in store.files() if p.exists())

    before = images()
    HardImages(store, config, budget).flag(job.id)
    assert images() == before  # a hard link: no new bytes
    spooled = config.data_dir / store.get_observation(job.observation_id).spool_path
    size = spooled.stat().st_size
    spooled.unlink()
    assert images() == before == size  # now only the kept copy holds those bytes
    budget.budget_bytes = budget.used_bytes(fresh=True) + size - 1
    ok, reason = budget.may_keep(size, size, 10 * size)
    assert not ok and "disk budget reached" in reason


def test_flag_refusals(store, config):
    job = queued_job(store, config, 1)
    sampler = HardImages(store, config)
    with pytest.raises(CannotKeep, match="is queued; only a completed job"):
        sampler.flag(job.id)
    with pytest.raises(JobNotFound):
        sampler.flag("job_nope")
    done = finished(store, config, 2, SURE)
    (config.data_dir / store.get_observation(done.observation_id).spool_path).unlink()
    with pytest.raises(CannotKeep, match="is no longer on this device"):
        sampler.flag(done.id)


def test_flag_over_http(store, config):
    done = finished(store, config, 1, SURE)
    queued = queued_job(store, config, 2)
    with live_api(config, store) as server:
        base = f"{server.url}/v1/tenants/{config.tenant_id}/cv/jobs"
        r = requests.post(f"{base}/{done.id}/flag", json={"reason": "missed a product"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["reason"] == "flagged" and r.json()["detail"] == "missed a product"
        r = requests.post(f"{base}/{queued.id}/flag", json={}, timeout=10)
        assert r.status_code == 409 and r.json()["error"]["code"] == "cannot_keep"
        r = requests.post(f"{base}/job_nope/flag", json={}, timeout=10)
        assert r.status_code == 404
        r = requests.post(f"{base}/{done.id}/flag", json={"oops": 1}, timeout=10)
        assert r.status_code in (400, 422)
    assert sql.get(store, done.id).detail == "missed a product"


def _cli(config, *args):
    env = {
        "EDGECV_CONFIG": "",
        "EDGECV_DATA_DIR": str(config.data_dir),
        "EDGECV_MODELS_DIRS": str(config.models_dirs[0]),
    }
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


def test_cli_flag_status_and_export(store, config, tmp_path):
    done = finished(store, config, 1, UNSURE)
    hard = finished(store, config, 2, OUT)
    config.hard_images.enabled = True
    HardImages(store, config).run_once()  # keeps both: `done` as low_confidence, `hard` out of domain
    assert sql.get(store, hard.id).reason == "out_of_domain"
    result = _cli(config, "jobs", "flag", done.id, "--reason", "the can is a bottle")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"flagged {done.id}: image kept in hard/")
    result = _cli(config, "jobs", "flag", "job_nope")
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    lines = status_lines(status_snapshot(config))
    line = next(x for x in lines if x.startswith("hard imgs:"))
    assert "2 kept for labelling (flagged 1, out_of_domain 1)" in line and "sampling on" in line

    out = tmp_path / "yolo"
    result = _cli(config, "export", "--flagged", "--format", "yolo", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("exported 1 image(s), 2 box(es), 2 class(es) as yolo")
    obs = store.get_observation(done.observation_id)
    assert (out / "images" / f"{obs.id}.jpg").read_bytes() == (config.data_dir / obs.spool_path).read_bytes()
    label = (out / "labels" / f"{obs.id}.txt").read_text().splitlines()
    # classes sorted: bottle 0, can 1; can box (5, 5, 50, 60) in a w x h image
    cx, cy, w, h = (5 + 25) / obs.width, (5 + 30) / obs.height, 50 / obs.width, 60 / obs.height
    assert label[1] == f"1 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
    assert label[0].startswith("0 ")
    assert 'names:\n  0: "bottle"\n  1: "can"' in (out / "data.yaml").read_text()
    manifest = json.loads((out / "edgecv-export.json").read_text())
    assert (
        manifest["images"][0]["jobId"] == done.id and manifest["images"][0]["detail"] == "the can is a bottle"
    )

    out = tmp_path / "coco"
    report = export_kept(store, config.data_dir, out, reasons=["flagged", "out_of_domain"], fmt="coco")
    assert report["images"] == 2 and report["boxes"] == 2
    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["bottle", "can"]
    assert len(coco["images"]) == 2 and {a["image_id"] for a in coco["annotations"]} == {1}
    can = next(a for a in coco["annotations"] if a["category_id"] == 2)
    assert can["bbox"] == [5.0, 5.0, 50.0, 60.0] and can["score"] == 0.31
    for image in coco["images"]:
        assert (out / image["file_name"]).is_file()
    assert (
        export_kept(store, config.data_dir, out, reasons=["flagged", "out_of_domain"], fmt="coco") == report
    )

    result = _cli(config, "export", str(tmp_path / "x"))
    assert result.exit_code == 2 and "pass --flagged, --hard or both" in result.output
    (tmp_path / "file").write_text("x")
    result = _cli(config, "export", "--hard", str(tmp_path / "file"))
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_the_agent_runs_the_sampler_when_enabled(config, inbox):
    from helpers.agent import AgentThread, wait_until
    from helpers.images import distinct_jpeg

    config.hard_images.enabled = True
    config.hard_images.confidence_low, config.hard_images.confidence_high = 0.0, 1.0  # every detection
    with AgentThread(config) as running:
        (inbox / "a.jpg").write_bytes(distinct_jpeg(3))
        done = wait_until(lambda: running.done_jobs(), timeout=60)[0]
        kept = wait_until(lambda: sql.get(running.store, done.id), timeout=60)
    assert kept.reason == "low_confidence" and (config.data_dir / kept.path).is_file()


def test_kept_images_go_upstream_with_pre_labels_once(store, config, tmp_path):
    from helpers.sync_server import API_KEY, TENANT, add_faults, device_config, start_server

    from edgecv.upstream.hard_upload import HardImageUploader

    server = start_server(tmp_path / "up.db")
    sync = device_config(config.data_dir, server.url).sync
    config.sync, config.tenant_id = sync, TENANT
    assert config.sync.api_key == API_KEY
    jobs = [finished(store, config, i, r) for i, r in enumerate([UNSURE, OUT])]
    kept = HardImages(store, config)
    for job in jobs:
        kept.flag(job.id, f"look at {job.id}")
    uploader = HardImageUploader(store, config)
    try:
        assert uploader.run_once() == 2
        items = server.upstream.hard_items(TENANT)
        assert [i["jobId"] for i in items] == [j.id for j in jobs]
        first = items[0]
        assert first["idempotencyKey"] == f"{jobs[0].id}:hard" and first["detail"] == f"look at {jobs[0].id}"
        assert [c["name"] for c in first["labels"]["categories"]] == ["bottle", "can"]
        assert {a["bbox"][0] for a in first["labels"]["annotations"]} == {10.0, 5.0}
        assert server.upstream.has_image(TENANT, first["image"]["sha256"])  # the image went first
        assert server.upstream.stats(TENANT)["images"] == 2
        privacy = [r[0] for r in server.upstream.conn.execute("SELECT privacy FROM images").fetchall()]
        assert all("faces=blur" in p for p in privacy)  # through the privacy filter, as every upload
        assert sql.upload_counts(store) == {"sent": 2}
        before = dict(server.upstream.requests)
        assert uploader.run_once() == 0 and server.upstream.requests == before  # nothing twice
        kept.flag(jobs[0].id, "a second look")  # a new flag: sent again, the server keeps the latest
        assert uploader.run_once() == 1
        assert server.upstream.hard_items(TENANT)[-1]["detail"] == "a second look"
        assert len(server.upstream.hard_items(TENANT)) == 2
        # the upstream failing: the item stays pending, the uploader backs off, nothing is lost
        kept.flag(jobs[1].id, "third")
        add_faults(server, {"kind": "status", "status": 503, "path": "hard", "count": 1})
        assert uploader.run_once() == 0
        assert sql.upload_counts(store) == {"sent": 1, "pending": 1} and "HTTP 503" in uploader.last_error
        uploader._until = 0.0  # the backoff has passed
        assert uploader.run_once() == 1 and sql.upload_counts(store) == {"sent": 2}
        server.stop()
        uploader.transport.close()
        kept.flag(jobs[1].id, "fourth")
        assert uploader.run_once() == 0 and "upstream unreachable" in uploader.last_error
        assert sql.upload_counts(store) == {"sent": 1, "pending": 1}
    finally:
        uploader.close()
        server.stop()

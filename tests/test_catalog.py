"""The product catalogue: the folder and its problems, recognition, hot reload, the CLI and the API."""

from __future__ import annotations

import json
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
import requests
from click.testing import CliRunner
from helpers.api import live_api
from helpers.scripts import load_script

from edgecv.catalog import DEMO, features
from edgecv.catalog import index as catalog_index
from edgecv.catalog.folder import scan
from edgecv.catalog.index import UNKNOWN, LiveCatalog, build, check
from edgecv.catalog.service import add_sku, match_image
from edgecv.cli import main
from edgecv.config import load_config
from edgecv.errors import CatalogError
from edgecv.ingest import ingest_file
from edgecv.store import Store
from edgecv.work.worker import Worker

COLOURS = [(30, 30, 200), (40, 160, 40), (200, 120, 20), (20, 200, 230), (160, 40, 160), (90, 90, 90)]


def pack(i: int, height: int = 200) -> np.ndarray:
    """Pack ``i``: its own colours, band and mark (drawn here, unlike anything the generators draw)."""
    w = int(height * (0.45 + 0.1 * (i % 3)))
    img = np.full((height, w, 3), COLOURS[i % len(COLOURS)], np.uint8)
    band = COLOURS[(i * 2 + 1) % len(COLOURS)]
    y = int(height * (0.25 + 0.1 * (i % 4)))
    cv2.rectangle(img, (0, y), (w, y + height // 5), band, -1)
    if i % 2:
        cv2.circle(img, (w // 2, height * 3 // 4), w // 4, (240, 240, 240), -1)
    else:
        cv2.rectangle(img, (w // 4, height * 2 // 3), (w * 3 // 4, height * 5 // 6), (15, 15, 15), -1)
    cv2.putText(
        img, f"P{i}", (5, y + height // 7), cv2.FONT_HERSHEY_SIMPLEX, height / 200, (255, 255, 255), 2
    )
    return img


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def shelf_of(packs: list[np.ndarray], exposure: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The packs side by side at shelf scale, darker, softened and JPEG'd: (image, boxes)."""
    canvas = np.full((260, 40 + sum(p.shape[1] // 2 + 20 for p in packs), 3), 120, np.uint8)
    boxes, x = [], 20
    for p in packs:
        small = cv2.resize(p, (p.shape[1] // 2, p.shape[0] // 2), interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        canvas[230 - h : 230, x : x + w] = small
        boxes.append([x, 230 - h, x + w, 230])
        x += w + 20
    canvas = cv2.GaussianBlur(np.clip(canvas * exposure, 0, 255).astype(np.uint8), (0, 0), 0.8)
    canvas = cv2.imdecode(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
    return canvas, np.array(boxes, float)


@pytest.fixture
def cat_config(tmp_path):
    return load_config(
        overrides={"data_dir": tmp_path / "data", "catalog": tmp_path / "catalog", "api.enabled": False},
        environ={},
    )


def _fill(config, count: int = 5) -> None:
    for i in range(count):
        add_sku(
            config, f"sku-{i}", [("front.png", png(pack(i)))], {"name": f"Pack {i}", "expectedPrice": 1.5}
        )


# -- the folder ---------------------------------------------------------------------------------------


def test_a_bad_file_or_sku_json_is_reported_and_the_rest_still_loads(tmp_path):
    root = tmp_path / "catalog"
    for sku in ("good", "broken-json", "bad-image", "empty", "Good"):
        (root / sku).mkdir(parents=True)
    (root / "good" / "a.png").write_bytes(png(pack(0)))
    (root / "broken-json" / "a.png").write_bytes(png(pack(1)))
    (root / "broken-json" / "sku.json").write_text('{"name": "x",')
    (root / "bad-image" / "a.jpg").write_bytes(b"not an image at all")
    (root / "bad-image" / "notes.txt").write_text("hello")
    (root / "Good" / "a.png").write_bytes(png(pack(2)))
    (root / ".hidden").mkdir()
    (root / "loose.jpg").write_bytes(png(pack(3)))
    (root / "bad id!").mkdir()
    # a 12000 x 9000 PNG header with a tiny body: over the pixel limit, never decoded
    ihdr = struct.pack(">IIBBBBB", 12000, 9000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    huge = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    (root / "huge").mkdir()
    (root / "huge" / "a.png").write_bytes(huge + b"\x00" * 64)
    index = build(root, tmp_path / "cache", max_pixels=50_000_000)
    assert [s.id for s in index.skus] == ["Good", "broken-json"]  # "good" differs only in case: refused
    messages = "\n".join(str(p) for p in check(index))
    assert "is not valid JSON" in messages
    assert "unusable reference image" in messages and "bad-image" in messages
    assert "has no reference images" in messages  # empty
    assert "differs only in case" in messages  # Good vs good
    assert "images belong in a folder per SKU" in messages
    assert "not a usable SKU id" in messages
    assert "more than the limit" in messages  # huge
    assert "notes.txt" in messages


def test_add_checks_every_image_first_and_writes_nothing_on_a_bad_one(cat_config):
    with pytest.raises(CatalogError, match="not usable as a reference image"):
        add_sku(cat_config, "x", [("a.png", png(pack(0))), ("b.jpg", b"garbage")])
    assert not (cat_config.catalog_dir / "x").exists()
    with pytest.raises(CatalogError, match="SKU id"):
        add_sku(cat_config, "../escape", [("a.png", png(pack(0)))])
    with pytest.raises(CatalogError, match="at least one reference image"):
        add_sku(cat_config, "new", [], {"name": "nothing"})
    entry = add_sku(cat_config, "x", [("a.png", png(pack(0))), ("a.png", png(pack(0)))], {"name": "X"})
    assert [p.name for p in entry.images] == ["a-2.png", "a.png"] and entry.name == "X"
    assert "same file" in "\n".join(str(p) for p in check(build(cat_config.catalog_dir)))


# -- recognition --------------------------------------------------------------------------------------


def test_products_are_named_from_one_reference_each_and_strangers_are_unknown(cat_config):
    _fill(cat_config, 5)
    index = build(cat_config.catalog_dir, cat_config.cache_dir)
    stranger = np.full((200, 100, 3), (200, 200, 60), np.uint8)
    cv2.line(stranger, (0, 0), (100, 200), (10, 10, 120), 9)
    image, boxes = shelf_of([pack(3), pack(0), pack(4), stranger, pack(1), pack(2)])
    rec = index.recognise(image, boxes, cat_config.catalog_threshold)
    assert rec.sku == ["sku-3", "sku-0", "sku-4", None, "sku-1", "sku-2"]
    assert rec.name[3] == UNKNOWN and rec.name[0] == "Pack 3"
    assert min(s for s, k in zip(rec.score, rec.sku, strict=True) if k) >= cat_config.catalog_threshold


def test_overlapping_boxes_are_one_product_whatever_the_detector_guessed(cat_config):
    _fill(cat_config, 3)
    index = build(cat_config.catalog_dir)
    image, boxes = shelf_of([pack(0), pack(1)])
    doubled = np.concatenate([boxes, boxes[:1] + 1.0])
    rec = index.recognise(image, doubled, 0.8, confidence=np.array([0.9, 0.8, 0.6]))
    assert rec.keep.tolist() == [0, 1] and rec.sku == ["sku-0", "sku-1"]


def test_look_alikes_in_two_sizes_are_told_apart_by_height(cat_config):
    """Two SKUs of one design (a 250 ml and a 500 ml can) tie on looks; heightMm and the other products'
    scale decide."""
    _fill(cat_config, 3)
    for sku, mm in (("sku-0", 100.0), ("sku-1", 100.0), ("sku-2", 100.0)):
        add_sku(cat_config, sku, [], {"heightMm": mm})
    add_sku(cat_config, "tall", [("front.png", png(pack(4, 200)))], {"heightMm": 200.0})
    add_sku(cat_config, "short", [("front.png", png(pack(4, 200)))], {"heightMm": 100.0})
    index = build(cat_config.catalog_dir)
    assert any("looks alike" in p.message for p in check(index))
    short_p, tall_p = pack(4, 200), cv2.resize(pack(4, 200), None, fx=2, fy=2)
    image, boxes = shelf_of([pack(0), short_p, pack(1), tall_p, pack(2)])
    rec = index.recognise(image, boxes, 0.8)
    assert rec.sku == ["sku-0", "short", "sku-1", "tall", "sku-2"]


def test_match_uses_the_photo_itself_when_no_detector_is_given(cat_config):
    _fill(cat_config, 4)
    index = build(cat_config.catalog_dir)
    photo = cv2.copyMakeBorder(pack(2, 300), 20, 20, 30, 30, cv2.BORDER_CONSTANT, value=(235, 235, 235))
    out = match_image(photo, index, 0.8, detector=None, top=3)
    assert out["sku"] == "sku-2" and len(out["candidates"]) == 3
    assert out["source"] in ("whole image", "centre 70 %", "centre 50 %")
    assert out["candidates"][0]["score"] >= out["candidates"][1]["score"]


def printed(seed: int, size: int = 240) -> np.ndarray:
    """A pack whose colours and layout are the same for every seed; only its fine print (a pattern of
    small marks and letters) differs: what the embedding hardly sees and keypoints do."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size * 2 // 3, 3), (40, 140, 210), np.uint8)
    cv2.rectangle(img, (0, size // 3), (img.shape[1], size // 2), (240, 240, 240), -1)
    for _ in range(60):
        x, y = int(rng.integers(5, img.shape[1] - 15)), int(rng.integers(5, size - 15))
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(2, 7)), c, -1)
        else:
            cv2.putText(
                img, chr(65 + int(rng.integers(26))), (x, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1
            )
    return img


def test_keypoints_tell_apart_packs_that_differ_only_in_their_print(cat_config, monkeypatch):
    for i in range(3):
        add_sku(cat_config, f"print-{i}", [("front.png", png(printed(i)))], {"name": f"Print {i}"})
    index = build(cat_config.catalog_dir, cat_config.cache_dir)
    # a phone photo of print-1: turned 8 degrees, a little smaller, on a grey background, softened, JPEG
    pack_ = printed(1)
    photo = np.full((348, 348, 3), 110, np.uint8)
    small = cv2.resize(
        pack_, (pack_.shape[1] * 5 // 6, pack_.shape[0] * 5 // 6), interpolation=cv2.INTER_AREA
    )
    y, x = (348 - small.shape[0]) // 2, (348 - small.shape[1]) // 2
    photo[y : y + small.shape[0], x : x + small.shape[1]] = small
    photo = cv2.warpAffine(
        photo, cv2.getRotationMatrix2D((174, 174), 8, 1.0), (348, 348), borderValue=(110, 110, 110)
    )
    photo = cv2.imdecode(cv2.imencode(".jpg", cv2.GaussianBlur(photo, (0, 0), 0.6))[1], cv2.IMREAD_COLOR)
    out = match_image(photo, index, 0.75, detector=None, top=3)
    first, *rest = out["candidates"]
    assert first["sku"] == "print-1", out
    assert first["keypointVotes"] >= 10 and all(
        c["keypointVotes"] * 3 <= first["keypointVotes"] for c in rest
    )
    spread = first["appearance"] - min(c["appearance"] for c in rest)
    assert first["score"] - rest[0]["score"] > spread  # the keypoints decided it, not the appearance
    # the reference keypoints were cached on disk by file digest: a new index does not make them again
    from edgecv.catalog import keypoints

    assert len(list((cat_config.cache_dir / "catalog" / "keypoints").glob("*.npy"))) == 3
    monkeypatch.setattr(keypoints, "describe", lambda *a: pytest.fail("reference keypoints made again"))
    again = build(cat_config.catalog_dir, cat_config.cache_dir)
    assert all(len(a) for i in range(3) for a in again.sku_keypoints(i))


def test_the_index_is_cached_and_a_change_re_embeds_only_what_changed(cat_config, monkeypatch):
    _fill(cat_config, 3)
    first = build(cat_config.catalog_dir, cat_config.cache_dir)
    calls = []
    real = features.reference_views
    monkeypatch.setattr(catalog_index.features, "reference_views", lambda img: calls.append(1) or real(img))
    again = build(cat_config.catalog_dir, cat_config.cache_dir)
    assert calls == [] and again.version == first.version and np.array_equal(again.emb, first.emb)
    add_sku(cat_config, "sku-9", [("front.png", png(pack(5)))])
    changed = build(cat_config.catalog_dir, cat_config.cache_dir)
    assert len(calls) == 1 and changed.version != first.version and len(changed) == 4


def test_a_running_catalogue_sees_additions_and_removals(cat_config):
    live = LiveCatalog(cat_config.catalog_dir, cat_config.cache_dir, check_every_s=0.0)
    assert live.get() is None  # no SKU: the detector's labels stay
    _fill(cat_config, 2)
    first = live.get()
    assert first is not None and len(first) == 2
    add_sku(cat_config, "sku-7", [("front.png", png(pack(5)))])
    assert len(live.get()) == 3
    (cat_config.catalog_dir / "sku-7" / "sku.json").write_text("[1, 2")  # malformed: still used, warned
    assert len(live.get()) == 3


# -- the shelf pipeline and the agent -----------------------------------------------------------------


@pytest.fixture(scope="module")
def generate():
    return load_script("generate")


def _shelf_jobs(tmp_path, generate, catalog, seeds=(0, 1)):
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    cfg = load_config(
        overrides={
            "data_dir": tmp_path / "data",
            "inbox": inbox,
            "default_model": "shelf-detection-v2",
            "api.enabled": False,
            "backlog_batch": 1,
            "catalog": catalog,
        },
        environ={},
    )
    store = Store(cfg.db_path)
    truths, ids = [], []
    try:
        for i in seeds:
            _, jpeg, _, _, _, truth = generate.render_one("shelves", 515151, i, 1280, 720)
            path = inbox / f"shelf{i}.jpg"
            path.write_bytes(jpeg)
            ids.append(ingest_file(store, cfg, path, inbox).job.id)
            truths.append(truth)
        worker = Worker(store, cfg)
        while worker.run_once() is not None:
            pass
        return [store.get_job(j).to_dict() for j in ids], truths
    finally:
        store.close()


def test_shelf_jobs_name_products_from_the_demo_catalogue(tmp_path, generate):
    jobs, truths = _shelf_jobs(tmp_path, generate, DEMO)
    skus = {s.name: s.id for s in scan(DEMO)[0]}
    right = total = 0
    for job, truth in zip(jobs, truths, strict=True):
        result = job["result"]
        assert result["catalog"]["skus"] == 24 and len(result["catalog"]["version"]) == 12
        assert {"priceCompliance", "mispricedSKUs", "unknownProducts"} <= set(result["summary"])
        for d in result["detections"]:
            assert d["attributes"]["sku"] == skus.get(d["objectName"])
            named = d["attributes"]["sku"] is not None
            assert (d["attributes"]["recognitionScore"] >= 0.75) == named  # catalog_threshold
            if named and d["attributes"].get("priceTag") is not None:
                assert d["attributes"]["priceMatch"] == (
                    abs(float(d["attributes"]["priceTag"]) - d["attributes"]["expectedPrice"]) < 0.005
                )
        for p in truth["products"]:
            total += 1
            x1, y1, x2, y2 = p["xyxy"]
            right += any(
                d["objectName"] == p["sku"]
                and abs(d["boundingBox"]["x"] - x1) < 0.3 * (x2 - x1)
                and abs(d["boundingBox"]["y"] - y1) < 0.3 * (y2 - y1)
                for d in result["detections"]
            )
    assert right / total >= 0.95, (right, total)


def test_without_a_catalogue_products_keep_the_detector_labels(tmp_path, generate):
    jobs, _ = _shelf_jobs(tmp_path, generate, tmp_path / "no-catalog", seeds=(0,))
    result = jobs[0]["result"]
    assert "catalog" not in result and "sku" not in result["detections"][0]["attributes"]


# -- CLI and API --------------------------------------------------------------------------------------


def _cli(cfg, *args):
    return CliRunner().invoke(
        main, ["--data-dir", str(cfg.data_dir), *args], env={"EDGECV_CATALOG": str(cfg.catalog_dir)}
    )


def test_cli_add_list_show_check_remove(cat_config, tmp_path):
    front = tmp_path / "front.png"
    front.write_bytes(png(pack(1)))
    r = _cli(cat_config, "catalog", "add", "cola-330", str(front), "--name", "Cola 330", "--price", "0.89")
    assert r.exit_code == 0, r.output
    assert "cola-330: Cola 330, 1 reference image(s)" in r.output
    listed = json.loads(_cli(cat_config, "catalog", "list", "--json").output)
    assert listed["skus"] == 1 and listed["data"][0]["expectedPrice"] == 0.89
    shown = json.loads(_cli(cat_config, "catalog", "show", "cola-330").output)
    assert shown["name"] == "Cola 330" and shown["images"] == ["front.png"]
    assert _cli(cat_config, "catalog", "check").exit_code == 0
    (cat_config.catalog_dir / "cola-330" / "broken.jpg").write_bytes(b"xx")
    r = _cli(cat_config, "catalog", "check")
    assert r.exit_code == 1 and "broken.jpg" in r.output
    r = _cli(cat_config, "catalog", "show", "nope")
    assert r.exit_code == 1 and "Error: no SKU nope" in r.output
    assert _cli(cat_config, "catalog", "remove", "cola-330").exit_code == 0
    assert not (cat_config.catalog_dir / "cola-330").exists()
    r = _cli(cat_config, "catalog", "add", "x", str(tmp_path / "missing.png"))
    assert r.exit_code == 2  # click: the path does not exist


@pytest.mark.process
def test_api_catalogue_round_trip(cat_config, tmp_path):
    cfg = cat_config
    store = Store(cfg.db_path)
    try:
        with live_api(cfg, store) as server:
            base = f"{server.url}/v1/tenants/{cfg.tenant_id}/catalog"
            files = [
                ("file", ("front.png", png(pack(0)), "image/png")),
                ("file", ("side.png", png(pack(0, 150)), "image/png")),
            ]
            r = requests.post(
                f"{base}/skus/pack-0/images", files=files, data={"name": "Pack 0", "expectedPrice": "2.5"}
            )
            assert r.status_code == 201, r.text
            assert r.json()["images"] == ["front.png", "side.png"] and r.json()["expectedPrice"] == 2.5
            add_sku(cfg, "pack-1", [("front.png", png(pack(1)))])
            r = requests.get(base)
            assert r.status_code == 200 and [s["id"] for s in r.json()["data"]] == ["pack-0", "pack-1"]
            assert requests.get(f"{base}/skus/pack-1").json()["name"] == "pack-1"
            assert requests.get(f"{base}/skus/nope").status_code == 404
            assert requests.get(f"{base}/skus/..%2Fx").status_code in (404, 422)
            bad = requests.post(
                f"{base}/skus/pack-2/images", files=[("file", ("a.jpg", b"junk", "image/jpeg"))]
            )
            assert (
                bad.status_code == 422 and "not usable as a reference image" in bad.json()["error"]["message"]
            )
            assert requests.post(f"{base}/skus/pack-2/images", json={"a": 1}).status_code == 415
            assert (
                requests.post(
                    f"{base}/skus/pack-2/images", data={"expectedPrice": "cheap"}, files=files
                ).status_code
                == 422
            )
            assert requests.get(f"{base}/check").json()["problems"] == []
            assert requests.delete(f"{base}/skus/pack-1").status_code == 204
            assert requests.delete(f"{base}/skus/pack-1").status_code == 404
    finally:
        store.close()


def test_cli_match_answers_per_photo_in_order(tmp_path, generate):
    _, jpeg, *_ = generate.render_one("shelves", 515151, 3, 1280, 720)
    (tmp_path / "shelf.jpg").write_bytes(jpeg)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    shot = DEMO / "zesto-orange-1l" / "pack.png"
    r = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "catalog",
            "match",
            str(shot),
            str(tmp_path / "broken.jpg"),
            str(tmp_path / "shelf.jpg"),
            "--json",
            "--top",
            "2",
        ],
        env={"EDGECV_CATALOG": str(DEMO)},
    )
    assert r.exit_code == 1  # one photo could not be read; the others are answered
    out = json.loads(r.output)
    assert [o["file"] for o in out] == ["pack.png", "broken.jpg", "shelf.jpg"]
    assert out[0]["sku"] == "zesto-orange-1l" and len(out[0]["candidates"]) == 2
    assert out[1]["error"]["code"] == "image_unreadable"
    assert out[2]["source"] == "detector" and out[2]["sku"] is not None


@pytest.mark.process
def test_a_running_agent_uses_a_catalogue_added_while_it_runs(tmp_path, generate):
    import shutil

    from helpers.agent import AgentThread, wait_until

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = load_config(
        overrides={
            "data_dir": tmp_path / "data",
            "inbox": inbox,
            "default_model": "shelf-detection-v2",
            "api.enabled": False,
            "catalog": tmp_path / "catalog",
        },
        environ={},
    )

    def drop(i: int) -> dict:
        _, jpeg, *_ = generate.render_one("shelves", 616161, i, 1280, 720)
        (inbox / f"s{i}.jpg").write_bytes(jpeg)
        return wait_until(lambda: next((j for j in agent.done_jobs() if j.result and j.id not in seen), None))

    seen: set[str] = set()
    with AgentThread(cfg) as agent:
        first = drop(0)
        seen.add(first.id)
        assert "catalog" not in first.result  # no catalogue yet: the detector's labels
        shutil.copytree(DEMO, cfg.catalog_dir)
        version = build(cfg.catalog_dir).version
        deadline, i = time.monotonic() + 20, 1
        while True:  # the agent looks at the folder at most once a second; nothing restarts
            job = drop(i)
            seen.add(job.id)
            if "catalog" in job.result or time.monotonic() > deadline:
                break
            i += 1
        assert job.result["catalog"]["version"] == version
        assert len(agent.done_jobs()) == i + 1 and all(j.status == "completed" for j in agent.done_jobs())


def test_the_shipped_embedder_loads_checks_its_sha256_and_embeds(tmp_path):
    import shutil

    from edgecv.catalog import learned
    from edgecv.errors import ModelPackageError

    model = learned.embedder()
    assert model is not None, "the catalogue's learned embedder ships in edgecv/catalog/embedder"
    crops = np.stack(
        [cv2.resize(pack(i), (learned.SIZE, learned.SIZE)) for i in range(3)] * 30
    )  # > one batch
    out = model.embed(crops)
    assert out.shape == (90, model.dim) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)
    assert np.allclose(out[0], out[3]) and not np.allclose(out[0], out[1], atol=0.05)
    broken = tmp_path / "embedder"
    shutil.copytree(learned.MODEL_DIR, broken)
    with open(broken / "embedder.onnx", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelPackageError, match="does not match the sha256"):
        learned.LearnedEmbedder(broken)
    assert features.dim() == features.DIM + model.dim


def test_cached_embeddings_made_by_other_features_are_not_used(cat_config, monkeypatch):
    """An upgrade that changes the embedder must not match new crops against old reference embeddings."""
    _fill(cat_config, 2)
    first = build(cat_config.catalog_dir, cat_config.cache_dir)
    monkeypatch.setattr(features, "signature", lambda: "another-embedder")
    calls = []
    real = features.reference_views
    monkeypatch.setattr(catalog_index.features, "reference_views", lambda img: calls.append(1) or real(img))
    again = build(cat_config.catalog_dir, cat_config.cache_dir)
    assert len(calls) == 2 and again.version == first.version  # re-embedded; the catalogue itself is the same


def test_status_names_the_catalogue_and_its_problems(cat_config):
    _fill(cat_config, 2)
    (cat_config.catalog_dir / "empty-sku").mkdir()
    r = _cli(cat_config, "status", "--json")
    assert r.exit_code == 0, r.output
    catalog = json.loads(r.output)["catalog"]
    assert catalog == {"folder": str(cat_config.catalog_dir), "skus": 2, "problems": 1}
    text = _cli(cat_config, "status").output
    assert "catalog:    2 SKU(s) in" in text and "1 problem(s): `edgecv catalog check`" in text

"""The scene check: the shipped classifier loads and verifies, accepts fresh images of each model's domain,
refuses images with none of it, and a refused job completes with no detections and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.scripts import load_script

from edgecv.config import load_config
from edgecv.errors import ConfigError, ModelPackageError
from edgecv.ingest import ingest_file
from edgecv.runtime.package import DomainSpec, load_package
from edgecv.runtime.scene import SCENE_DIR, SceneCheck
from edgecv.store import Store
from edgecv.work.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TEST_SEED = 424242  # never used for training the scene check or the detectors
DOMAINS = {  # package -> (generator domain, scene)
    "shelf-detection-v2": ("shelves", "retail"),
    "building-inspection-v1": ("facades", "facade"),
    "damage-assessment-v1": ("damage", "surface"),
}


@pytest.fixture(scope="module")
def generate():
    return load_script("generate")


@pytest.fixture(scope="module")
def check() -> SceneCheck:
    return SceneCheck()


def _fresh(generate, domain: str, i: int) -> np.ndarray:
    _, jpeg, *_ = generate.render_one(domain, TEST_SEED, i, 1280, 720)
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def _negatives() -> dict[str, np.ndarray]:
    """Images with none of the models' scenes, drawn here (no photo package needed)."""
    rng = np.random.default_rng(7)
    page = np.full((720, 1280, 3), 240, np.uint8)
    for y in range(30, 720, 28):
        cv2.putText(
            page,
            "the quick brown fox jumps over the lazy dog 1234",
            (20, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8,
            (20, 20, 20),
            2,
        )
    blobs = np.full((720, 1280, 3), (40, 120, 40), np.uint8)
    for _ in range(30):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(
            blobs, (int(rng.integers(1280)), int(rng.integers(720))), int(rng.integers(20, 90)), colour, -1
        )
    return {
        "grey": np.full((720, 1280, 3), 128, np.uint8),
        "gradient": (np.linspace(0, 255, 1280)[None, :, None] * np.ones((720, 1, 3))).astype(np.uint8),
        "noise": cv2.resize(
            rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC
        ),
        "text page": page,
        "blobs": blobs,
    }


def test_shipped_scene_check_verifies_and_scores_sum_to_one(check):
    meta = json.loads((SCENE_DIR / "scene-check.json").read_text())
    assert check.scenes == meta["scenes"] == ["retail", "facade", "surface", "other"]
    scores = check.scores(np.full((240, 320, 3), 90, np.uint8))
    assert abs(sum(scores.values()) - 1.0) < 1e-4


def test_tampered_scene_check_is_refused(tmp_path):
    copy = tmp_path / "scene"
    shutil.copytree(SCENE_DIR, copy)
    onnx = copy / "scene-check.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(ModelPackageError, match="sha256"):
        SceneCheck(copy)


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_fresh_images_of_each_domain_pass_their_model_and_only_theirs(name, check, generate):
    domain, scene = DOMAINS[name]
    spec = load_package(MODELS / name).domain
    assert spec == DomainSpec(scene, spec.threshold) and 0 < spec.threshold < 1
    for i in range(3):
        scores = check.scores(_fresh(generate, domain, i))
        assert scores[scene] >= spec.threshold, f"{name} image {i}: {scores}"
        others = [s for s in ("retail", "facade", "surface") if s != scene]
        assert all(scores[s] < 0.5 for s in others), f"{name} image {i}: {scores}"


@pytest.mark.parametrize("kind", sorted(_negatives()))
def test_drawn_negatives_pass_no_model(kind, check):
    image = _negatives()[kind]
    for name in DOMAINS:
        spec = load_package(MODELS / name, verify=False).domain
        assert check.verdict(image, spec).in_domain is False, f"{kind} passes {name}: {check.scores(image)}"


def test_bad_domain_entries_are_refused(tmp_path):
    from helpers.runtime import make_package, read_manifest_json

    pkg = make_package(tmp_path, "rect")
    manifest = read_manifest_json(pkg)
    for bad, message in (
        ({"scene": "kitchen"}, "domain.scene"),
        ({"scene": "retail", "threshold": 2}, "threshold"),
    ):
        (pkg / "model.json").write_text(json.dumps({**manifest, "domain": bad}))
        with pytest.raises(ModelPackageError, match=message):
            load_package(pkg, verify=False)


def test_domain_threshold_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="domain_threshold"):
        load_config(overrides={"data_dir": tmp_path, "domain_threshold": 1.5}, environ={})


def _run_jobs(tmp_path, files: dict[str, np.ndarray], model: str, **overrides) -> dict[str, dict]:
    """Each image through ingest and a real worker on the shipped ``model``: name -> job dict."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    cfg = load_config(
        overrides={
            "data_dir": tmp_path / "data",
            "inbox": inbox,
            "default_model": model,
            "api.enabled": False,
            "backlog_batch": 1,
            **overrides,
        },
        environ={},
    )
    store = Store(cfg.db_path)
    try:
        ids = {}
        for name, image in files.items():
            path = inbox / f"{name}.jpg"
            cv2.imwrite(str(path), image)
            ids[name] = ingest_file(store, cfg, path, inbox).job.id
        worker = Worker(store, cfg)
        while worker.run_once() is not None:
            pass
        return {name: store.get_job(job_id).to_dict() for name, job_id in ids.items()}
    finally:
        store.close()


def test_a_damage_job_on_a_non_surface_image_completes_good_with_no_detections(tmp_path, generate):
    jobs = _run_jobs(
        tmp_path,
        {"blobs": _negatives()["blobs"], "surface": _fresh(generate, "damage", 5)},
        "damage-assessment-v1",
    )
    refused, accepted = jobs["blobs"], jobs["surface"]
    assert refused["status"] == "completed"
    assert refused["result"]["detections"] == []
    assert refused["result"]["domain"]["inDomain"] is False
    assert refused["result"]["domain"]["scene"] == "surface"
    assert refused["result"]["summary"]["conditionLabel"] == "good"
    assert accepted["status"] == "completed" and accepted["result"]["domain"]["inDomain"] is True
    assert accepted["result"]["detections"]


def test_shelf_jobs_on_the_backlog_paths_refuse_the_same_images(tmp_path, generate):
    images = {"page": _negatives()["text page"], "shelf": _fresh(generate, "shelves", 6)}
    for mode in ("lanes", "queue"):
        jobs = _run_jobs(
            tmp_path / mode,
            {**images, "grey": _negatives()["grey"]},
            "shelf-detection-v2",
            backlog_batch=8,
            backlog_min=1,
            backlog_mode=mode,
        )
        assert [jobs[n]["result"]["domain"]["inDomain"] for n in ("page", "grey", "shelf")] == [
            False,
            False,
            True,
        ]
        assert (
            jobs["page"]["result"]["detections"] == []
            and jobs["page"]["result"]["summary"]["totalProducts"] == 0
        )
        assert len(jobs["shelf"]["result"]["detections"]) > 10


def test_domain_check_off_runs_the_detector_and_reports_no_domain(tmp_path):
    jobs = _run_jobs(tmp_path, {"page": _negatives()["text page"]}, "shelf-detection-v2", domain_check=False)
    assert jobs["page"]["status"] == "completed"
    assert "domain" not in jobs["page"]["result"]

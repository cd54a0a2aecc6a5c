"""The shipped model packages: they load, their sha256 verify, and they find the objects in freshly
generated images (a real check: garbage weights fail it). No training here; a few seconds per model."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.errors import ModelPackageError
from edgecv.runtime.detector import Detector
from edgecv.runtime.package import load_package

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SCRIPTS = ROOT / "scripts"

# package -> (generator domain, pipeline, minimum recall, minimum precision) at IoU 0.5, class-aware,
# on images from seed 424242 (never used for training, calibration or the eval report).
SHIPPED = {
    "shelf-detection-v2": ("shelves", "shelf", 0.85, 0.85),
    "building-inspection-v1": ("facades", "building", 0.80, 0.80),
    "damage-assessment-v1": ("damage", "damage", 0.70, 0.70),
}
TEST_SEED = 424242


def _generator():
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("edgecv_generate_for_models", SCRIPTS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``a [n,4]`` × ``b [m,4]``."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def _match(truth_boxes, truth_cls, det) -> tuple[int, int]:
    """Greedy matches (same class, IoU ≥ 0.5), highest confidence first: (true positives, detections)."""
    order = np.argsort(-det.confidence)
    used = np.zeros(len(truth_boxes), bool)
    tp = 0
    ious = _iou(det.xyxy[order], truth_boxes) if len(det) and len(truth_boxes) else np.zeros((len(det), 0))
    for row, k in enumerate(order):
        cand = np.where(~used & (truth_cls == det.class_id[k]), ious[row], 0.0)
        if cand.size and cand.max() >= 0.5:
            used[int(cand.argmax())] = True
            tp += 1
    return tp, len(det)


@pytest.fixture(scope="module")
def generate():
    return _generator()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_package_loads_and_verifies(name):
    pkg = load_package(MODELS / name, verify=True)
    domain, pipeline, *_ = SHIPPED[name]
    assert pkg.name == name
    assert pkg.pipeline == pipeline
    assert (pkg.default_backend, pkg.default_precision) == ("openvino", "int8")
    assert {w.key for w in pkg.weights} == {"openvino/int8", "openvino/fp32", "onnx/int8", "onnx/fp32"}
    assert pkg.labels == [ln for ln in _generator().domain_module(domain).NAMES]
    int8_bytes = sum(
        (pkg.path / f).stat().st_size for w in pkg.weights if w.precision == "int8" for f in w.files
    )
    assert int8_bytes <= 15 * 1024 * 1024
    assert (pkg.path / "eval-report.json").is_file() and (pkg.path / "MODEL_CARD.md").is_file()


def test_tampered_weights_are_refused(tmp_path):
    name = "damage-assessment-v1"
    copy = tmp_path / name
    shutil.copytree(MODELS / name, copy)
    xml = copy / "openvino-int8" / "model.xml"
    xml.write_bytes(xml.read_bytes() + b" ")
    with pytest.raises(ModelPackageError):
        load_package(copy, verify=True)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_detects_objects_in_fresh_images(name, generate):
    domain, _, min_recall, min_precision = SHIPPED[name]
    pkg = load_package(MODELS / name)
    det_ov = Detector.open(pkg)  # the default: OpenVINO INT8
    det_onnx = Detector.open(pkg, backend="onnx", precision="int8")
    tp = n_det = n_truth = 0
    for i in range(3):
        _, jpeg, _, _, boxes, _ = generate.render_one(domain, TEST_SEED, i, 1280, 720)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        truth_boxes = np.array([b for _, b in boxes], np.float64).reshape(-1, 4)
        truth_cls = np.array([c for c, _ in boxes], np.int64)
        for det in (det_ov.detect(image), det_onnx.detect(image)):
            a, b = _match(truth_boxes, truth_cls, det)
            tp, n_det, n_truth = tp + a, n_det + b, n_truth + len(truth_boxes)
    assert n_truth > 0
    recall, precision = tp / n_truth, tp / max(1, n_det)
    assert recall >= min_recall, f"{name}: recall {recall:.3f} < {min_recall} ({tp}/{n_truth})"
    assert precision >= min_precision, f"{name}: precision {precision:.3f} < {min_precision} ({tp}/{n_det})"

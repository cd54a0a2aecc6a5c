"""The shipped model packages: they load, their sha256 verify, and they find the objects in freshly
generated images (a real check: garbage weights fail it). No training here; a few seconds per model."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.scripts import load_script

from edgecv.detections import box_iou
from edgecv.errors import ModelPackageError
from edgecv.runtime.detector import Detector
from edgecv.runtime.package import load_package

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

# package -> (generator domain, pipeline, minimum recall, minimum precision) at IoU 0.5, class-aware,
# on images from seed 424242 (never used for training, calibration or the eval report).
SHIPPED = {
    "shelf-detection-v2": ("shelves", "shelf", 0.85, 0.85),
    "building-inspection-v1": ("facades", "building", 0.80, 0.80),
    "damage-assessment-v1": ("damage", "damage", 0.70, 0.70),
}
TEST_SEED = 424242
# the generator whose class list a package has, where it is not its test domain's
LABEL_DOMAIN = {"shelf-detection-v2": "shelves_wide"}  # 2.2: the 25 demo classes + the generic "product"


def _match(truth_boxes, truth_cls, det) -> tuple[int, int]:
    """Greedy matches (same class, IoU ≥ 0.5), highest confidence first: (true positives, detections)."""
    order = np.argsort(-det.confidence)
    used = np.zeros(len(truth_boxes), bool)
    tp = 0
    ious = (
        box_iou(det.xyxy[order][:, None], truth_boxes[None])
        if len(det) and len(truth_boxes)
        else np.zeros((len(det), 0))
    )
    for row, k in enumerate(order):
        cand = np.where(~used & (truth_cls == det.class_id[k]), ious[row], 0.0)
        if cand.size and cand.max() >= 0.5:
            used[int(cand.argmax())] = True
            tp += 1
    return tp, len(det)


@pytest.fixture(scope="module")
def generate():
    return load_script("generate")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_package_loads_and_verifies(name):
    pkg = load_package(MODELS / name, verify=True)
    domain, pipeline, *_ = SHIPPED[name]
    assert pkg.name == name
    assert pkg.pipeline == pipeline
    assert (pkg.default_backend, pkg.default_precision) == ("openvino", "int8")
    assert {w.key for w in pkg.weights} == {"openvino/int8", "openvino/fp32", "onnx/int8", "onnx/fp32"}
    label_domain = LABEL_DOMAIN.get(name, domain)
    assert pkg.labels == [ln for ln in load_script("generate").domain_module(label_domain).NAMES]
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


def test_shelf_model_finds_packs_it_was_never_shown_as_product(generate):
    """Made-up packs (``shelves_wide``, a seed never trained on) are found class-agnostically: any product
    class counts for a product, price-tag for a tag, after the package's class-agnostic NMS."""
    pkg = load_package(MODELS / "shelf-detection-v2")
    assert pkg.thresholds.agnostic
    tag = pkg.labels.index("price-tag")
    det = Detector.open(pkg)
    tp = n_det = n_truth = 0
    for i in range(2):
        _, jpeg, _, _, boxes, _ = generate.render_one("shelves_wide", TEST_SEED, i, 1280, 720)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        truth_boxes = np.array([b for _, b in boxes], np.float64).reshape(-1, 4)
        truth_cls = np.array([int(c == tag) for c, _ in boxes], np.int64)
        d = det.detect(image)
        d = type(d)(d.xyxy, d.confidence, (d.class_id == tag).astype(np.int64))
        a, b = _match(truth_boxes, truth_cls, d)
        tp, n_det, n_truth = tp + a, n_det + b, n_truth + len(truth_boxes)
    recall, precision = tp / n_truth, tp / max(1, n_det)
    assert recall >= 0.8, f"recall {recall:.3f} ({tp}/{n_truth})"
    assert precision >= 0.8, f"precision {precision:.3f} ({tp}/{n_det})"


def test_careful_onnx_int8_recipe_quantizes_only_convs_and_stays_close(tmp_path, generate):
    """``export_model.py --ort-recipe careful`` (``edgecv.training.export``) (how building-inspection-v1's model-int8.onnx is made):
    int8 appears only around convolutions, the heads' last convs and the decode stay float, and the int8
    graph's scores and boxes stay close to FP32's on an image it was not calibrated on."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from edgecv.training import export
    for folder, indices in (("calib", range(3, 6)), ("check", [6])):  # checked on an unseen image
        (tmp_path / folder / "images").mkdir(parents=True)
        for i in indices:
            _, jpeg, _, _, _, _ = generate.render_one("facades", TEST_SEED, i, 1280, 720)
            (tmp_path / folder / "images" / f"{i}.jpg").write_bytes(jpeg)
    pkg = load_package(MODELS / "building-inspection-v1")
    w, h = pkg.input.width, pkg.input.height
    calib = export.calibration_tensors(tmp_path / "calib", w, h, 10)
    assert len(calib) == 3
    fp32 = MODELS / "building-inspection-v1" / "model-fp32.onnx"
    out = tmp_path / "int8.onnx"
    export.onnx_int8(fp32, calib, out, recipe="careful")

    graph = onnx.load(str(out)).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {t: node for node in graph.node for t in node.output}
    weights = {init.name for init in graph.initializer}
    quantized_convs = 0
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in weights:
            # an activation is quantized only where a conv reads or writes it (ONNX Runtime also
            # quantizes a conv's output, through its Relu)
            dq_users = [u for q in consumers[node.output[0]] for u in consumers.get(q.output[0], [])]
            made_by = producers.get(node.input[0])
            assert any(u.op_type == "Conv" for u in dq_users) or (
                made_by is not None and made_by.op_type in ("Conv", "Relu")
            ), f"{node.input[0]} is quantized, but no conv reads or writes it"
            quantized_convs += sum(u.op_type == "Conv" for u in dq_users)
        if node.op_type == "DequantizeLinear" and node.input[0] not in weights:
            for user in consumers.get(node.output[0], []):
                assert not export.keep_float(user.name, True), f"{user.name} should see float inputs"
    assert quantized_convs > 20

    x = np.ascontiguousarray(export.calibration_tensors(tmp_path / "check", w, h, 1)[0])
    ref, got = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0][0]
        for p in (fp32, out)
    )
    scores_ref, scores_got = ref[4:].max(0), got[4:].max(0)
    keep = scores_ref > 0.25
    assert keep.sum() > 20
    diff = np.abs(scores_got - scores_ref)[keep]
    box = np.abs(got[:4, keep] - ref[:4, keep])
    # measured: median score change 0.007, 95th percentile 0.034; boxes 0.08 / 0.39 px
    assert np.median(diff) < 0.03 and np.percentile(diff, 95) < 0.1
    assert np.mean(scores_got[keep] > 0.25) >= 0.95
    assert np.median(box) < 0.5 and np.percentile(box, 95) < 2.0  # pixels at the network input

"""Detector end to end on real OpenVINO and ONNX Runtime with the tiny red-rectangle detector."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers.runtime import make_package, red_rectangle_image

from edgecv.errors import ModelPackageError
from edgecv.runtime.backends import choose_device
from edgecv.runtime.detector import Detector, resolve_weights
from edgecv.runtime.package import load_package, write_manifest


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return load_package(make_package(tmp_path_factory.mktemp("models"), with_ir=True))


@pytest.fixture(scope="module")
def onnx_detector(package):
    return Detector.open(package, backend="onnx")


@pytest.fixture(scope="module")
def ov_detector(package):
    return Detector.open(package, backend="openvino", inference_precision="f32")


# A non-square image (400×200 into a 128×96 letterboxed input, scale 0.32, 16 px bars top and bottom).
IMAGE_BOX = (50, 60, 150, 120)
TOLERANCE = 1 / 0.32 + 0.5  # one input pixel, in original pixels


def test_onnx_detector_maps_boxes_back_to_original_pixels(onnx_detector):
    det = onnx_detector.detect(red_rectangle_image(400, 200, IMAGE_BOX))
    assert (onnx_detector.backend, onnx_detector.precision, onnx_detector.device) == ("onnx", "fp32", "CPU")
    red = det[det.class_id == 0]
    assert red.confidence[0] == pytest.approx(0.9)
    np.testing.assert_allclose(red.xyxy[0], IMAGE_BOX, atol=TOLERANCE)


def test_detect_matches_fixed_anchors_after_nms(onnx_detector):
    det = onnx_detector.detect(red_rectangle_image(400, 200, IMAGE_BOX))
    # red rectangle (0.9) + fixed class-1 box (0.6) + same place class 0 (0.55); the shifted class-1 box
    # (0.5) is suppressed by NMS and the 0.1 anchor is under the threshold.
    assert det.confidence.tolist() == pytest.approx([0.9, 0.6, 0.55])
    assert det.class_id.tolist() == [0, 1, 0]
    # fixed box: input (15, 15, 25, 25) → x (15/0.32, 25/0.32), y ((15-16)/0.32 clipped to 0, (25-16)/0.32)
    np.testing.assert_allclose(det.xyxy[1], [46.875, 0.0, 78.125, 28.125], atol=1e-3)


def test_tall_image_and_no_red_gives_only_fixed_boxes(onnx_detector):
    tall = red_rectangle_image(150, 500, (20, 300, 90, 420))
    red = onnx_detector.detect(tall)
    red = red[red.confidence > 0.8]
    np.testing.assert_allclose(red.xyxy[0], [20, 300, 90, 420], atol=500 / 96 + 0.5)
    empty = onnx_detector.detect(np.full((200, 300, 3), 30, np.uint8))
    assert 0.9 not in empty.confidence.round(3).tolist()


def test_thresholds_can_be_overridden_per_call(onnx_detector):
    image = red_rectangle_image(400, 200, IMAGE_BOX)
    assert len(onnx_detector.detect(image, conf=0.58)) == 2
    assert len(onnx_detector.detect(image, conf=0.05, iou=0.99)) == 5
    assert len(onnx_detector.detect(image, max_detections=1)) == 1


def test_stages_are_callable_separately(onnx_detector):
    image = red_rectangle_image(400, 200, IMAGE_BOX)
    tensor, info = onnx_detector.preprocess(image)
    assert tensor.shape == (1, 3, 96, 128)
    raw = onnx_detector.infer(tensor)
    assert raw.shape == (1, 6, 5)
    det = onnx_detector.postprocess(raw, info, image.shape)
    np.testing.assert_allclose(det.xyxy, onnx_detector.detect(image).xyxy)


def test_openvino_and_onnxruntime_agree(onnx_detector, ov_detector):
    assert (ov_detector.backend, ov_detector.device) == ("openvino", "CPU")
    assert ov_detector.runtime.inference_precision == "f32"
    for w, h, box in [(400, 200, IMAGE_BOX), (640, 480, (100, 40, 400, 300)), (96, 300, (10, 10, 60, 250))]:
        image = red_rectangle_image(w, h, box)
        a, b = onnx_detector.detect(image), ov_detector.detect(image)
        assert a.class_id.tolist() == b.class_id.tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)


def test_openvino_default_precision_is_close_too(package, onnx_detector):
    default = Detector.open(package, backend="openvino")
    image = red_rectangle_image(400, 200, IMAGE_BOX)
    a, b = onnx_detector.detect(image), default.detect(image)
    assert a.class_id.tolist() == b.class_id.tolist()
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=TOLERANCE)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-2)


def test_an_isa_cap_below_bf16_compiles_in_f32(package, monkeypatch):
    """oneDNN capped at AVX2 (an operator's setting, or scripts/bench.py --isa avx2) cannot run the bf16
    OpenVINO picks on an AVX512_BF16 / AMX CPU: it gave empty outputs and every job failed."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = Detector.open(package, backend="openvino")
    assert capped.runtime.inference_precision == "f32"
    red = capped.detect(red_rectangle_image(400, 200, IMAGE_BOX))
    np.testing.assert_allclose(red.xyxy[0], IMAGE_BOX, atol=TOLERANCE)


def test_openvino_runs_onnx_weights_when_package_has_no_ir(tmp_path):
    package = load_package(make_package(tmp_path))
    name, weights = resolve_weights(package, "openvino")
    assert (name, weights.model_file) == ("openvino", "model.onnx")
    det = Detector.open(package, backend="openvino", inference_precision="f32")
    red = det.detect(red_rectangle_image(400, 200, IMAGE_BOX))
    np.testing.assert_allclose(red.xyxy[0], IMAGE_BOX, atol=TOLERANCE)


def test_auto_backend_uses_manifest_default(package):
    assert resolve_weights(package, "auto")[0] == "openvino"
    assert resolve_weights(package, "onnxruntime")[0] == "onnx"
    with pytest.raises(ModelPackageError, match="backend: expected auto, openvino, onnx, got 'tensorrt'"):
        resolve_weights(package, "tensorrt")
    with pytest.raises(ModelPackageError, match="no weights for onnx/int8; it has: openvino/fp32, onnx/fp32"):
        resolve_weights(package, "onnx", "int8")


def test_unavailable_device_falls_back_to_cpu_with_a_warning(package, caplog):
    with caplog.at_level(logging.WARNING, logger="edgecv.runtime.backends"):
        det = Detector.open(package, backend="openvino", device="NPU")
    assert det.device == "CPU"
    assert "device NPU was requested but is not available" in caplog.text
    assert "using CPU" in caplog.text


@pytest.mark.parametrize(
    ("requested", "available", "chosen"),
    [
        ("CPU", ["CPU"], "CPU"),
        ("gpu", ["CPU", "GPU.0", "GPU.1"], "GPU"),
        ("GPU.1", ["CPU", "GPU.0", "GPU.1"], "GPU.1"),
        ("NPU", ["CPU", "NPU"], "NPU"),
        ("NPU", ["CPU"], "CPU"),
        ("TPU", ["CPU", "GPU"], "CPU"),
        ("AUTO", ["CPU"], "CPU"),
        ("AUTO", ["CPU", "NPU", "GPU"], "AUTO:GPU,NPU,CPU"),
        ("AUTO", ["NPU", "CPU"], "AUTO:NPU,CPU"),
    ],
)
def test_choose_device(requested, available, chosen):
    assert choose_device(requested, available) == chosen


def test_auto_device_and_cache_dir(package, tmp_path):
    det = Detector.open(package, backend="openvino", device="AUTO", cache_dir=tmp_path / "cache")
    assert det.device == "CPU"
    det.detect(red_rectangle_image(400, 200, IMAGE_BOX))
    assert any((tmp_path / "cache").iterdir())


def test_bad_options_are_rejected(package):
    with pytest.raises(ValueError, match="performance_hint: expected one of LATENCY, THROUGHPUT"):
        Detector.open(package, backend="openvino", performance_hint="FAST")
    with pytest.raises(ValueError, match="inference_precision: expected one of"):
        Detector.open(package, backend="openvino", inference_precision="int4")
    assert Detector.open(package, backend="openvino", performance_hint="throughput").device == "CPU"


def test_manifest_that_does_not_match_the_model_is_refused(tmp_path):
    pkg = make_package(tmp_path)
    manifest = {**json.loads((pkg / "model.json").read_text()), "labels": ["a", "b", "c"]}
    write_manifest(pkg, manifest)
    with pytest.raises(
        ModelPackageError, match=r"output: expected shape \[1, 7, N\] \(4 \+ 3 labels\), got \[1, 6, 5\]"
    ):
        Detector.open(load_package(pkg), backend="onnx")
    manifest["labels"] = ["a", "b"]
    manifest["input"] = {**manifest["input"], "width": 640}
    write_manifest(pkg, manifest)
    with pytest.raises(
        ModelPackageError, match=r"input: expected shape \[1, 3, 96, 640\].*got \[1, 3, 96, 128\]"
    ):
        Detector.open(load_package(pkg), backend="openvino")


def test_detector_is_safe_to_share_between_threads(ov_detector):
    images = [red_rectangle_image(400, 200, (10 + i, 20, 100 + i, 150)) for i in range(16)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ov_detector.detect, images))
    for i, det in enumerate(results):
        np.testing.assert_allclose(det.xyxy[0], (10 + i, 20, 100 + i, 150), atol=TOLERANCE)


# Two threads making the process's first OpenVINO inferences at once (backlog lanes after a restart):
# the first one to reach numpy's one-time set-up inside the bindings is paused there (a trace function
# sleeps on numpy's version check, which that set-up runs), so the second always arrives while it is
# under way. Without the set-up done when the model is opened, the second thread blocks on the bindings'
# static guard holding the GIL and the first never gets the GIL back: the process hangs for good.
_FIRST_INFER_RACE = """
import sys, threading, time
import numpy as np
from edgecv.runtime.detector import Detector
from edgecv.runtime.package import load_package

package = load_package(sys.argv[1])
lanes = [Detector.open(package, backend="openvino", num_threads=1, cpu_pinning=False) for _ in range(2)]
image = np.zeros((96, 128, 3), np.uint8)
paused = threading.Event()

def pause_in_numpy_setup(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.replace("\\\\", "/").endswith("numpy/lib/_version.py"):
        if not paused.is_set():
            paused.set()
            time.sleep(1.0)  # the GIL is free now; the other lane runs
    return None

def first(detector):
    sys.settrace(pause_in_numpy_setup)
    detector.detect(image)

one = threading.Thread(target=first, args=(lanes[0],), daemon=True)
one.start()
paused.wait(5)
two = threading.Thread(target=lanes[1].detect, args=(image,), daemon=True)
two.start()
one.join(30)
two.join(30)
print("both lanes done" if not (one.is_alive() or two.is_alive()) else "lanes stuck")
"""


@pytest.mark.process
def test_first_inferences_on_two_threads_at_once_do_not_deadlock(tmp_path):
    import subprocess
    import sys

    pkg = make_package(tmp_path / "models", with_ir=True)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FIRST_INFER_RACE, str(pkg)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("two threads' first OpenVINO inferences deadlocked the process (GIL + static guard)")
    assert done.returncode == 0, done.stderr
    assert "both lanes done" in done.stdout

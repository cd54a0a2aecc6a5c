"""Letterbox geometry and the Ultralytics decoder (pure functions, no runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.detections import box_iou
from edgecv.errors import InferenceError
from edgecv.runtime.decode import decode, predictions
from edgecv.runtime.package import InputSpec
from edgecv.runtime.preprocess import LetterboxInfo, letterbox, to_tensor

IDENTITY = LetterboxInfo(1.0, 1.0, 0.0, 0.0)


def _raw(rows: list[list[float]]) -> np.ndarray:
    """``[1, 4+nc, N]`` from per-anchor rows ``cx, cy, w, h, s0, s1, ...``."""
    return np.asarray(rows, np.float32).T[None]


def _decode(raw, info=IDENTITY, shape=(1000, 1000), **kw):
    args = {"conf": 0.25, "iou": 0.5, "max_detections": 300} | kw
    return decode(raw, info, shape, **args)


@pytest.mark.parametrize(("w", "h"), [(400, 200), (200, 400), (640, 480), (128, 96), (37, 501)])
def test_letterbox_round_trip_maps_input_pixels_back_to_original(w, h):
    image = np.zeros((h, w, 3), np.uint8)
    boxed, info = letterbox(image, 128, 96)
    assert boxed.shape == (96, 128, 3)
    assert info.scale_x == pytest.approx(info.scale_y, rel=0.05)
    original = np.array([[0, 0, w, h], [w * 0.25, h * 0.5, w * 0.75, h]], np.float32)
    in_input = original.copy()
    in_input[:, [0, 2]] = original[:, [0, 2]] * info.scale_x + info.pad_x
    in_input[:, [1, 3]] = original[:, [1, 3]] * info.scale_y + info.pad_y
    assert (
        in_input.min() >= -1e-3 and in_input[:, 2].max() <= 128 + 1e-3 and in_input[:, 3].max() <= 96 + 1e-3
    )
    np.testing.assert_allclose(info.to_original(in_input), original, atol=1e-3)


def test_letterbox_pads_symmetrically_with_pad_value():
    image = np.full((100, 200, 3), 7, np.uint8)
    boxed, info = letterbox(image, 100, 100, pad_value=114)
    assert (info.pad_x, info.pad_y, info.scale_x) == (0.0, 25.0, 0.5)
    assert (boxed[:25] == 114).all() and (boxed[75:] == 114).all() and (boxed[25:75] == 7).all()


def test_to_tensor_channel_order_scale_and_layout():
    image = np.zeros((20, 20, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    rgb = to_tensor(image, InputSpec(20, 20, color="RGB", scale=255.0))[0]
    assert rgb.shape == (1, 3, 20, 20) and rgb.dtype == np.float32 and rgb.flags["C_CONTIGUOUS"]
    assert rgb[0, 0].min() == 1.0 and rgb[0, 2].max() == 0.0
    bgr = to_tensor(image, InputSpec(20, 20, color="BGR", scale=1.0))[0]
    assert bgr[0, 2].min() == 255.0
    nhwc = to_tensor(image, InputSpec(20, 20, layout="NHWC"))[0]
    assert nhwc.shape == (1, 20, 20, 3) and nhwc[0, 0, 0, 0] == 1.0 and nhwc.flags["C_CONTIGUOUS"]


def test_to_tensor_accepts_grey_and_bgra_and_stretch():
    spec = InputSpec(32, 16, letterbox=False)
    grey_tensor, info = to_tensor(np.full((40, 40), 255, np.uint8), spec)
    assert grey_tensor.shape == (1, 3, 16, 32) and grey_tensor.min() == 1.0
    assert (info.scale_x, info.scale_y, info.pad_x, info.pad_y) == (0.8, 0.4, 0.0, 0.0)
    assert to_tensor(np.zeros((8, 8, 4), np.uint8), spec)[0].shape == (1, 3, 16, 32)


def test_decode_converts_cxcywh_filters_confidence_and_sorts():
    raw = _raw([[50, 50, 20, 10, 0.3, 0.1], [200, 100, 40, 40, 0.05, 0.9], [10, 10, 4, 4, 0.2, 0.1]])
    det = _decode(raw)
    assert len(det) == 2
    np.testing.assert_allclose(det.xyxy, [[180, 80, 220, 120], [40, 45, 60, 55]])
    np.testing.assert_allclose(det.confidence, [0.9, 0.3])
    assert det.class_id.tolist() == [1, 0]


def test_nms_suppresses_same_class_overlaps_but_keeps_other_classes():
    raw = _raw(
        [
            [100, 100, 50, 50, 0.9, 0.0],
            [102, 101, 50, 50, 0.8, 0.0],  # same class, IoU ~0.9: suppressed
            [101, 100, 50, 50, 0.0, 0.7],  # other class, same place: kept
            [300, 300, 50, 50, 0.6, 0.0],  # same class, far away: kept
        ]
    )
    det = _decode(raw)
    assert det.confidence.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert det.class_id.tolist() == [0, 1, 0]
    agnostic = _decode(raw, agnostic=True)
    assert agnostic.confidence.tolist() == pytest.approx([0.9, 0.6])


def test_decode_undoes_letterbox_and_clips_to_image():
    info = LetterboxInfo(0.5, 0.5, 0.0, 25.0)
    raw = _raw([[50, 50, 20, 20, 0.9, 0.0], [5, 30, 20, 20, 0.8, 0.0]])
    det = _decode(raw, info, shape=(100, 200, 3))
    np.testing.assert_allclose(det.xyxy, [[80, 30, 120, 70], [0, 0, 30, 30]])


def test_decode_caps_at_max_detections_and_handles_dense_output():
    rng = np.random.default_rng(0)
    n, nc = 8400, 80
    rows = np.zeros((n, 4 + nc), np.float32)
    grid = np.stack(np.meshgrid(np.arange(120), np.arange(70)), -1).reshape(-1, 2)[:n]
    rows[:, :2] = grid * 10 + 5
    rows[:, 2:4] = 8
    rows[np.arange(n), 4 + rng.integers(0, nc, n)] = rng.uniform(0.3, 1.0, n)
    det = _decode(rows.T[None], shape=(800, 1300), max_detections=500)
    assert len(det) == 500
    assert np.all(np.diff(det.confidence) <= 0)
    assert len(_decode(rows.T[None], shape=(800, 1300), max_detections=10000)) == n


def test_decode_empty_and_transposed_and_bad_shapes():
    assert len(_decode(_raw([[10, 10, 5, 5, 0.1, 0.2]]))) == 0
    transposed = np.asarray([[50, 50, 20, 10, 0.3, 0.1]], np.float32)[None]  # [1, N, 4+nc]
    assert len(_decode(transposed, num_classes=2)) == 1
    with pytest.raises(InferenceError, match=r"expected shape \[1, 7, N\] for 3 labels, got \[1, 6, 1\]"):
        predictions(_raw([[1, 1, 1, 1, 1, 1]]), num_classes=3)
    with pytest.raises(InferenceError, match=r"expected shape \[1, 4\+nc, N\], got \[2, 6, 1\]"):
        predictions(np.zeros((2, 6, 1)))


def test_box_iou_pairs_and_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [5, 5, 5, 5]], float)
    assert box_iou(a, b) == pytest.approx([1.0, 50 / 150, 0.0])  # an empty pair has no union: 0
    m = box_iou(a[:2, None], b[None, :2])
    assert m.shape == (2, 2) and m == pytest.approx(np.array([[1.0, 1 / 3], [1.0, 1 / 3]]))
    assert box_iou(np.array([[0, 0, 1, 1]]), np.array([[2, 2, 3, 3]])) == pytest.approx([0.0])

"""Tiny, honest ONNX detectors for runtime tests, built with ``onnx.helper``.

``rect_detector`` finds the bounding box of every pixel whose first input channel is above 0.5 (a bright
red rectangle on a dark image, once BGR→RGB and /255 are applied), so preprocessing matters end to end.
Its output follows the Ultralytics contract ``[1, 4+nc, N]`` (``nc`` = 2):

- anchor 0: the red rectangle (``cx, cy, w, h`` in input pixels), class 0, score 0.9 when present;
- anchor 1: a fixed box (cx 20, cy 20, 10×10), class 1, score 0.6;
- anchor 2: the same box shifted by one pixel, class 1, score 0.5 (NMS must drop it);
- anchor 3: the same box again, class 0, score 0.55 (different class: NMS keeps it);
- anchor 4: a box scored 0.1 (below every threshold).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecv.runtime.package import write_manifest

LABELS = ["red-thing", "fixed-thing"]
FIXED_ANCHORS = np.array(
    [
        # cx,  cy,   w,    h,   s0,   s1
        [20.0, 20.0, 10.0, 10.0, 0.0, 0.6],
        [21.0, 20.0, 10.0, 10.0, 0.0, 0.5],
        [20.0, 20.0, 10.0, 10.0, 0.55, 0.0],
        [40.0, 40.0, 8.0, 8.0, 0.1, 0.05],
    ],
    dtype=np.float32,
).T[None]  # [1, 6, 4]


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def rect_detector(width: int = 128, height: int = 96, *, metadata: dict | None = None) -> onnx.ModelProto:
    """The red-rectangle detector for a ``[1, 3, height, width]`` input."""
    big = 1e4
    xs = np.broadcast_to(np.arange(width, dtype=np.float32), (1, height, width))
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (1, height, width))
    inits = [
        _const("xgrid", xs),
        _const("ygrid", ys),
        _const("half", 0.5),
        _const("one", 1.0),
        _const("big", big),
        _const("score", 0.9),
        _const("zero1", np.zeros(1)),
        _const("fixed", FIXED_ANCHORS),
        numpy_helper.from_array(np.array(0, np.int64), "c0"),
        numpy_helper.from_array(np.array([1, 6, 1], np.int64), "col_shape"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["images", "c0"], ["chan"], axis=1),  # [1, H, W]
        n("Greater", ["chan", "half"], ["maskb"]),
        n("Cast", ["maskb"], ["mask"], to=TensorProto.FLOAT),
        n("Sub", ["mask", "one"], ["notmask_neg"]),  # 0 inside, -1 outside
        n("Mul", ["notmask_neg", "big"], ["penalty"]),
        n("ReduceMax", ["mask"], ["any"], keepdims=0),
    ]
    for axis, grid in (("x", "xgrid"), ("y", "ygrid")):
        nodes += [
            n("Mul", ["mask", grid], [f"{axis}_in"]),
            n("ReduceMax", [f"{axis}_in"], [f"{axis}max"], keepdims=0),
            n("Neg", [f"{axis}_in"], [f"{axis}_neg"]),
            n("Add", [f"{axis}_neg", "penalty"], [f"{axis}_negp"]),
            n("ReduceMax", [f"{axis}_negp"], [f"{axis}min_neg"], keepdims=0),
            n("Neg", [f"{axis}min_neg"], [f"{axis}min"]),
            n("Add", [f"{axis}min", f"{axis}max"], [f"{axis}sum"]),
            n("Add", [f"{axis}sum", "one"], [f"{axis}sum1"]),
            n("Mul", [f"{axis}sum1", "half"], [f"c{axis}_raw"]),
            n("Sub", [f"{axis}max", f"{axis}min"], [f"{axis}span"]),
            n("Add", [f"{axis}span", "one"], [f"{axis}len_raw"]),
            # Zero the box when nothing is bright, so an empty image gives a clean zero row.
            n("Mul", [f"c{axis}_raw", "any"], [f"c{axis}"]),
            n("Mul", [f"{axis}len_raw", "any"], [f"{axis}len"]),
        ]
    nodes.append(n("Mul", ["any", "score"], ["s0"]))
    parts = ["cx", "cy", "xlen", "ylen", "s0"]
    for p in parts:
        nodes.append(n("Unsqueeze", [p, "ax0"], [f"{p}_1"]))
    nodes += [
        n("Concat", [f"{p}_1" for p in parts] + ["zero1"], ["col"], axis=0),
        n("Reshape", ["col", "col_shape"], ["col3"]),
        n("Concat", ["col3", "fixed"], ["output0"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "rect_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 5])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgecv-tests"
    )
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    return model


def base_manifest(name: str, width: int = 128, height: int = 96, **extra) -> dict:
    manifest = {
        "name": name,
        "version": "1.0.0",
        "description": "test detector",
        "useCase": "tests",
        "task": "detect",
        "pipeline": "generic",
        "input": {
            "width": width,
            "height": height,
            "color": "RGB",
            "layout": "NCHW",
            "scale": 255.0,
            "letterbox": True,
            "padValue": 114,
        },
        "labels": list(LABELS),
        "thresholds": {"confidence": 0.25, "iou": 0.5, "maxDetections": 100},
        "weights": [{"backend": "onnx", "precision": "fp32", "files": ["model.onnx"]}],
        "default": {"backend": "onnx", "precision": "fp32"},
        "evaluation": {"mAP50": 1.0},
    }
    manifest.update(extra)
    return manifest


def make_package(root: Path, name: str = "rect", *, with_ir: bool = False, **manifest_extra) -> Path:
    """Write a package folder ``root/name`` with ONNX weights (and an FP32 OpenVINO IR if asked)."""
    pkg = root / name
    pkg.mkdir(parents=True)
    manifest = base_manifest(name, **manifest_extra)
    onnx.save(rect_detector(manifest["input"]["width"], manifest["input"]["height"]), pkg / "model.onnx")
    if with_ir:
        import openvino as ov

        (pkg / "openvino-fp32").mkdir()
        ov.save_model(
            ov.convert_model(pkg / "model.onnx"), pkg / "openvino-fp32" / "model.xml", compress_to_fp16=False
        )
        manifest["weights"].insert(
            0,
            {
                "backend": "openvino",
                "precision": "fp32",
                "files": ["openvino-fp32/model.xml", "openvino-fp32/model.bin"],
            },
        )
        manifest["default"] = {"backend": "openvino", "precision": "fp32"}
    write_manifest(pkg, manifest)
    return pkg


def read_manifest_json(pkg: Path) -> dict:
    return json.loads((pkg / "model.json").read_text())


def red_rectangle_image(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A dark BGR image with a pure red (BGR 0,0,255) rectangle at ``box`` = x1, y1, x2, y2 (exclusive)."""
    image = np.full((height, width, 3), 30, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = (0, 0, 255)
    return image


def acceptance_images(folder: Path) -> list[Path]:
    """Three PNGs of red rectangles (what ``rect_detector`` finds) in ``folder``: a bundle's acceptance set."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, box in enumerate([(10, 10, 60, 50), (40, 20, 120, 90), (5, 30, 30, 80)]):
        ok, data = cv2.imencode(".png", red_rectangle_image(160, 120, box))
        (folder / f"{i}.png").write_bytes(data.tobytes())
    return sorted(folder.iterdir())

#!/usr/bin/env python3
"""Export a trained EdgeDet checkpoint to a complete edgecv model package.

    python scripts/export_model.py runs/shelf/model.pt --calib CALIBDIR --name shelf-detection-v2 \
        --version 2.0.0 --pipeline shelf --out models/shelf-detection-v2

Writes, inside the package folder:
  model-fp32.onnx            torch.onnx.export, opset 17, static [1,3,H,W] input, output [1,4+nc,N]
  openvino-fp32/model.xml    ov.convert_model + ov.save_model(compress_to_fp16=False)
  openvino-int8/model.xml    NNCF post-training quantization (MIXED preset) on CALIBDIR images
  model-int8.onnx            ONNX Runtime static QDQ quantization (per-channel S8 weights, U8 activations;
                             `--ort-recipe careful`: convs only, percentile ranges, head convs in float)
  model.json                 manifest with sha256 of every file (edgecv.runtime.package.write_manifest)
The decode subgraph (DFL softmax, anchors, sigmoid, concat) stays in float in both INT8 models: boxes
in pixels and scores in 0..1 cannot share one 8-bit scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

log = logging.getLogger("export")

DECODE_PATTERN = "/decode/"
# the last 1x1 conv of every head (DFL logits, class logits): cheap, and the most precision-sensitive
HEAD_OUT_RE = re.compile(r"/model/head/(box|cls)\.\d/(box|cls)\.\d\.2/")


def keep_float(name: str, fp_head: bool) -> bool:
    """Nodes left out of INT8 quantization: the decode subgraph, and the head outputs with ``fp_head``."""
    return DECODE_PATTERN in name or (fp_head and HEAD_OUT_RE.search(name) is not None)


def export_onnx(model, width: int, height: int, path: Path, names: list[str]) -> None:
    import onnx
    import torch
    from train.model import ExportWrapper

    wrapper = ExportWrapper(model.float().eval(), height, width).eval()
    x = torch.zeros(1, 3, height, width)
    torch.onnx.export(
        wrapper,
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=["output0"],
        do_constant_folding=True,
    )
    m = onnx.load(str(path))
    meta = {
        "names": str(dict(enumerate(names))),
        "imgsz": str([height, width]),
        "task": "detect",
        "stride": "32",
        "author": "edgecv",
        "description": "EdgeDet (edgecv scripts/train)",
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    with torch.no_grad():
        ref = wrapper(torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)))
    log.info("ONNX %s: output %s", path, list(ref.shape))


def calibration_tensors(calib_dir: Path, width: int, height: int, limit: int) -> list[np.ndarray]:
    import cv2

    from edgecv.runtime.package import InputSpec
    from edgecv.runtime.preprocess import to_tensor

    spec = InputSpec(width=width, height=height)
    paths = sorted(
        p for p in (Path(calib_dir) / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    tensors = []
    for p in paths[:limit]:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        tensors.append(to_tensor(img, spec)[0])
    if not tensors:
        raise FileNotFoundError(f"{calib_dir}/images: no calibration images")
    return tensors


def openvino_fp32(onnx_path: Path, out_xml: Path):
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    return model


def openvino_int8(
    fp32_xml: Path, calib: list[np.ndarray], out_xml: Path, fp_head: bool = False, act_range: str = "default"
) -> None:
    """NNCF PTQ. ``act_range="minmax"`` sets activation ranges from the absolute min/max over the
    calibration set (as ONNX Runtime's MinMax does) instead of NNCF's default averaged statistics: it
    recovered 2 of the 2.6 mAP50-95 points damage-assessment-v1 lost to INT8."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    model = ov.Core().read_model(str(fp32_xml))
    float_ops = [
        op.get_friendly_name() for op in model.get_ops() if keep_float(op.get_friendly_name(), fp_head)
    ]
    q = nncf.quantize(
        model,
        nncf.Dataset(calib),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calib),
        ignored_scope=nncf.IgnoredScope(names=float_ops, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        )
        if act_range == "minmax"
        else None,
    )
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out_xml), compress_to_fp16=False)


def onnx_int8(
    onnx_path: Path, calib: list[np.ndarray], out_path: Path, fp_head: bool = False, recipe: str = "minmax"
) -> None:
    """ONNX Runtime static QDQ quantization (per-channel int8 weights, uint8 activations).

    ``recipe="minmax"`` quantizes every op ONNX Runtime can, with activation ranges from the calibration
    set's min/max. ``recipe="careful"`` quantizes only the convolutions, takes activation ranges at the
    0.001/99.999 percentiles and keeps the heads' last convs in float: on building-inspection-v1 1.3.0
    ``minmax`` lost 13 mAP50-95 points against FP32 and ``careful`` 0.25 (docs/training.md).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            t = next(self.it, None)
            return None if t is None else {"images": t}

    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
    careful = recipe == "careful"
    exclude = [n.name for n in onnx.load(str(pre)).graph.node if keep_float(n.name, fp_head or careful)]
    quantize_static(
        str(pre),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        op_types_to_quantize=["Conv"] if careful else None,
        calibrate_method=CalibrationMethod.Percentile if careful else CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )
    pre.unlink(missing_ok=True)


SYNTHETIC_ONLY = "synthetic images only (scripts/generate.py)"


def write_package(
    pkg: Path,
    *,
    name: str,
    version: str,
    description: str,
    use_case: str,
    pipeline: str,
    width: int,
    height: int,
    labels: list[str],
    conf: float,
    iou: float,
    training_data: str = SYNTHETIC_ONLY,
    max_det: int,
    evaluation: dict | None = None,
) -> None:
    from edgecv.runtime.package import write_manifest

    manifest = {
        "name": name,
        "version": version,
        "description": description,
        "useCase": use_case,
        "task": "detect",
        "pipeline": pipeline,
        "input": {
            "width": width,
            "height": height,
            "color": "RGB",
            "layout": "NCHW",
            "scale": 255.0,
            "letterbox": True,
            "padValue": 114,
        },
        "labels": labels,
        "thresholds": {"confidence": conf, "iou": iou, "maxDetections": max_det},
        "weights": [
            {
                "backend": "openvino",
                "precision": "int8",
                "files": ["openvino-int8/model.xml", "openvino-int8/model.bin"],
            },
            {
                "backend": "openvino",
                "precision": "fp32",
                "files": ["openvino-fp32/model.xml", "openvino-fp32/model.bin"],
            },
            {"backend": "onnx", "precision": "int8", "files": ["model-int8.onnx"]},
            {"backend": "onnx", "precision": "fp32", "files": ["model-fp32.onnx"]},
        ],
        "default": {"backend": "openvino", "precision": "int8"},
        "evaluation": evaluation or {},
        "training": {
            "architecture": "EdgeDet (edgecv scripts/train), anchor-free, DFL, strides 8/16/32",
            "data": training_data,
        },
    }
    write_manifest(pkg, manifest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument(
        "--calib", required=True, help="folder with images/ for INT8 calibration (not the eval split)"
    )
    ap.add_argument("--calib-count", type=int, default=200)
    ap.add_argument("--out", required=True, help="package folder, e.g. models/shelf-detection-v2")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--description", default="")
    ap.add_argument(
        "--training-data",
        default=SYNTHETIC_ONLY,
        help="what the model was trained on (model.json training.data)",
    )
    ap.add_argument("--use-case", default="")
    ap.add_argument("--pipeline", default="generic")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument(
        "--fp-head", action="store_true", help="keep the heads' last 1x1 convs in float (INT8 accuracy)"
    )
    ap.add_argument(
        "--act-range",
        choices=["default", "minmax"],
        default="default",
        help="NNCF activation ranges: NNCF's default estimator, or absolute min/max over the calibration set",
    )
    ap.add_argument(
        "--ort-recipe",
        choices=["minmax", "careful"],
        default="minmax",
        help="ONNX Runtime INT8: every op with min/max ranges, or convs only with percentile ranges and "
        "the heads' last convs in float (use when model-int8.onnx loses much more than OpenVINO INT8)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from train.train import load_checkpoint

    model, ck = load_checkpoint(a.checkpoint)
    w, h, names = ck["width"], ck["height"], ck["names"]
    pkg = Path(a.out)
    pkg.mkdir(parents=True, exist_ok=True)
    export_onnx(model, w, h, pkg / "model-fp32.onnx", names)
    openvino_fp32(pkg / "model-fp32.onnx", pkg / "openvino-fp32" / "model.xml")
    calib = calibration_tensors(Path(a.calib), w, h, a.calib_count)
    log.info("calibrating on %d images from %s", len(calib), a.calib)
    openvino_int8(
        pkg / "openvino-fp32" / "model.xml",
        calib,
        pkg / "openvino-int8" / "model.xml",
        a.fp_head,
        a.act_range,
    )
    onnx_int8(pkg / "model-fp32.onnx", calib, pkg / "model-int8.onnx", a.fp_head, a.ort_recipe)
    old = {}
    if (pkg / "model.json").is_file():
        old = json.loads((pkg / "model.json").read_text()).get("evaluation", {})
    write_package(
        pkg,
        name=a.name,
        version=a.version,
        description=a.description,
        use_case=a.use_case,
        pipeline=a.pipeline,
        width=w,
        height=h,
        labels=names,
        conf=a.conf,
        iou=a.iou,
        max_det=a.max_det,
        evaluation=old,
        training_data=a.training_data,
    )
    for f in sorted(pkg.rglob("*")):
        if f.is_file():
            log.info("%10.1f KB  %s", f.stat().st_size / 1024, f.relative_to(pkg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

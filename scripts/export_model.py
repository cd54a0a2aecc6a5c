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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

log = logging.getLogger("export")

from edgecv.training.export import (  # noqa: E402
    SYNTHETIC_ONLY,
    calibration_tensors,
    export_onnx,
    onnx_int8,
    openvino_fp32,
    openvino_int8,
    write_package,
)


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

    from edgecv.training.loop import load_checkpoint

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

"""Export a trained EdgeDet to a model package: ONNX, OpenVINO FP32 and INT8 (NNCF), ONNX Runtime INT8.

Used by ``edgecv models train`` and ``scripts/export_model.py``. The files, inside the package folder:

  model-fp32.onnx            torch.onnx.export, opset 17, static [1,3,H,W] input, output [1,4+nc,N]
  openvino-fp32/model.xml    ov.convert_model + ov.save_model(compress_to_fp16=False)
  openvino-int8/model.xml    NNCF post-training quantization (MIXED preset) on calibration images
  model-int8.onnx            ONNX Runtime static QDQ quantization (per-channel S8 weights, U8 activations;
                             ``recipe="careful"``: convs only, percentile ranges, head convs in float)
  model.json                 manifest with sha256 of every file (edgecv.runtime.package.write_manifest)

The decode subgraph (DFL softmax, anchors, sigmoid, concat) stays in float in both INT8 models: boxes
in pixels and scores in 0..1 cannot share one 8-bit scale.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DECODE_PATTERN = "/decode/"
# the last 1x1 conv of every head (DFL logits, class logits): cheap, and the most precision-sensitive
HEAD_OUT_RE = re.compile(r"/model/head/(box|cls)\.\d/(box|cls)\.\d\.2/")


def keep_float(name: str, fp_head: bool) -> bool:
    """Nodes left out of INT8 quantization: the decode subgraph, and the head outputs with ``fp_head``."""
    return DECODE_PATTERN in name or (fp_head and HEAD_OUT_RE.search(name) is not None)


def export_onnx(model, width: int, height: int, path: Path, names: list[str]) -> None:
    import onnx
    import torch

    from edgecv.training.model import ExportWrapper

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
        "description": "EdgeDet (edgecv.training)",
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
    """Input tensors of the first ``limit`` images of ``calib_dir/images`` (as the runtime letterboxes)."""
    paths = sorted(
        p for p in (Path(calib_dir) / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    if not paths:
        raise FileNotFoundError(f"{calib_dir}/images: no calibration images")
    return image_tensors(paths[:limit], width, height)


def image_tensors(paths: list[Path], width: int, height: int) -> list[np.ndarray]:
    """The network input of each image, made exactly as the runtime makes it (``to_tensor``)."""
    from edgecv.imageio import decode_file
    from edgecv.runtime.package import InputSpec
    from edgecv.runtime.preprocess import to_tensor

    spec = InputSpec(width=width, height=height)
    return [to_tensor(decode_file(p), spec)[0] for p in paths]


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
    onnx_path: Path,
    calib: list[np.ndarray],
    out_path: Path,
    fp_head: bool = False,
    recipe: str = "minmax",
    chunk: int | None = None,
) -> None:
    """ONNX Runtime static QDQ quantization (per-channel int8 weights, uint8 activations).

    ``recipe="minmax"`` quantizes every op ONNX Runtime can, with activation ranges from the calibration
    set's min/max. ``recipe="careful"`` quantizes only the convolutions, takes activation ranges at the
    0.001/99.999 percentiles and keeps the heads' last convs in float: on building-inspection-v1 1.3.0
    ``minmax`` lost 13 mAP50-95 points against FP32 and ``careful`` 0.25 (docs/training.md).

    ``chunk``: calibrate in slices of at most that many images (ONNX Runtime's ``CalibStridedMinMax``,
    which every calibrator honours): the percentile calibrator otherwise keeps every activation of every
    image in memory at once (about 75 MB per 640x384 image for EdgeDet-n: 15.9 GB for 200 images).
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

        def __len__(self):
            return len(calib)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.it = iter(calib[start_index:end_index])

        def get_next(self):
            t = next(self.it, None)
            return None if t is None else {"images": t}

    stride = None
    if chunk:  # the largest slice size <= chunk that divides the set (ONNX Runtime requires it)
        stride = next(k for k in range(min(chunk, len(calib)), 0, -1) if len(calib) % k == 0)

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
        extra_options={
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
            **({"CalibStridedMinMax": stride} if stride else {}),
        },
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
            "architecture": "EdgeDet (edgecv.training), anchor-free, DFL, strides 8/16/32",
            "data": training_data,
        },
    }
    write_manifest(pkg, manifest)

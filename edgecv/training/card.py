"""MODEL_CARD.md for a package trained by ``edgecv models train``: what it detects, what it was trained on
and from, how it scores on the validation split (INT8 and FP32, per class) and what that does not say."""

from __future__ import annotations

from edgecv.training.dataset import DatasetCheck


def model_card(report: dict, check: DatasetCheck, request, described: dict) -> str:
    int8, fp32, ort = report["int8"], report["fp32"], report["onnxInt8"]
    t = report["training"]
    lines = [
        f"# {described['name']} {described['version']}",
        "",
        f"Custom detector trained with `edgecv models train` on {check.root} ({check.format}).",
        "",
        f"- **Classes ({len(described['labels'])}):** {', '.join(described['labels'])}",
        f"- **Input:** {described['width']}×{described['height']} RGB, letterboxed (pad 114)",
        f"- **Network:** EdgeDet-n (edgecv.training), started from `{request.base}`"
        + (" (backbone, neck and box heads; new class head)" if request.base != "scratch" else ""),
        f"- **Training:** {len(check.train)} images, {t['step']} steps in {t['train_minutes']} min "
        f"(time-budgeted schedule, {request.threads} thread(s)); validation split: {len(check.val)} images "
        f"({'given by the dataset' if check.split_given else 'every 5th image by name hash'})",
        f"- **INT8:** NNCF (OpenVINO) and ONNX Runtime, calibrated on {min(len(check.train), 200)} of the "
        "training images",
        "",
        "## Validation",
        "",
        "| weights | mAP50 | mAP50-95 |",
        "|---|---|---|",
        f"| OpenVINO INT8 (default) | {int8['mAP50']:.3f} | {int8['mAP50_95']:.3f} |",
        f"| OpenVINO FP32 (f32) | {fp32['mAP50']:.3f} | {fp32['mAP50_95']:.3f} |",
        f"| ONNX Runtime INT8 (`model-int8.onnx`) | {ort['mAP50']:.3f} | {ort['mAP50_95']:.3f} |",
        "",
        f"INT8 loss against FP32: {report['int8LossMAP50_95Points']:.2f} mAP50-95 points (OpenVINO), "
        f"{report['onnxInt8LossMAP50_95Points']:.2f} (ONNX Runtime).",
        "",
        "| class | boxes (all data) | INT8 AP50 | INT8 AP50-95 |",
        "|---|---|---|---|",
    ]
    counts = check.per_class()
    for name in described["labels"]:
        ap = int8["perClass"].get(name)
        cells = f"{ap['AP50']:.3f} | {ap['AP50_95']:.3f}" if ap else "– | –"
        lines.append(f"| {name} | {counts.get(name, (0, 0))[1]} | {cells} |")
    lines += [
        "",
        "## Limits",
        "",
        f"- The figures come from {len(check.val)} validation images drawn from the same folder as the "
        "training images: they say how well the model learnt *this* data, not how it does on photos from "
        "another site, camera or season. Evaluate it on new photos with `edgecv models eval`.",
        "- Objects much smaller than 8 px at the input size are hard for it; a larger `--imgsz` helps and "
        "costs time quadratically.",
        "",
    ]
    return "\n".join(lines)

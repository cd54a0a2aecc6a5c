"""``edgecv export --flagged|--hard --format yolo|coco DIR``: kept images with their results as pre-labels.

The images kept for labelling (:mod:`edgecv.hard_images`) are written with their job's detections as
pre-labels, in a layout the usual labelling tools import:

- **YOLO** (Ultralytics, CVAT, Label Studio): ``images/<observation id>.<ext>``, ``labels/<same>.txt``
  (``class cx cy w h``, normalised to the image, one line per detection; an empty file for an image
  without detections) and ``data.yaml`` (``path``, ``train``, ``val``, ``names``);
- **COCO**: ``images/…`` and ``annotations.json`` (``images``, ``annotations`` with ``bbox`` ``[x, y, w, h]``
  in pixels and the model's ``score``, ``categories``).

Both also get ``edgecv-export.json``: per image the job id, model and version, why it was kept and the
detail. Class names are the results' ``objectName`` values, sorted. Boxes are in the pixels of the image
after EXIF orientation, as jobs report them; the image bytes are written as they arrived (labelling tools
apply the EXIF orientation too). Running the export again into the same folder rewrites the same files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from edgecv.errors import ExportError
from edgecv.store import Store
from edgecv.store import hard_images as sql

FORMATS = ("yolo", "coco")
HARD = ["low_confidence", "out_of_domain", "price_mismatch"]


def export_kept(
    store: Store, data_dir: Path, out_dir: Path, *, reasons: list[str], fmt: str
) -> dict[str, Any]:
    """Write the kept images with ``reasons`` into ``out_dir`` in ``fmt``; returns what was written."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected yolo or coco")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file; give a folder to export into")
    items = sql.listed(store, reasons)
    rows, missing = [], []
    for kept, job, obs in items:
        source = Path(data_dir) / kept.path
        if not source.is_file():
            missing.append(job.id)
            continue
        rows.append((kept, job, obs, source))
    names = sorted({str(d.get("objectName")) for _, job, _, _ in rows for d in _detections(job.result)})
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    manifest = []
    for kept, job, obs, source in rows:
        file_name = f"{obs.id}{source.suffix.lower()}"
        _copy(source, out_dir / "images" / file_name)
        manifest.append(
            {
                "image": f"images/{file_name}",
                "jobId": job.id,
                "model": job.model,
                "modelVersion": job.model_version,
                "reason": kept.reason,
                "detail": kept.detail,
                "keptAt": kept.kept_at,
                "originalName": obs.original_name,
            }
        )
    if fmt == "yolo":
        _write_yolo(out_dir, rows, names)
    else:
        _write_coco(out_dir, rows, names)
    _write_json(out_dir / "edgecv-export.json", {"format": fmt, "reasons": reasons, "images": manifest})
    return {
        "format": fmt,
        "folder": str(out_dir),
        "images": len(rows),
        "boxes": sum(len(_detections(job.result)) for _, job, _, _ in rows),
        "classes": names,
        "missing": missing,
    }


def _detections(result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, dict):
        return []
    return [
        d
        for d in result.get("detections") or []
        if isinstance(d, dict) and isinstance(d.get("boundingBox"), dict)
    ]


def _box(d: dict[str, Any]) -> tuple[float, float, float, float]:
    b = d["boundingBox"]
    return float(b["x"]), float(b["y"]), float(b["width"]), float(b["height"])


def _write_yolo(out_dir: Path, rows: list, names: list[str]) -> None:
    index = {name: i for i, name in enumerate(names)}
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    for _, job, obs, _ in rows:
        lines = []
        for d in _detections(job.result):
            x, y, w, h = _box(d)
            cx, cy = (x + w / 2) / obs.width, (y + h / 2) / obs.height
            values = [min(max(v, 0.0), 1.0) for v in (cx, cy, w / obs.width, h / obs.height)]
            lines.append(f"{index[str(d.get('objectName'))]} " + " ".join(f"{v:.6f}" for v in values))
        _write_text(out_dir / "labels" / f"{obs.id}.txt", "".join(line + "\n" for line in lines))
    yaml = [f"path: {json.dumps(str(out_dir.resolve()))}", "train: images", "val: images", "names:"]
    yaml += [f"  {i}: {json.dumps(name)}" for i, name in enumerate(names)]
    _write_text(out_dir / "data.yaml", "\n".join(yaml) + "\n")


def _write_coco(out_dir: Path, rows: list, names: list[str]) -> None:
    category = {name: i + 1 for i, name in enumerate(names)}
    images, annotations = [], []
    for n, (_, job, obs, source) in enumerate(rows, start=1):
        images.append(
            {
                "id": n,
                "file_name": f"images/{obs.id}{source.suffix.lower()}",
                "width": obs.width,
                "height": obs.height,
            }
        )
        for d in _detections(job.result):
            x, y, w, h = _box(d)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": n,
                    "category_id": category[str(d.get("objectName"))],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "score": d.get("confidence"),
                }
            )
    doc = {
        "info": {"description": "edgecv kept images with their job results as pre-labels"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "object"} for name, i in category.items()],
    }
    _write_json(out_dir / "annotations.json", doc)


def coco_labels(result: Any, width: int, height: int, file_name: str) -> dict[str, Any]:
    """One image's job result as COCO pre-labels (what the hard-image upload sends with the image)."""
    dets = _detections(result)
    category = {name: i + 1 for i, name in enumerate(sorted({str(d.get("objectName")) for d in dets}))}
    annotations = []
    for n, d in enumerate(dets, start=1):
        x, y, w, h = _box(d)
        annotations.append(
            {
                "id": n,
                "image_id": 1,
                "category_id": category[str(d.get("objectName"))],
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "score": d.get("confidence"),
            }
        )
    return {
        "format": "coco",
        "images": [{"id": 1, "file_name": file_name, "width": width, "height": height}],
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "object"} for name, i in category.items()],
    }


def _copy(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, doc: Any) -> None:
    _write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

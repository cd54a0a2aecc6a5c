"""Model-package evaluation: COCO mAP through the shipped runtime, robustness variants, class confusion.

What is measured is what ships: images go through ``Detector`` (letterbox, backend, decode, NMS) exactly
as the worker runs them. COCO metrics come from faster-coco-eval (``pip install faster-coco-eval``, part
of the ``train`` extra); it is imported only when an evaluation runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from edgecv.runtime.detections import Detections, box_iou

log = logging.getLogger(__name__)

# (boxes xyxy [n,4] in pixels, class ids [n], image width, image height)
Truth = tuple[np.ndarray, np.ndarray, int, int]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _coco():
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "model evaluation needs faster-coco-eval: pip install 'edgecv[train]' or pip install faster-coco-eval"
        ) from exc
    return COCO, COCOeval_faster


def coco_metrics(
    truths: list[Truth], detections: list[Detections], names: list[str], max_det: int = 300
) -> dict:
    """COCO bbox mAP50, mAP50-95 and per-class AP for parallel lists of ground truth and detections."""
    COCO, COCOeval = _coco()
    images, anns, results = [], [], []
    aid = 1
    for img_id, ((boxes, cls, w, h), det) in enumerate(zip(truths, detections, strict=True), start=1):
        images.append({"id": img_id, "width": int(w), "height": int(h)})
        for b, c in zip(
            np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(cls).reshape(-1), strict=False
        ):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append(
                {
                    "id": aid,
                    "image_id": img_id,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
            aid += 1
        for b, s, c in zip(det.xyxy.astype(np.float64), det.confidence, det.class_id, strict=False):
            results.append(
                {
                    "image_id": img_id,
                    "category_id": int(c) + 1,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    gt = COCO({"images": images, "annotations": anns, "categories": cats})
    if not results:
        return {
            "mAP50": 0.0,
            "mAP50_95": 0.0,
            "per_class": {n: {"AP50": 0.0, "AP50_95": 0.0} for n in names},
            "images": len(images),
            "instances": len(anns),
            "detections": 0,
        }
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "bbox", print_function=log.debug)
    ev.params.maxDets = [1, 10, max_det]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    present = {int(a["category_id"]) - 1 for a in anns}
    for k, name in enumerate(names):
        if k not in present:
            continue
        p = prec[:, :, k, 0, -1]
        p50 = prec[0, :, k, 0, -1]
        per_class[name] = {
            "AP50": round(float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0, 4),
            "AP50_95": round(float(p[p > -1].mean()) if (p > -1).any() else 0.0, 4),
        }
    return {
        "mAP50": round(float(ev.stats[1]), 4),
        "mAP50_95": round(float(ev.stats[0]), 4),
        "per_class": per_class,
        "images": len(images),
        "instances": len(anns),
        "detections": len(results),
    }


# --- held-out data -------------------------------------------------------------------------------


def load_yolo_split(data_dir: Path, limit: int = 0) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """``(image path, boxes xyxy px, class ids)`` for every image of a YOLO-format folder."""
    data_dir = Path(data_dir)
    img_dir = data_dir / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: expected images/ and labels/ (YOLO format)")
    paths = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        paths = paths[:limit]
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{p}: cannot decode image")
        h, w = img.shape[:2]
        lab = data_dir / "labels" / (p.stem + ".txt")
        rows = [ln.split() for ln in lab.read_text().splitlines() if ln.strip()] if lab.is_file() else []
        a = np.array([[float(v) for v in r[:5]] for r in rows], np.float64).reshape(-1, 5)
        cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
        boxes = np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1)
        out.append((p, boxes, a[:, 0].astype(np.int64)))
    return out


# --- robustness variants: (image, boxes) -> (image, boxes) --------------------------------------

Variant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _blur(img, boxes):
    return cv2.GaussianBlur(img, (0, 0), 1.5), boxes


def _brightness(factor: float) -> Variant:
    def f(img, boxes):
        return cv2.convertScaleAbs(img, alpha=factor, beta=0), boxes

    return f


def _jpeg(quality: int) -> Variant:
    def f(img, boxes):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR), boxes

    return f


def _rotate(degrees: float) -> Variant:
    """Rotate about the centre (same canvas, reflected border); truth = envelope of each rotated box."""

    def f(img, boxes):
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        x1, y1, x2, y2 = boxes.T
        corners = np.stack([np.stack(c, 1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)
        pts = corners @ m[:, :2].T + m[:, 2]
        env = np.stack((pts[..., 0].min(1), pts[..., 1].min(1), pts[..., 0].max(1), pts[..., 1].max(1)), 1)
        env[:, [0, 2]] = env[:, [0, 2]].clip(0, w)
        env[:, [1, 3]] = env[:, [1, 3]].clip(0, h)
        return out, env

    return f


VARIANTS: dict[str, Variant] = {
    "blur": _blur,
    "brightness+30%": _brightness(1.3),
    "brightness-30%": _brightness(0.7),
    "jpeg-q40": _jpeg(40),
    "rotate+5": _rotate(5.0),
    "rotate-5": _rotate(-5.0),
}


# --- evaluation through the runtime --------------------------------------------------------------


def _open(package, backend: str, precision: str, inference_precision: str | None):
    from edgecv.runtime.detector import Detector
    from edgecv.runtime.package import ModelPackage, load_package

    pkg = package if isinstance(package, ModelPackage) else load_package(Path(package))
    det = Detector.open(pkg, backend=backend, precision=precision, inference_precision=inference_precision)
    return pkg, det


def evaluate_package(
    package,
    data_dir: Path,
    *,
    backend: str = "openvino",
    precision: str = "int8",
    conf: float = 0.001,
    max_det: int = 300,
    iou: float | None = None,
    variants: Iterable[str] = (),
    limit: int = 0,
    inference_precision: str | None = None,
    confusion: bool = False,
) -> dict:
    """COCO mAP50 / mAP50-95 / per-class AP of a package on a YOLO-format folder, through ``Detector``.

    ``package`` is a ``ModelPackage`` or its folder. ``variants`` names entries of ``VARIANTS`` to also
    evaluate (robustness); each gets its mAP and the relative mAP50 drop. ``confusion`` adds the
    class-confusion table at the package's confidence threshold.
    """
    pkg, det = _open(package, backend, precision, inference_precision)
    split = load_yolo_split(Path(data_dir), limit)
    names = pkg.labels
    t0 = time.perf_counter()
    report = {
        "model": pkg.name,
        "backend": det.backend,
        "precision": precision,
        "inferencePrecision": inference_precision or "default",
        "data": str(data_dir),
        "conf": conf,
        "maxDetections": max_det,
        **_run(det, split, names, None, conf, max_det, iou, confusion, pkg.thresholds.confidence),
    }
    rob = {}
    for v in variants:
        r = _run(det, split, names, VARIANTS[v], conf, max_det, iou, False, pkg.thresholds.confidence)
        drop = (report["mAP50"] - r["mAP50"]) / report["mAP50"] if report["mAP50"] else 0.0
        rob[v] = {"mAP50": r["mAP50"], "mAP50_95": r["mAP50_95"], "mAP50RelativeDrop": round(drop, 4)}
    if rob:
        report["robustness"] = rob
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _run(det, split, names, variant, conf, max_det, iou, confusion, op_conf) -> dict:
    truths, dets = [], []
    for path, boxes, cls in split:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if variant is not None:
            img, boxes = variant(img, boxes)
        h, w = img.shape[:2]
        truths.append((boxes, cls, w, h))
        dets.append(det.detect(img, conf=conf, iou=iou, max_detections=max_det))
    m = coco_metrics(truths, dets, names, max_det)
    if confusion:
        m["confusion"] = confusion_summary(truths, dets, names, op_conf)
    return m


def confusion_summary(
    truths: list[Truth], dets: list[Detections], names: list[str], conf: float, iou: float = 0.5
) -> dict:
    """Greedy class-agnostic matching at IoU ≥ ``iou`` for detections ≥ ``conf``: how often a box of one
    class is reported as another. Returns totals and the most frequent confusions."""
    nc = len(names)
    mat = np.zeros((nc + 1, nc + 1), np.int64)  # last row/col: background (missed / false positive)
    for (boxes, cls, _, _), d in zip(truths, dets, strict=True):
        keep = d.confidence >= conf
        pb, pc = d.xyxy[keep], d.class_id[keep]
        order = np.argsort(-d.confidence[keep])
        pb, pc = pb[order], pc[order]
        used = np.zeros(len(boxes), bool)
        for b, c in zip(pb, pc, strict=True):
            if len(boxes) == 0:
                mat[nc, c] += 1
                continue
            ious = np.where(used, 0.0, box_iou(boxes, b[None]))
            j = int(ious.argmax())
            if ious[j] >= iou:
                used[j] = True
                mat[cls[j], c] += 1
            else:
                mat[nc, c] += 1
        for j in np.flatnonzero(~used):
            mat[cls[j], nc] += 1
    matched = mat[:nc, :nc]
    correct = int(np.trace(matched))
    wrong = int(matched.sum() - correct)
    pairs = [
        {"truth": names[i], "predicted": names[j], "count": int(matched[i, j])}
        for i in range(nc)
        for j in range(nc)
        if i != j and matched[i, j]
    ]
    pairs.sort(key=lambda p: -p["count"])
    return {
        "conf": conf,
        "matched": int(matched.sum()),
        "correctClass": correct,
        "wrongClass": wrong,
        "wrongClassRate": round(wrong / max(1, int(matched.sum())), 4),
        "missed": int(mat[:nc, nc].sum()),
        "falsePositives": int(mat[nc, :nc].sum()),
        "topConfusions": pairs[:15],
    }


def benchmark(
    model_file: Path, *, infer_precision: str | None = None, seconds: int = 15, hint: str = "throughput"
) -> dict:
    """OpenVINO ``benchmark_app`` throughput (img/s) and median latency (ms) for one model file."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    cmd = [exe, "-m", str(model_file), "-d", "CPU", "-hint", hint, "-t", str(seconds)]
    if infer_precision:
        cmd += ["-infer_precision", infer_precision]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res: dict = {"command": " ".join(["benchmark_app", *cmd[1:]])}
    for line in out.splitlines():
        if "Throughput:" in line:
            res["throughputFps"] = float(line.split(":")[1].split()[0])
        elif "Median:" in line and "latencyMedianMs" not in res:
            res["latencyMedianMs"] = float(line.split(":")[1].split()[0])
    return res


def write_report(path: Path, report: dict) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

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
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgecv.detections import Detections, box_iou
from edgecv.errors import DatasetError

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


# --- labelled data: YOLO or COCO folders -------------------------------------------------------------


@dataclass
class LabelledSet:
    """Images with truth boxes in the package's class ids. ``unknown`` counts the boxes whose class name
    (COCO category, YOLO ``names.txt`` entry or out-of-range YOLO id) is not one of the package's labels;
    they are left out of the scoring."""

    items: list[tuple[Path, np.ndarray, np.ndarray]]
    format: str
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return sum(len(c) for _, _, c in self.items)


def load_split(data_dir: Path, names: list[str], limit: int = 0) -> LabelledSet:
    """The labelled images of ``data_dir``: YOLO (``images/`` + ``labels/*.txt``; class ids mapped by name
    through ``names.txt`` when the folder has one) or COCO (``annotations.json`` + images; category names
    mapped to ``names``). Raises ``DatasetError`` when no box of a known class is found."""
    data_dir = Path(data_dir)
    labels = data_dir / "labels"
    if labels.is_dir() and any(labels.glob("*.txt")):
        out = _load_yolo(data_dir, names, limit)
    elif (data_dir / "annotations.json").is_file():
        out = _load_coco(data_dir, names, limit)
    else:
        raise DatasetError(
            f"{data_dir}: no usable labels: expected labels/*.txt (YOLO) or annotations.json (COCO) "
            "next to the images"
        )
    if not out.instances:
        unknown = f"; classes not among the model's labels: {out.unknown}" if out.unknown else ""
        raise DatasetError(f"{data_dir}: no usable labels: {len(out.items)} images, no boxes{unknown}")
    return out


def load_yolo_split(data_dir: Path, limit: int = 0) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """``(image path, boxes xyxy px, class ids)`` for every image of a YOLO folder, ids as written."""
    return _load_yolo(Path(data_dir), None, limit).items


def _image_paths(data_dir: Path, limit: int) -> list[Path]:
    img_dir = data_dir / "images"
    if not img_dir.is_dir():
        raise DatasetError(f"{data_dir}: expected an images/ folder")
    paths = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return paths[:limit] if limit else paths


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot decode image")
    return img.shape[1], img.shape[0]


def _folder_names(data_dir: Path) -> list[str] | None:
    path = data_dir / "names.txt"
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else None


def _load_yolo(data_dir: Path, names: list[str] | None, limit: int) -> LabelledSet:
    folder_names = _folder_names(data_dir) if names is not None else None
    index = {n: i for i, n in enumerate(names or [])}
    unknown: dict[str, int] = {}
    out = []
    for p in _image_paths(data_dir, limit):
        w, h = _image_size(p)
        lab = data_dir / "labels" / (p.stem + ".txt")
        rows = [ln.split() for ln in lab.read_text().splitlines() if ln.strip()] if lab.is_file() else []
        a = np.array([[float(v) for v in r[:5]] for r in rows], np.float64).reshape(-1, 5)
        cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
        boxes = np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1)
        cls = a[:, 0].astype(np.int64)
        if names is not None:
            cls = np.array([_yolo_class(int(c), folder_names, index, unknown) for c in cls], np.int64)
            boxes, cls = boxes[cls >= 0], cls[cls >= 0]
        out.append((p, boxes, cls))
    return LabelledSet(out, "yolo", unknown)


def _yolo_class(c: int, folder_names: list[str] | None, index: dict[str, int], unknown: dict) -> int:
    if folder_names is not None:
        name = folder_names[c] if 0 <= c < len(folder_names) else f"class {c}"
    else:
        name = next((n for n, i in index.items() if i == c), f"class {c}")
    if name not in index:
        unknown[name] = unknown.get(name, 0) + 1
        return -1
    return index[name]


def _load_coco(data_dir: Path, names: list[str], limit: int) -> LabelledSet:
    try:
        coco = json.loads((data_dir / "annotations.json").read_text(encoding="utf-8"))
        cats = {int(c["id"]): str(c["name"]) for c in coco.get("categories", [])}
        images = sorted(coco["images"], key=lambda im: str(im["file_name"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{data_dir / 'annotations.json'}: not a COCO detection file ({exc})") from None
    index = {n: i for i, n in enumerate(names)}
    by_image: dict[int, list[dict]] = {}
    for a in coco.get("annotations", []):
        by_image.setdefault(int(a["image_id"]), []).append(a)
    unknown: dict[str, int] = {}
    out = []
    for im in images[:limit] if limit else images:
        path = data_dir / "images" / im["file_name"]
        if not path.is_file():
            path = data_dir / im["file_name"]
        if not path.is_file():
            raise DatasetError(f"{data_dir}: annotations.json lists {im['file_name']}, which is not there")
        boxes, cls = [], []
        for a in by_image.get(int(im["id"]), []):
            name = cats.get(int(a["category_id"]), f"category {a['category_id']}")
            if name not in index:
                unknown[name] = unknown.get(name, 0) + 1
                continue
            if a.get("iscrowd", 0):
                continue
            x, y, bw, bh = (float(v) for v in a["bbox"])
            boxes.append((x, y, x + bw, y + bh))
            cls.append(index[name])
        out.append((path, np.array(boxes, np.float64).reshape(-1, 4), np.array(cls, np.int64)))
    return LabelledSet(out, "coco", unknown)


# --- matching at an operating threshold ------------------------------------------------------------


def match_greedy(
    truth_boxes: np.ndarray,
    det_boxes: np.ndarray,
    iou: float = 0.5,
    truth_cls: np.ndarray | None = None,
    det_cls: np.ndarray | None = None,
) -> np.ndarray:
    """For detections sorted by descending confidence: the index of the truth box each one matches
    (IoU ≥ ``iou``, each truth once, same class when classes are given), -1 where none."""
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    truth_boxes = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
    out = np.full(len(det_boxes), -1, np.int64)
    if not len(det_boxes) or not len(truth_boxes):
        return out
    ious = box_iou(det_boxes[:, None], truth_boxes[None])
    if truth_cls is not None and det_cls is not None:
        ious = np.where(np.asarray(det_cls)[:, None] == np.asarray(truth_cls)[None], ious, 0.0)
    used = np.zeros(len(truth_boxes), bool)
    for k in range(len(det_boxes)):
        row = np.where(used, 0.0, ious[k])
        j = int(row.argmax())
        if row[j] >= iou:
            used[j] = True
            out[k] = j
    return out


def _above(d: Detections, conf: float) -> Detections:
    keep = np.flatnonzero(d.confidence >= conf)
    return d[keep[np.argsort(-d.confidence[keep], kind="stable")]]


def precision_recall(
    truths: list[Truth], dets: list[Detections], conf: float, iou: float = 0.5, class_aware: bool = True
) -> dict:
    """Greedy matching at IoU ≥ ``iou`` of the detections ≥ ``conf``: precision, recall, and the unmatched
    detections as a share of the truth boxes (``extraBoxes``)."""
    n_truth = n_det = tp = 0
    for (boxes, cls, _, _), d in zip(truths, dets, strict=True):
        d = _above(d, conf)
        m = match_greedy(
            boxes, d.xyxy, iou, cls if class_aware else None, d.class_id if class_aware else None
        )
        n_truth, n_det, tp = n_truth + len(boxes), n_det + len(d), tp + int((m >= 0).sum())
    return {
        "conf": conf,
        "truths": n_truth,
        "detections": n_det,
        "matched": tp,
        "precision": round(tp / n_det, 4) if n_det else 1.0,
        "recall": round(tp / n_truth, 4) if n_truth else 1.0,
        "extraBoxes": round((n_det - tp) / n_truth, 4) if n_truth else float(n_det),
    }


# --- perturbations: (image, boxes) -> (image, boxes) ----------------------------------------------

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


def _envelope(boxes: np.ndarray, project: Callable[[np.ndarray], np.ndarray], w: int, h: int) -> np.ndarray:
    """Truth after a geometric warp: the clipped envelope of each box's four projected corners."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return boxes
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack(c, 1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1)
    pts = project(corners.reshape(-1, 2)).reshape(-1, 4, 2)
    env = np.stack((pts[..., 0].min(1), pts[..., 1].min(1), pts[..., 0].max(1), pts[..., 1].max(1)), 1)
    env[:, [0, 2]] = env[:, [0, 2]].clip(0, w)
    env[:, [1, 3]] = env[:, [1, 3]].clip(0, h)
    return env


def _rotate(degrees: float) -> Variant:
    """Rotate about the centre (same canvas, reflected border); truth = envelope of each rotated box."""

    def f(img, boxes):
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        return out, _envelope(boxes, lambda p: p @ m[:, :2].T + m[:, 2], w, h)

    return f


def _keystone(fraction: float, border: int = cv2.BORDER_REPLICATE) -> Variant:
    """A camera tilted upwards: the top edge shrinks by ``fraction`` of the width (half each side), the
    corners outside the picture filled by ``border`` (replicated edge, or black wedges with
    ``BORDER_CONSTANT`` as a rectification warp leaves them); truth = envelope of each warped box."""

    def f(img, boxes):
        h, w = img.shape[:2]
        d = fraction * w / 2
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[d, 0], [w - d, 0], [w, h], [0, h]])
        m = cv2.getPerspectiveTransform(src, dst)
        out = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        proj = lambda p: cv2.perspectiveTransform(p[None].astype(np.float64), m)[0]  # noqa: E731
        return out, _envelope(boxes, proj, w, h)

    return f


def _noise(sigma: float) -> Variant:
    """Gaussian sensor noise (the same fixed-seed field for every image, so runs repeat)."""

    def f(img, boxes):
        n = np.random.default_rng(0).normal(0.0, sigma, img.shape)
        return np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8), boxes

    return f


def _motion_blur(length: int) -> Variant:
    def f(img, boxes):
        k = np.zeros((length, length), np.float32)
        k[length // 2, :] = 1.0 / length
        return cv2.filter2D(img, -1, k), boxes

    return f


def _downscale(factor: float) -> Variant:
    """Objects ``factor`` times as large: the image shrunk and centred on a grey (114, the letterbox pad)
    canvas of the original size, so the model input shows them at that scale."""

    def f(img, boxes):
        h, w = img.shape[:2]
        sw, sh = round(w * factor), round(h * factor)
        x0, y0 = (w - sw) // 2, (h - sh) // 2
        out = np.full_like(img, 114)
        out[y0 : y0 + sh, x0 : x0 + sw] = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * [sw / w, sh / h, sw / w, sh / h]
        return out, b + [x0, y0, x0, y0]

    return f


VARIANTS: dict[str, Variant] = {
    "blur": _blur,
    "brightness+30%": _brightness(1.3),
    "brightness-30%": _brightness(0.7),
    "exposure-x0.5": _brightness(0.5),
    "exposure-x1.6": _brightness(1.6),
    "jpeg-q40": _jpeg(40),
    "jpeg-q30": _jpeg(30),
    "rotate+5": _rotate(5.0),
    "rotate-5": _rotate(-5.0),
    "keystone-8%": _keystone(0.08),
    "keystone-15%": _keystone(0.15),
    "border-fill": _keystone(0.08, cv2.BORDER_CONSTANT),
    "noise-s12": _noise(12.0),
    "motion-blur-9": _motion_blur(9),
    "downscale-0.5": _downscale(0.5),
}


# --- evaluation through the runtime --------------------------------------------------------------


def _open(package, backend: str, precision: str | None, inference_precision: str | None):
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
    precision: str | None = "int8",
    conf: float = 0.001,
    max_det: int = 300,
    iou: float | None = None,
    variants: Iterable[str] = (),
    limit: int = 0,
    inference_precision: str | None = None,
    confusion: bool = False,
) -> dict:
    """COCO mAP50 / mAP50-95 / per-class AP of a package on a YOLO or COCO folder, through ``Detector``.

    ``package`` is a ``ModelPackage`` or its folder. ``variants`` names entries of ``VARIANTS`` to also
    evaluate (robustness); each gets its mAP, the relative mAP50 and mAP50-95 drops and its precision at
    the package's confidence threshold (``precision`` of the unperturbed run is reported next to them).
    ``confusion`` adds the class-confusion table at the package's confidence threshold.
    """
    pkg, det = _open(package, backend, precision, inference_precision)
    split = load_split(Path(data_dir), pkg.labels, limit)
    op_conf = pkg.thresholds.confidence
    t0 = time.perf_counter()
    base, truths, dets = _run(det, split.items, pkg.labels, None, conf, max_det, iou)
    report = {
        "model": pkg.name,
        "backend": det.backend,
        "precision": precision,
        "inferencePrecision": inference_precision or "default",
        "data": str(data_dir),
        "format": split.format,
        "conf": conf,
        "maxDetections": max_det,
        **base,
        "atThreshold": precision_recall(truths, dets, op_conf),
    }
    if split.unknown:
        report["unknownCategories"] = dict(sorted(split.unknown.items()))
    if confusion:
        report["confusion"] = confusion_summary(truths, dets, pkg.labels, op_conf)
    rob = {v: _variant(det, split.items, pkg.labels, v, base, conf, max_det, iou, op_conf) for v in variants}
    if rob:
        report["robustness"] = rob
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _rel_drop(base: float, value: float) -> float:
    return round((base - value) / base, 4) if base else 0.0


def _variant(det, items, names, name, base, conf, max_det, iou, op_conf) -> dict:
    m, truths, dets = _run(det, items, names, VARIANTS[name], conf, max_det, iou)
    return {
        "mAP50": m["mAP50"],
        "mAP50_95": m["mAP50_95"],
        "mAP50RelativeDrop": _rel_drop(base["mAP50"], m["mAP50"]),
        "mAP50_95RelativeDrop": _rel_drop(base["mAP50_95"], m["mAP50_95"]),
        "precision": precision_recall(truths, dets, op_conf)["precision"],
    }


def _run(det, items, names, variant, conf, max_det, iou, class_map: np.ndarray | None = None):
    """Detections for every image (after ``variant``): (COCO metrics, truths, detections). ``class_map``
    maps the model's class ids to ``names``' (-1 drops a class)."""
    truths, dets = [], []
    for path, boxes, cls in items:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if variant is not None:
            img, boxes = variant(img, boxes)
        h, w = img.shape[:2]
        truths.append((boxes, cls, w, h))
        d = det.detect(img, conf=conf, iou=iou, max_detections=max_det)
        if class_map is not None:
            mapped = class_map[d.class_id]
            d = Detections(d.xyxy, d.confidence, mapped)[np.flatnonzero(mapped >= 0)]
        dets.append(d)
    return coco_metrics(truths, dets, names, max_det), truths, dets


def evaluate_grouped(
    package,
    data_dir: Path,
    groups: dict[str, list[str]],
    *,
    backend: str = "openvino",
    precision: str | None = "int8",
    limit: int = 0,
    max_det: int = 300,
    scene=None,
) -> dict:
    """Class-agnostic evaluation on a folder labelled with coarser classes (``groups``: folder class name →
    the package labels it covers, e.g. ``{"product": [every SKU], "price-tag": ["price-tag"]}``). The
    model's classes are mapped to the groups; COCO mAP over the groups at conf 0.001 and, per group at the
    package's threshold, recall, precision and extra boxes (unmatched detections / truth boxes).

    With ``scene`` (a ``SceneCheck``) the figures are also given the way a job sees the images: an image
    the check refuses for the package's domain has no detections (``job``: images refused, and per group
    recall, precision and extra boxes at the threshold)."""
    pkg, det = _open(package, backend, precision, None)
    names = list(groups)
    class_map = np.full(len(pkg.labels), -1, np.int64)
    for gi, members in enumerate(groups.values()):
        for label in members:
            class_map[pkg.labels.index(label)] = gi
    split = load_split(Path(data_dir), names, limit)
    m, truths, dets = _run(det, split.items, names, None, 0.001, max_det, None, class_map)
    op_conf = pkg.thresholds.confidence
    per_group = {}
    for gi, g in enumerate(names):
        only = [(b[c == gi], c[c == gi], w, h) for b, c, w, h in truths]
        pr = precision_recall(only, [d[np.flatnonzero(d.class_id == gi)] for d in dets], op_conf)
        per_group[g] = {**pr, **m["per_class"].get(g, {})}
    out = {
        "model": pkg.name,
        "data": str(data_dir),
        "images": m["images"],
        "mAP50": m["mAP50"],
        "mAP50_95": m["mAP50_95"],
        "groups": per_group,
    }
    if scene is not None and pkg.domain is not None:
        refused = [
            not scene.verdict(cv2.imread(str(path), cv2.IMREAD_COLOR), pkg.domain).in_domain
            for path, _, _ in split.items
        ]
        job_dets = [Detections.empty() if r else d for d, r in zip(dets, refused, strict=True)]
        job = {"refused": int(sum(refused)), "groups": {}}
        for gi, g in enumerate(names):
            only = [(b[c == gi], c[c == gi], w, h) for b, c, w, h in truths]
            job["groups"][g] = precision_recall(
                only, [d[np.flatnonzero(d.class_id == gi)] for d in job_dets], op_conf
            )
        out["job"] = job
    return out


def false_detections(
    package,
    images: Iterable[tuple[str, str, np.ndarray]],
    *,
    backend: str = "openvino",
    precision: str | None = "int8",
    keep: int = 0,
    scene=None,
) -> dict:
    """Detections at the package's default thresholds on ``(name, kind, BGR image)`` that contain none of
    its objects: every one is false. Per kind (e.g. photo / procedural) and overall: images, false
    detections per image, the highest confidence; the ``keep`` worst images with their top labels.

    With ``scene`` (a ``SceneCheck``) the images go the way a job goes: one the check refuses for the
    package's domain gets no detections (``refused`` counts them)."""
    pkg, det = _open(package, backend, precision, None)
    rows = []
    for name, kind, img in images:
        refused = (
            scene is not None and pkg.domain is not None and not scene.verdict(img, pkg.domain).in_domain
        )
        d = Detections.empty() if refused else det.detect(img)
        top = [pkg.labels[c] for c in d.class_id[np.argsort(-d.confidence)][:3]]
        rows.append((name, kind, len(d), float(d.confidence.max()) if len(d) else 0.0, top, refused))

    def summary(rs):
        return {
            "images": len(rs),
            "falsePerImage": round(sum(r[2] for r in rs) / max(1, len(rs)), 3),
            "maxConfidence": round(max((r[3] for r in rs), default=0.0), 3),
            **({"refused": sum(r[5] for r in rs)} if scene is not None else {}),
        }

    kinds = sorted({r[1] for r in rows})
    worst = sorted(rows, key=lambda r: (-r[2], -r[3]))[:keep]
    return {
        "model": pkg.name,
        "conf": pkg.thresholds.confidence,
        **summary(rows),
        "byKind": {k: summary([r for r in rows if r[1] == k]) for k in kinds},
        "worst": [
            {"image": r[0], "kind": r[1], "detections": r[2], "maxConfidence": round(r[3], 3), "top": r[4]}
            for r in worst
        ],
    }


def confusion_summary(
    truths: list[Truth], dets: list[Detections], names: list[str], conf: float, iou: float = 0.5
) -> dict:
    """Greedy class-agnostic matching at IoU ≥ ``iou`` for detections ≥ ``conf``: how often a box of one
    class is reported as another. Returns totals and the most frequent confusions."""
    nc = len(names)
    mat = np.zeros((nc + 1, nc + 1), np.int64)  # last row/col: background (missed / false positive)
    for (boxes, cls, _, _), d in zip(truths, dets, strict=True):
        d = _above(d, conf)
        m = match_greedy(boxes, d.xyxy, iou)
        for j, c in zip(m, d.class_id, strict=True):
            mat[cls[j] if j >= 0 else nc, c] += 1
        for j in np.setdiff1d(np.arange(len(boxes)), m):
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

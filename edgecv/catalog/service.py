"""What a user does with a catalogue, in one place for the CLI (``edgecv catalog ...``) and the local API
(``/v1/tenants/{tenantId}/catalog/...``): add, list, show, remove, check, and match a product photo.

The folder is the truth (``edgecv.catalog.folder``); a running agent notices changes by itself
(``LiveCatalog``), so these functions only write files and read them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecv.catalog import features, keypoints
from edgecv.catalog.folder import Problem, Sku, add, check_sku_id, remove
from edgecv.catalog.index import UNKNOWN, CatalogIndex, build, check, reference_image
from edgecv.config import Config
from edgecv.errors import CatalogError, EdgecvError, SkuNotFound
from edgecv.imageio import decode
from edgecv.vision.common import label_of

TAG_LABEL = "price-tag"
CENTRE_CROPS = (0.7, 0.5)  # shares of the photo's width and height tried besides the whole photo


def _index(config: Config) -> CatalogIndex:
    return build(config.catalog_dir, config.cache_dir, config.max_image_pixels)


def validate_images(config: Config, files: list[tuple[str, bytes]]) -> None:
    """Every reference image must decode and be big enough: CatalogError naming the first that is not."""
    if not files:
        raise CatalogError("no images given: a SKU needs at least one reference image")
    for name, data in files:
        try:
            reference_image(data, config.max_image_pixels)
        except EdgecvError as exc:
            raise CatalogError(f"{name}: not usable as a reference image: {exc}") from None


def add_sku(
    config: Config, sku: str, files: list[tuple[str, bytes]], meta: dict[str, Any] | None = None
) -> Sku:
    check_sku_id(sku)
    if files:
        validate_images(config, files)
    elif not (config.catalog_dir / sku).is_dir():
        raise CatalogError(f"SKU {sku} is new: give at least one reference image")
    return add(config.catalog_dir, sku, files, meta)


def remove_sku(config: Config, sku: str) -> None:
    remove(config.catalog_dir, sku)


def list_skus(config: Config) -> tuple[CatalogIndex, list[dict]]:
    index = _index(config)
    return index, [s.to_dict() for s in index.skus]


def show_sku(config: Config, sku: str) -> dict:
    check_sku_id(sku)
    index = _index(config)
    if sku not in index.by_id:
        raise SkuNotFound(f"no SKU {sku} in the catalogue at {config.catalog_dir} (`edgecv catalog list`)")
    entry = index.skus[index.by_id[sku]]
    return {**entry.to_dict(), "folder": str(entry.folder), "catalogVersion": index.version}


def check_catalog(config: Config) -> tuple[CatalogIndex, list[Problem]]:
    index = _index(config)
    return index, check(index)


@dataclass
class Candidate:
    sku: str
    name: str
    score: float
    appearance: float | None = None  # the embedding's similarity alone
    keypoint_votes: int | None = None  # photo keypoints that matched this SKU's references (ratio test)

    def to_dict(self) -> dict:
        out = {"sku": self.sku, "name": self.name, "score": round(self.score, 4)}
        if self.appearance is not None:
            out["appearance"] = round(self.appearance, 4)
        if self.keypoint_votes is not None:
            out["keypointVotes"] = self.keypoint_votes
        return out


def match_image(
    image: np.ndarray,
    index: CatalogIndex,
    threshold: float,
    detector=None,
    top: int = 5,
    use_keypoints: bool = True,
) -> dict:
    """The catalogue SKUs most like the product in ``image``, best first, and the verdict (the best SKU
    when it reaches ``threshold``, else unknown product). With a detector, its largest product box and the
    whole image are both tried and the better match is kept (a close-up of one pack fills the frame, and
    a shelf detector may see nothing in it); without one, the whole image.

    With ``use_keypoints`` the ``keypoints.SHORTLIST`` SKUs most alike in appearance are checked with keypoints
    (``edgecv.catalog.keypoints``): each SKU's score is its appearance similarity plus a bonus for the
    photo's keypoints that match its reference images and no other's; the verdict then takes
    ``threshold + keypoints.THRESHOLD_SHIFT``."""
    h, w = image.shape[:2]
    # the whole photo and its centre (a pack held up to the camera fills the middle, not the corners)
    boxes = [np.array([0.0, 0.0, w, h])] + [
        np.array([w * (1 - f) / 2, h * (1 - f) / 2, w * (1 + f) / 2, h * (1 + f) / 2]) for f in CENTRE_CROPS
    ]
    sources = ["whole image"] + [f"centre {round(f * 100)} %" for f in CENTRE_CROPS]
    if detector is not None:
        det = detector.detect(image)
        labels = list(detector.package.labels)
        is_product = np.array([label_of(labels, int(c)) != TAG_LABEL for c in det.class_id], bool)
        if is_product.any():
            xyxy = det.xyxy[is_product]
            area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
            boxes.insert(0, xyxy[int(np.argmax(area))])
            sources.insert(0, "detector")
    emb, usable = features.embed(image, np.stack(boxes))
    scores = index.matcher.scores(emb)
    scores[~usable] = -1.0
    pick = int(np.argmax(scores.max(axis=1))) if len(index) else 0
    appearance = scores[pick] if len(index) else np.zeros(0)
    row, votes = appearance.astype(np.float64), None
    if use_keypoints and len(row):
        short = np.argsort(-appearance)[: keypoints.SHORTLIST]
        v = keypoints.votes(
            keypoints.describe(image, keypoints.QUERY_SIDE), [index.sku_keypoints(int(i)) for i in short]
        )
        votes = np.zeros(len(row), np.int64)
        votes[short] = v.astype(np.int64)
        row = row + keypoints.bonus(votes)
        threshold = threshold + keypoints.THRESHOLD_SHIFT
    order = np.argsort(-row)[: max(1, top)] if len(row) else []
    candidates = [
        Candidate(
            index.skus[i].id,
            index.skus[i].name,
            float(row[i]),
            float(appearance[i]) if votes is not None else None,
            int(votes[i]) if votes is not None else None,
        )
        for i in order
    ]
    best = candidates[0] if candidates and candidates[0].score >= threshold else None
    x1, y1, x2, y2 = (int(round(v)) for v in boxes[pick])
    return {
        "sku": best.sku if best else None,
        "name": best.name if best else UNKNOWN,
        "score": round(candidates[0].score, 4) if candidates else 0.0,
        "threshold": round(threshold, 4),
        "source": sources[pick],
        "boundingBox": {"x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1},
        "candidates": [c.to_dict() for c in candidates],
        "catalogVersion": index.version,
    }


def match_files(
    config: Config, files: list[tuple[str, bytes]], top: int = 5, model: str | None = None, detectors=None
) -> list[dict]:
    """``match_image`` for each (name, bytes), in order; an unreadable file gets an ``error`` entry and the
    others still run. ``detectors``: a DetectorPool to take the shelf model from (None: open one). With an
    empty catalogue every photo is an unknown product with no candidates."""
    index = _index(config)
    if detectors is None:
        from edgecv.work.pool import DetectorPool

        detectors = DetectorPool(config)
    detector = detectors.get(model or config.default_model)
    out = []
    for name, data in files:
        try:
            image = decode(data, max_pixels=config.max_image_pixels)
        except EdgecvError as exc:
            out.append({"file": name, "error": {"code": exc.code, "message": str(exc)}})
            continue
        out.append({"file": name, **match_image(image, index, config.catalog_threshold, detector, top)})
    return out

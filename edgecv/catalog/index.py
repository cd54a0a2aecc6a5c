"""The catalogue index: every reference image's embeddings, the SKU each belongs to, and a version.

``build(root, cache_dir)`` scans the folder (``edgecv.catalog.folder``), embeds each reference image
(``edgecv.catalog.features.reference_views``) and keeps the embeddings in ``cache_dir`` keyed by file
name, size and mtime, so a change re-embeds only the files that changed. ``LiveCatalog`` is what the agent
holds: it notices a changed folder (at most one look per ``check_every_s``) and swaps in a new index
without a restart; jobs already running keep the index they started with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgecv.catalog import features
from edgecv.catalog.folder import Problem, Sku, scan, signature
from edgecv.catalog.keypoints import ReferenceKeypoints
from edgecv.catalog.matching import DEFAULT_THRESHOLD, Matcher, Matches
from edgecv.errors import EdgecvError
from edgecv.imageio import decode_sized, read_file
from edgecv.runtime.decode import nms

log = logging.getLogger(__name__)

UNKNOWN = "unknown product"
REFERENCE_SIDE = 512  # reference images are shrunk to this longest side before they are described
LOOKALIKE = 0.95  # two SKUs whose references are this similar are reported by `catalog check`
NEAR_TIE = 0.06  # candidates this close to the best are told apart by size, where heightMm is known


@dataclass(frozen=True)
class Recognition:
    """What the catalogue says about the product boxes: which are kept, and each kept one's name."""

    keep: np.ndarray  # int [k]: the boxes kept (one per product), indices into the boxes given
    sku: list[str | None]  # catalogue SKU id, None: unknown product
    name: list[str]  # catalogue name, or UNKNOWN
    score: list[float]  # similarity of the best SKU
    group: np.ndarray  # int [n]: SKU index, -1 unknown (what facing runs are made of)


def recognise(
    index: CatalogIndex,
    image: np.ndarray,
    boxes: np.ndarray,
    threshold: float,
    confidence: np.ndarray | None = None,
) -> Recognition:
    """Name each product box. Where SKUs look the same in two sizes (a 250 ml and a 500 ml can of one
    design), appearance ties; if the catalogue gives ``heightMm``, the image's scale (pixels per mm, the
    median over products named without a near tie) picks the candidate whose height fits the box.

    With ``confidence`` (the detector's, per box), boxes that overlap another by IoU >= 0.6 are one
    product whatever SKU the detector guessed for each: only the most confident is kept and named."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keep = np.arange(len(boxes))
    if confidence is not None and len(boxes) > 1:
        keep = np.sort(
            nms(boxes, np.asarray(confidence, np.float32), np.zeros(len(boxes), np.int64), 0.6, agnostic=True)
        )
        boxes = boxes[keep]
    emb, usable = features.embed(image, boxes)
    s = index.matcher.scores(emb)
    s[~usable] = -1.0
    n = len(boxes)
    if n == 0 or not len(index):
        return Recognition(keep, [None] * n, [UNKNOWN] * n, [0.0] * n, np.full(n, -1, np.int64))
    best = np.argmax(s, axis=1)
    score = s[np.arange(n), best]
    sized = np.isfinite(index.height_mm)
    if sized.any():
        near = s >= (score - NEAR_TIE)[:, None]  # [n, K]: the best and its near ties
        tied = near.sum(axis=1) > 1
        height_px = boxes[:, 3] - boxes[:, 1]
        sure = usable & ~tied & (score >= threshold) & sized[best]
        if sure.any():
            px_per_mm = float(np.median(height_px[sure] / index.height_mm[best[sure]]))
            for i in np.flatnonzero(tied & usable):
                cands = np.flatnonzero(near[i] & sized)
                if len(cands) > 1:
                    misfit = np.abs(np.log(height_px[i] / (px_per_mm * index.height_mm[cands])))
                    best[i] = cands[int(np.argmin(misfit))]
                    score[i] = s[i, best[i]]
    named = usable & (score >= threshold)
    group = np.where(named, best, -1).astype(np.int64)
    skus = [index.skus[g].id if g >= 0 else None for g in group.tolist()]
    names = [index.skus[g].name if g >= 0 else UNKNOWN for g in group.tolist()]
    return Recognition(keep, skus, names, [round(float(v), 4) for v in np.where(usable, score, 0.0)], group)


@dataclass
class CatalogIndex:
    root: Path
    skus: list[Sku]
    emb: np.ndarray  # float32 [m, D] (the cache file holds them as float16)
    owner: np.ndarray  # int [m]: SKU index of each row
    source: list[tuple[int, int]]  # (SKU index, image index) of each row
    version: str
    problems: list[Problem] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # "sku/file" -> sha256 of the file
    cache_dir: Path | None = None  # where reference keypoints are cached (catalog match)

    def __post_init__(self) -> None:
        self.keypoints = ReferenceKeypoints(self.cache_dir)
        self.matcher = Matcher(self.emb, self.owner, len(self.skus))
        self.emb = self.matcher.emb  # one copy: rows are already grouped by SKU
        self.by_id = {s.id: i for i, s in enumerate(self.skus)}
        self.by_name = {s.name: s.id for s in self.skus}
        self.height_mm = np.array([s.height_mm or np.nan for s in self.skus], np.float64)

    def __len__(self) -> int:
        return len(self.skus)

    def match(self, queries: np.ndarray, threshold: float, usable: np.ndarray | None = None) -> Matches:
        return self.matcher.match(queries, threshold, usable)

    def describe(self) -> dict:
        return {"version": self.version, "skus": len(self.skus), "references": int(len(self.emb))}

    def sku_keypoints(self, i: int) -> list[np.ndarray]:
        """SIFT descriptors of each of SKU ``i``'s reference images (made on first use, then cached)."""
        sku = self.skus[i]
        return [
            self.keypoints.of(
                f"{sku.id}/{p.name}", self.digests.get(f"{sku.id}/{p.name}"), lambda p=p: load_reference(p)[0]
            )
            for p in sku.images
        ]

    def recognise(
        self, image: np.ndarray, boxes: np.ndarray, threshold: float, confidence: np.ndarray | None = None
    ) -> Recognition:
        return recognise(self, image, boxes, threshold, confidence)


def _version(skus: list[Sku], stats: dict[str, tuple[int, int]]) -> str:
    h = hashlib.sha256()
    for s in skus:
        h.update(json.dumps([s.id, s.meta], sort_keys=True, default=str).encode())
        for p in s.images:
            key = f"{s.id}/{p.name}"
            h.update(repr((key, stats.get(key))).encode())
    return h.hexdigest()[:12]


def _cache_file(cache_dir: Path, root: Path) -> Path:
    tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / "catalog" / f"index-{tag}.npz"


def _load_cache(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, counts, emb, digests = z["keys"], z["counts"], z["emb"], z["digests"]
            made_by = str(z["signature"]) if "signature" in z.files else None
            if emb.shape[1:] != (features.dim(),) or made_by != features.signature():
                log.info(
                    "catalogue cache %s was made by other features: embedding every reference again", path
                )
                return {}
    except (OSError, KeyError, ValueError) as exc:
        if path.exists():
            log.warning("catalogue cache %s unreadable (%s): embedding every reference again", path, exc)
        return {}
    out, at = {}, 0
    emb = emb.astype(np.float32, copy=False)
    for k, n, d in zip(keys.tolist(), counts.tolist(), digests.tolist(), strict=True):
        out[k] = (emb[at : at + n], d)  # views into one array: build() uses it whole when nothing changed
        at += n
    return out


def _save_cache(path: Path, entries: dict[str, tuple[np.ndarray, str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(entries)
        emb = (
            np.concatenate([entries[k][0] for k in keys], dtype=np.float32)
            if keys
            else np.zeros((0, features.dim()), np.float32)
        )
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys, dtype=str),
            counts=np.array([len(entries[k][0]) for k in keys], np.int64),
            digests=np.array([entries[k][1] for k in keys], dtype=str),
            signature=np.array(features.signature()),
            emb=emb,
        )
        tmp.replace(path)
    except OSError as exc:
        log.warning(
            "catalogue cache %s not written (%s): the next start embeds the references again", path, exc
        )


def load_reference(path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """(BGR image shrunk to REFERENCE_SIDE at most, sha256 of the file); EdgecvError with the reason."""
    return reference_image(read_file(path), max_pixels)


def reference_image(data: bytes, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """``load_reference`` for the bytes of an image file."""
    decoded = decode_sized(data, max_pixels=max_pixels, fit=(REFERENCE_SIDE, REFERENCE_SIDE))
    img = decoded.image
    h, w = img.shape[:2]
    if min(h, w) < 8:
        raise EdgecvError(f"image is {w}x{h} pixels: too small to describe a product (8 px at least)")
    scale = REFERENCE_SIDE / max(h, w)
    if scale < 1:
        img = cv2.resize(
            img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return img, hashlib.sha256(data).hexdigest()


def build(root: Path, cache_dir: Path | None = None, max_pixels: int | None = None) -> CatalogIndex:
    """The index of the catalogue at ``root`` (empty when the folder is missing or holds no SKU)."""
    root = Path(root)
    skus, problems = scan(root)
    cache_path = _cache_file(cache_dir, root) if cache_dir is not None else None
    cached = _load_cache(cache_path) if cache_path is not None else {}
    fresh: dict[str, tuple[np.ndarray, str]] = {}
    stats: dict[str, tuple[int, int]] = {}
    rows, owner, source, kept = [], [], [], []
    digests: dict[str, str] = {}
    for sku in skus:
        good = []
        for path in sku.images:
            key = f"{sku.id}/{path.name}"
            try:
                st = path.stat()
            except OSError as exc:
                problems.append(Problem(sku.id, str(path), f"cannot be read: {exc.strerror}"))
                continue
            stats[key] = (st.st_size, st.st_mtime_ns)
            ckey = f"{key}|{st.st_size}|{st.st_mtime_ns}"
            if ckey in cached:
                emb, digest = cached[ckey]
            else:
                try:
                    img, digest = load_reference(path, max_pixels)
                except EdgecvError as exc:
                    problems.append(Problem(sku.id, str(path), f"unusable reference image: {exc}"))
                    continue
                emb = features.reference_views(img)
            fresh[ckey] = (emb, digest)
            digests[key] = digest
            good.append(path)
            rows.append(emb)
            owner += [len(kept)] * len(emb)
            source += [(len(kept), len(good) - 1)] * len(emb)
        if good:
            sku.images = good
            kept.append(sku)
        else:
            problems.append(
                Problem(sku.id, str(sku.folder), "no usable reference image: the SKU is not matched")
            )
    if cache_path is not None and set(fresh) != set(cached):
        _save_cache(cache_path, fresh)
    emb = np.concatenate(rows, dtype=np.float32) if rows else np.zeros((0, features.dim()), np.float32)
    return CatalogIndex(
        root,
        kept,
        emb,
        np.asarray(owner, np.int64),
        source,
        _version(kept, stats),
        problems,
        digests,
        cache_dir,
    )


def check(index: CatalogIndex) -> list[Problem]:
    """What `catalog check` reports beyond unreadable files: the same image twice, and SKUs so alike that
    recognition may confuse them (their references' best similarity reaches LOOKALIKE)."""
    out = list(index.problems)
    seen: dict[str, str] = {}
    for key, digest in sorted(index.digests.items()):
        if digest in seen:
            out.append(Problem(key.split("/")[0], key, f"is the same file as {seen[digest]}", "warning"))
        else:
            seen[digest] = key
    if len(index.skus) > 1 and len(index.emb):
        first = np.array([i for i, (s, _) in enumerate(index.source)])  # every view counts
        sims = index.matcher.scores(index.emb[first])  # [rows, skus]
        by_sku = np.full((len(index.skus), len(index.skus)), -1.0, np.float32)
        np.maximum.at(by_sku, index.owner[first], sims)
        np.fill_diagonal(by_sku, -1.0)
        for a in range(len(index.skus)):
            for b in range(a + 1, len(index.skus)):
                s = float(max(by_sku[a, b], by_sku[b, a]))
                if s >= LOOKALIKE:
                    out.append(
                        Problem(
                            index.skus[a].id,
                            None,
                            f"looks alike SKU {index.skus[b].id} (similarity {s:.2f}): recognition may confuse "
                            "them; add references that show how they differ (a shelf crop of each)",
                            "warning",
                        )
                    )
    return out


class LiveCatalog:
    """The agent's catalogue: ``get()`` gives the current index (None while the folder holds no SKU),
    rebuilt when the folder changed since the last look (looks at most every ``check_every_s``)."""

    def __init__(
        self,
        root: Path,
        cache_dir: Path | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        max_pixels: int | None = None,
        check_every_s: float = 1.0,
    ) -> None:
        self.root = Path(root)
        self.cache_dir = cache_dir
        self.threshold = threshold
        self.max_pixels = max_pixels
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._index: CatalogIndex | None = None
        self._signature: tuple | None = None
        self._checked = 0.0

    def get(self) -> CatalogIndex | None:
        now = time.monotonic()
        if self._signature is not None and now - self._checked < self.check_every_s:
            return self._current()
        with self._lock:
            if self._signature is not None and time.monotonic() - self._checked < self.check_every_s:
                return self._current()
            sig = signature(self.root)
            if sig != self._signature:
                started = time.perf_counter()
                index = build(self.root, self.cache_dir, self.max_pixels)
                for p in index.problems:
                    log.warning("catalogue: %s", p)
                if self._signature is not None or len(index):
                    log.info(
                        "catalogue %s: %d SKU(s), %d reference(s), version %s (%.0f ms)",
                        self.root,
                        len(index),
                        len(index.emb),
                        index.version,
                        (time.perf_counter() - started) * 1e3,
                    )
                self._index, self._signature = index, sig
            self._checked = time.monotonic()
            return self._current()

    def _current(self) -> CatalogIndex | None:
        index = self._index
        return index if index is not None and len(index) else None

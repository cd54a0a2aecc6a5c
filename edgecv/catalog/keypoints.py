"""Keypoint evidence for ``catalog match``: the same print on the pack (logo, lettering, picture), found
by local features, whatever the light, the angle or the hand holding it.

A close-up photo of one pack carries far more detail than the 64x64 crop the embedding sees. SIFT
(OpenCV; the patent has expired) finds up to ``FEATURES`` keypoints in the photo (longest side
``QUERY_SIDE``) and in each reference image of the shortlisted SKUs (longest side ``REFERENCE_SIDE``);
each photo keypoint whose nearest reference keypoint is clearly nearer than the second nearest (Lowe's
ratio test, ``RATIO``) votes for that reference's SKU. Keypoints that look alike on several SKUs (a
brand's logo on all its flavours) fail the ratio test and vote for none, so what is left tells the
flavours apart. ``bonus(votes)`` turns votes into a score added to the appearance similarity
(``edgecv.catalog.service.match_image``).

Reference descriptors are made on first use, per SKU, and kept in memory by the catalogue index (and on
disk under the cache dir, keyed by the file's sha256), so a catalogue of thousands of SKUs costs only for
the SKUs a photo is shortlisted to. Shelf jobs do not use this: a product 60 px tall on a shelf photo has
too few keypoints; the embedding names those.

Figures (held-out Grocery Store classes, docs/catalog.md): top-1 and unknown-product F1 with and without.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

FEATURES = 500
QUERY_SIDE = 348  # the photo's longest side for keypoints (a phone photo's pack fills much of it)
REFERENCE_SIDE = 512  # a reference image's longest side (as the catalogue index loads it)
RATIO = 0.8
WEIGHT = 0.03  # score per sqrt(vote): 25 votes add 0.15, 100 add 0.30
SHORTLIST = 5  # SKUs checked with keypoints: the most alike in appearance
THRESHOLD_SHIFT = 0.05  # added to the catalogue threshold when scores carry the keypoint bonus (allowed classes: F1 0.43 / 0.44 at k = 1 / 5)
_EMPTY = np.zeros((0, 128), np.float32)


def describe(image: np.ndarray, side: int) -> np.ndarray:
    """SIFT descriptors float32 [n, 128] of a BGR (or grey) image shrunk to ``side`` at most."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    scale = side / max(grey.shape[:2])
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, desc = _sift().detectAndCompute(grey, None)
    return desc if desc is not None else _EMPTY


_local = threading.local()


def _sift():
    """One SIFT detector per thread (OpenCV's objects are not meant to be shared between threads)."""
    sift = getattr(_local, "sift", None)
    if sift is None:
        sift = _local.sift = cv2.SIFT_create(nfeatures=FEATURES)
    return sift


def votes(query: np.ndarray, refs: list[list[np.ndarray]]) -> np.ndarray:
    """Votes [len(refs)] of the query descriptors for each candidate SKU (``refs``: per SKU, one descriptor
    array per reference image). The ratio test is taken over every reference of every candidate together;
    a SKU's votes are those of its best reference image (as its appearance score is its best reference's),
    so a SKU with five reference photos does not outvote one with a single pack shot."""
    out = np.zeros(len(refs), np.float64)
    arrays = [a for per_sku in refs for a in per_sku if len(a)]
    if len(query) < 2 or sum(len(a) for a in arrays) < 2:
        return out
    ref_owner = np.array([i for i, per_sku in enumerate(refs) for a in per_sku if len(a)], np.int64)
    row_ref = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    good = _ratio_matches(
        np.asarray(query, np.float32), np.concatenate(arrays).astype(np.float32, copy=False)
    )
    if len(good):
        per_ref = np.bincount(row_ref[good], minlength=len(arrays)).astype(np.float64)
        np.maximum.at(out, ref_owner, per_ref)
    return out


def _ratio_matches(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Indices into ``ref`` of the nearest neighbours of the query rows that pass the ratio test (exact
    L2, as OpenCV's brute-force matcher, but one matrix product: 2-3x faster)."""
    d = query @ ref.T  # squared distance less |q|^2: |r|^2 - 2 q.r
    d *= -2.0
    d += (ref * ref).sum(axis=1)
    rows = np.arange(len(query))
    first = d.argmin(axis=1)
    d1 = d[rows, first].copy()
    d[rows, first] = np.inf
    d2 = d.min(axis=1)
    q2 = (query * query).sum(axis=1)
    ok = np.maximum(d1 + q2, 0) < (RATIO * RATIO) * np.maximum(d2 + q2, 0)
    return first[ok]


def bonus(v: np.ndarray) -> np.ndarray:
    """The score keypoint votes add to an appearance similarity."""
    return WEIGHT * np.sqrt(np.asarray(v, np.float64))


class ReferenceKeypoints:
    """Descriptors of each SKU's reference images, made on first use (thread-safe) and cached on disk by
    the file's sha256 when ``cache_dir`` is given. In memory: the ``MEMORY_ENTRIES`` most recently used
    (SIFT descriptors are whole numbers 0-255, kept as uint8: 64 KB for 500 keypoints)."""

    MEMORY_ENTRIES = 256  # ~16 MB at most

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) / "catalog" / "keypoints" if cache_dir is not None else None
        self._by_key: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, key: str, digest: str | None, load) -> np.ndarray:
        """Descriptors (float32 [n, 128]) for the reference ``key`` (``load()`` returns its BGR image when
        they must be made)."""
        with self._lock:
            if key in self._by_key:
                self._by_key.move_to_end(key)
                return self._by_key[key].astype(np.float32)
        desc = self._read(digest)
        if desc is None:
            try:
                desc = describe(load(), REFERENCE_SIDE)
            except Exception as exc:  # an unreadable reference already has its problem on record
                log.warning("catalogue reference %s: no keypoints (%s)", key, exc)
                desc = _EMPTY
            desc = np.clip(np.rint(desc), 0, 255).astype(np.uint8)
            self._write(digest, desc)
        with self._lock:
            self._by_key[key] = desc
            while len(self._by_key) > self.MEMORY_ENTRIES:
                self._by_key.popitem(last=False)
        return desc.astype(np.float32)

    def _path(self, digest: str | None) -> Path | None:
        if self.cache_dir is None or not digest:
            return None
        return self.cache_dir / f"{digest[:32]}-{FEATURES}-{REFERENCE_SIDE}-u8.npy"

    def _read(self, digest: str | None) -> np.ndarray | None:
        path = self._path(digest)
        if path is None or not path.is_file():
            return None
        try:
            desc = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return desc if desc.ndim == 2 and desc.shape[1] == 128 and desc.dtype == np.uint8 else None

    def _write(self, digest: str | None, desc: np.ndarray) -> None:
        path = self._path(digest)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, desc)
            tmp.replace(path)
        except OSError as exc:
            log.debug("keypoint cache %s not written: %s", path, exc)

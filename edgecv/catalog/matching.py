"""Naming product crops from reference embeddings: nearest SKU by cosine similarity, open set.

A SKU's score for a crop is the best similarity over that SKU's reference images (a store adds a photo
per look a product has: front, side, a crop from a shelf photo). The best SKU names the crop when its
score reaches ``threshold``; below it the crop is an ``unknown product`` (something the catalogue does
not hold). Everything is one matrix product: [crops, D] x [D, references], then a max per SKU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = (
    0.80  # chosen on the training generator's SKUs (scripts/eval_catalog.py --style generator)
)


@dataclass(frozen=True)
class Matches:
    sku: np.ndarray  # int [n]: index into the SKU list of the best SKU, -1 when unknown (below threshold)
    score: np.ndarray  # float [n]: the best SKU's similarity (reported even when unknown)
    best: np.ndarray  # int [n]: the best SKU whatever the threshold (-1 for an unusable crop)
    second: np.ndarray  # float [n]: the runner-up SKU's similarity (how close a look-alike came)


class Matcher:
    """References ``emb`` [m, D] (unit rows), ``owner`` [m] (SKU index of each reference), ``count`` SKUs."""

    def __init__(self, emb: np.ndarray, owner: np.ndarray, count: int) -> None:
        self.emb = np.ascontiguousarray(emb, np.float32).reshape(-1, emb.shape[-1] if emb.size else 1)
        self.owner = np.asarray(owner, np.int64).reshape(-1)
        self.count = int(count)
        order = np.argsort(self.owner, kind="stable")
        self._order = order
        owners = self.owner[order]
        self._starts = (
            np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(owners) else np.zeros(0, np.int64)
        )
        self._sku_of_group = owners[self._starts] if len(owners) else np.zeros(0, np.int64)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """[n, count] best similarity of each query to each SKU (-1 for SKUs with no reference)."""
        n = len(queries)
        out = np.full((n, self.count), -1.0, np.float32)
        if n == 0 or len(self.owner) == 0:
            return out
        sims = queries.astype(np.float32) @ self.emb[self._order].T  # [n, m], references grouped by SKU
        out[:, self._sku_of_group] = np.maximum.reduceat(sims, self._starts, axis=1)
        return out

    def match(self, queries: np.ndarray, threshold: float, usable: np.ndarray | None = None) -> Matches:
        n = len(queries)
        if n == 0 or self.count == 0 or len(self.owner) == 0:
            none = np.full(n, -1, np.int64)
            return Matches(none, np.zeros(n, np.float32), none.copy(), np.zeros(n, np.float32))
        s = self.scores(queries)
        if self.count > 1:
            top2 = np.argpartition(-s, 1, axis=1)[:, :2]
            first = np.where(
                s[np.arange(n), top2[:, 0]] >= s[np.arange(n), top2[:, 1]], top2[:, 0], top2[:, 1]
            )
            second_idx = np.where(first == top2[:, 0], top2[:, 1], top2[:, 0])
            second = s[np.arange(n), second_idx]
        else:
            first = np.zeros(n, np.int64)
            second = np.full(n, -1.0, np.float32)
        score = s[np.arange(n), first]
        best = first.astype(np.int64)
        if usable is not None:
            best = np.where(usable, best, -1)
            score = np.where(usable, score, 0.0).astype(np.float32)
        sku = np.where(score >= threshold, best, -1)
        return Matches(sku, score.astype(np.float32), best, second.astype(np.float32))

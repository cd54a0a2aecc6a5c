"""Naming product crops from reference embeddings: nearest SKU by cosine similarity, open set.

A SKU's score for a crop is the best similarity over that SKU's reference images (a store adds a photo
per look a product has: front, side, a crop from a shelf photo). The best SKU names the crop when its
score reaches ``threshold``; below it the crop is an ``unknown product`` (something the catalogue does
not hold). Everything is one matrix product: [crops, D] x [D, references], then a max per SKU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.75  # chosen on the training generator's SKUs (eval_catalog.py --style generator --sweep)


@dataclass(frozen=True)
class Matches:
    sku: np.ndarray  # int [n]: index into the SKU list of the best SKU, -1 when unknown (below threshold)
    score: np.ndarray  # float [n]: the best SKU's similarity (reported even when unknown)
    best: np.ndarray  # int [n]: the best SKU whatever the threshold (-1 for an unusable crop)
    second: np.ndarray  # float [n]: the runner-up SKU's similarity (how close a look-alike came)


class Matcher:
    """References ``emb`` [m, D] (unit rows), ``owner`` [m] (SKU index of each reference), ``count`` SKUs.

    Small catalogues are searched exhaustively. From SHORTLIST_ABOVE SKUs on, each crop is first compared
    with every SKU's centroid (the normalised mean of its references) and the references of the SHORTLIST
    nearest SKUs (of any crop in the batch) are compared exactly; the others get their centroid similarity
    (far below the shortlisted ones)."""

    SHORTLIST = 16
    SHORTLIST_ABOVE = 64

    def __init__(self, emb: np.ndarray, owner: np.ndarray, count: int) -> None:
        dim = emb.shape[-1] if emb.ndim == 2 else 1
        owner = np.asarray(owner, np.int64).reshape(-1)
        order = np.argsort(owner, kind="stable")
        sorted_already = bool(np.all(order == np.arange(len(order))))
        self.owner = owner if sorted_already else owner[order]
        rows = np.asarray(emb).reshape(-1, dim)
        self.emb = (rows if sorted_already else rows[order]).astype(np.float32, copy=False)
        self.count = int(count)
        self.dim = dim
        if len(self.owner):
            self._starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
        else:
            self._starts = np.zeros(0, np.int64)
        self._ends = (
            np.r_[self._starts[1:], len(self.owner)].astype(np.int64) if len(self.owner) else self._starts
        )
        self._sku_of_group = self.owner[self._starts] if len(self.owner) else np.zeros(0, np.int64)
        self._starts_of = np.zeros(self.count, np.int64)  # each SKU's rows: [start, end)
        self._ends_of = np.zeros(self.count, np.int64)
        self._starts_of[self._sku_of_group] = self._starts
        self._ends_of[self._sku_of_group] = self._ends
        self._exhaustive = self.count <= self.SHORTLIST_ABOVE
        self.centroids = np.zeros((self.count, dim), np.float32)
        if len(self.owner):
            sums = np.add.reduceat(self.emb, self._starts, axis=0)
            norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
            self.centroids[self._sku_of_group] = sums / norms

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """[n, count] best similarity of each query to each SKU (-1 for SKUs with no reference)."""
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        n = len(queries)
        out = np.full((n, self.count), -1.0, np.float32)
        if n == 0 or len(self.owner) == 0:
            return out
        if self._exhaustive:
            sims = queries @ self.emb.T  # [n, m], references grouped by SKU
            out[:, self._sku_of_group] = np.maximum.reduceat(sims, self._starts, axis=1)
            return out
        has_refs = np.zeros(self.count, bool)
        has_refs[self._sku_of_group] = True
        coarse = queries @ self.centroids.T
        coarse[:, ~has_refs] = -1.0
        out[:] = coarse
        top = np.argpartition(-coarse, min(self.SHORTLIST, self.count - 1), axis=1)[:, : self.SHORTLIST]
        # one exact pass over the references of every SKU shortlisted for any crop of this batch (a shelf
        # repeats its products, so the union stays small)
        skus = np.unique(top)
        skus = skus[has_refs[skus]]
        starts, ends = self._starts_of[skus], self._ends_of[skus]
        lengths = ends - starts
        rows = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
        sims = queries @ self.emb[rows].T
        exact = np.maximum.reduceat(sims, np.cumsum(np.r_[0, lengths[:-1]]), axis=1)
        out[:, skus] = exact
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

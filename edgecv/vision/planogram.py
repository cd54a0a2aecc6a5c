"""Planograms: what a shelf should hold, and how a shelf photo scores against it.

Accepted shapes (the image sidecar's ``planogram`` key, or ``options["planogram"]``):

    [{"row": 0, "items": [{"sku": "Fizzo Cola 330ml", "facings": 4}, ...]}, ...]
    {"rows": [ ...same... ]}

Rows are counted from the top (0 = top shelf); ``shelfPosition`` in a row is accepted and ignored.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from edgecv.errors import PipelineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    row: int
    sku: str
    facings: int


def parse(raw: Any) -> list[Slot]:
    """The planogram's slots, or PipelineError naming what is wrong."""
    rows = raw.get("rows") if isinstance(raw, dict) else raw
    if not isinstance(rows, list):
        raise PipelineError("planogram: expected a list of rows or {'rows': [...]}")
    slots: list[Slot] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("items", []), list):
            raise PipelineError(f"planogram row {i}: expected {{'row': N, 'items': [...]}}")
        index = int(row.get("row", i))
        for item in row.get("items", []):
            try:
                slots.append(Slot(index, str(item["sku"]), int(item.get("facings", 1))))
            except (KeyError, TypeError, ValueError):
                raise PipelineError(f"planogram row {index}: bad item {item!r}") from None
    return slots


def score(slots: list[Slot], facings_by_row: list[Counter]) -> tuple[float, list[str]]:
    """(complianceScore, outOfStock) against a planogram.

    ``facings_by_row[r]`` counts visible products per SKU on detected row ``r`` (0 = top). A slot's visible
    facings are those of the same SKU on the matched row; the score is Σ min(visible, planned) / Σ planned
    (1.0 for an empty planogram). outOfStock: planogram SKUs seen nowhere in the image, sorted.
    """
    mapping = _match(slots, facings_by_row)
    planned = sum(s.facings for s in slots)
    present = 0
    for s in slots:
        r = mapping.get(s.row)
        present += min(s.facings, facings_by_row[r][s.sku] if r is not None else 0)
    anywhere = Counter()
    for c in facings_by_row:
        anywhere.update(c)
    out = sorted({s.sku for s in slots if anywhere[s.sku] == 0})
    return (round(present / planned, 4) if planned else 1.0), out


def _match(slots: list[Slot], facings_by_row: list[Counter]) -> dict[int, int]:
    wanted = sorted({s.row for s in slots})
    n = len(facings_by_row)
    if len(wanted) == n:
        return {p: i for i, p in enumerate(wanted)}
    log.debug("planogram has %d rows, the photo %d: matching rows by SKU overlap", len(wanted), n)
    mapping: dict[int, int] = {}
    for p in wanted:
        want = Counter({s.sku: s.facings for s in slots if s.row == p})
        best = max(range(n), key=lambda r: sum((want & facings_by_row[r]).values()), default=None)
        if best is not None:
            mapping[p] = best
    return mapping

"""shelf-detection-v2: products and price tags → facings, shelf position, prices, stock and compliance.

Definitions live in docs/results.md. In short: rows come from the products' bottom edges, a facing run is
a maximal left-to-right sequence of one SKU in a row, a run's price is read from the tag whose slot holds
it, and compliance is scored against a planogram when one is given (sidecar ``planogram`` or
``options["planogram"]``), otherwise from the tags: the share of tagged slots with their product present.

With a product catalogue (``edgecv.catalog``; ``engines.catalog`` holds at least one SKU) the detector's
own class names are not used: every product box (one per product, class-agnostic) is named by matching its
pixels against the catalogue's reference images; runs, ``uniqueSKUs``, planograms and ``outOfStock`` count
catalogue SKU ids, and a run's tag price is compared with the SKU's ``expectedPrice``.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter

import numpy as np

from edgecv.errors import EdgecvError, PipelineError
from edgecv.vision import PipelineEngines, PipelineInput, ocr, planogram
from edgecv.vision.common import bounding_boxes, label_of
from edgecv.vision.rows import ShelfLayout, layout, shelf_position

log = logging.getLogger(__name__)

TAG_LABEL = "price-tag"
# the detector's class for a pack it finds but cannot name (shelf-detection-v2 2.2: any pack that is not one
# of the demo SKUs); without a catalogue such boxes keep this name and count as unknown, not as one SKU
PRODUCT_LABEL = "product"


def run(inp: PipelineInput) -> dict:
    det = inp.detections
    tag_label = inp.options.get("tag_label", TAG_LABEL)
    classes, class_of = np.unique(np.asarray(det.class_id, np.int64), return_inverse=True)
    class_names = [label_of(inp.labels, c) for c in classes.tolist()]  # one look-up per class, not per box
    is_tag = np.array([n == tag_label for n in class_names], bool)[class_of.reshape(-1)]
    prod_idx, tag_idx = np.flatnonzero(~is_tag), np.flatnonzero(is_tag)
    catalogue = _catalogue(inp)
    tags = det.xyxy[tag_idx]
    if catalogue is not None:
        # one box per product (the detector's SKU guess no longer matters), each named by the catalogue
        index, threshold = catalogue
        rec = index.recognise(inp.image, det.xyxy[prod_idx], threshold, det.confidence[prod_idx])
        prod_idx = prod_idx[rec.keep]
        products = det.xyxy[prod_idx]
        prod_names = rec.name
        # what runs, planograms and uniqueSKUs count: the SKU id ("unknown product" for an unknown one)
        keys = [sku if sku is not None else name for sku, name in zip(rec.sku, rec.name, strict=True)]
        unknown = {name for sku, name in zip(rec.sku, rec.name, strict=True) if sku is None}
        shelf = layout(products, rec.group, tags)
        extra = [{"sku": sku, "recognitionScore": sc} for sku, sc in zip(rec.sku, rec.score, strict=True)]
    else:
        products = det.xyxy[prod_idx]
        prod_names = [class_names[k] for k in class_of.reshape(-1)[prod_idx].tolist()]
        keys = prod_names
        index, unknown = None, {inp.options.get("product_label", PRODUCT_LABEL)} & set(prod_names)
        shelf = layout(products, det.class_id[prod_idx], tags)
        extra = [{} for _ in prod_idx]

    read = inp.options.get("ocr", True) and inp.image is not None and inp.image.size > 0
    prices = _read_prices(inp, tags, shelf) if read else [None] * len(tags)
    price_check = _compare_prices(index, shelf, keys, prices, extra) if index is not None else None
    detections = _detections(inp, prod_idx, prod_names, shelf, prices, extra)

    by_row = [Counter() for _ in range(shelf.row_count)]
    for key, r in zip(keys, shelf.row_of_product.tolist(), strict=True):
        by_row[r][key] += 1
    raw_plan = inp.options.get("planogram") or inp.metadata.get("planogram")
    if raw_plan:
        slots = planogram.parse(raw_plan)
        if index is not None:  # a planogram may list catalogue names or ids; count ids
            slots = [planogram.Slot(s.row, index.by_name.get(s.sku, s.sku), s.facings) for s in slots]
        score, out_of_stock = planogram.score(slots, by_row)
        basis = "planogram"
    else:
        read_names = read and inp.options.get("read_tag_names", False)  # opt-in: PP-OCR, ~8 ms per tag
        empty_skus = _empty_tag_skus(inp, tags, shelf) if read_names else []
        present = sum(1 for r in shelf.runs if r.tag is not None)
        tagged = present + len(shelf.empty_tags)
        score = round(present / tagged, 4) if tagged else 1.0
        seen = set(prod_names)
        out_of_stock = sorted({s for s in empty_skus if s and s not in seen})
        basis = "priceTags"
    summary = {
        "totalProducts": len(prod_idx),
        "uniqueSKUs": len(set(keys) - unknown),
        "outOfStock": out_of_stock,
        "complianceScore": score,
        "complianceBasis": basis,
        "shelfRows": shelf.row_count,
        "priceTags": len(tag_idx),
        "emptyTagSlots": len(shelf.empty_tags),
    }
    out = {"detections": detections, "summary": summary}
    if index is not None or unknown:
        summary["unknownProducts"] = sum(1 for k in keys if k in unknown)
    if index is not None:
        summary.update(price_check or {})
        out["catalog"] = index.describe()
    return out


def _catalogue(inp: PipelineInput):
    """(CatalogIndex, threshold) when a catalogue with SKUs names the products, else None."""
    if not inp.options.get("catalog", True) or inp.engines is None or inp.image is None or inp.image.size == 0:
        return None
    try:
        live = inp.engines.catalog.get()
        index = live.get()
    except EdgecvError as exc:
        log.warning("catalogue not used: %s", exc)
        return None
    return (index, live.threshold) if index is not None else None


def _as_price(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _compare_prices(index, shelf: ShelfLayout, keys: list[str], prices, extra: list[dict]) -> dict:
    """Each run's tag price against its SKU's ``expectedPrice``: per-product ``expectedPrice`` and
    ``priceMatch`` (None when the tag was not read), and the summary's ``priceCompliance`` (share of the runs
    with both prices that match; None when none could be compared) and ``mispricedSKUs``."""
    compared = matched = 0
    mispriced: set[str] = set()
    for run in shelf.runs:
        key = keys[run.members[0]]
        sku = index.skus[index.by_id[key]] if key in index.by_id else None
        expected = sku.expected_price if sku is not None else None
        if expected is None:
            continue
        read = _as_price(prices[run.tag]) if run.tag is not None else None
        match = None if read is None else abs(read - expected) < 0.005
        for m in run.members:
            extra[m].update({"expectedPrice": expected, "priceMatch": match})
        if match is not None:
            compared += 1
            matched += int(match)
            if not match:
                mispriced.add(key)
    return {
        "priceCompliance": round(matched / compared, 4) if compared else None,
        "mispricedSKUs": sorted(mispriced),
    }


def _engines(inp: PipelineInput) -> PipelineEngines:
    if inp.engines is None:
        raise PipelineError("no text engines were given to the pipeline")
    return inp.engines


def _read_prices(inp: PipelineInput, tags: np.ndarray, shelf: ShelfLayout) -> list[str | None]:
    """Prices of the tags that belong to a run (the others label no product)."""
    wanted = sorted({r.tag for r in shelf.runs if r.tag is not None})
    out: list[str | None] = [None] * len(tags)
    if not wanted:
        return out
    try:
        reader = _engines(inp).prices.get()
        for t, price in zip(wanted, ocr.read_prices(inp.image, tags[wanted], reader), strict=True):
            out[t] = price
    except EdgecvError as exc:
        log.warning("price tags not read: %s", exc)
    return out


def _empty_tag_skus(inp: PipelineInput, tags: np.ndarray, shelf: ShelfLayout) -> list[str]:
    """SKU named on each empty-slot tag ('' when the name line is unreadable or matches no label)."""
    if not shelf.empty_tags:
        return []
    try:
        texts = ocr.read_names(inp.image, tags[shelf.empty_tags], _engines(inp).text.get())
    except EdgecvError as exc:
        log.warning("empty-slot tags not read: %s", exc)
        return []
    catalogue = {n.upper(): n for n in inp.labels if n != inp.options.get("tag_label", TAG_LABEL)}
    found = []
    for text in texts:
        match = difflib.get_close_matches(text.upper(), list(catalogue), n=1, cutoff=0.6)
        found.append(catalogue[match[0]] if match else "")
    return found


def _detections(
    inp: PipelineInput, prod_idx: np.ndarray, names: list[str], shelf: ShelfLayout, prices, extra: list[dict]
) -> list[dict]:
    """Product detections, top row first, each row left to right; ``names[m]`` is product m's label and
    ``extra[m]`` its own attributes (catalogue SKU id, recognition score, price match)."""
    w, h = inp.image_size
    det = inp.detections
    order: list[int] = []
    attrs: list[dict] = []
    for run in sorted(shelf.runs, key=lambda r: r.row):
        a = {
            "facings": run.facings,
            "shelfPosition": shelf_position(run.row, shelf.row_count),
            "priceTag": prices[run.tag] if run.tag is not None else None,
        }
        order += run.members
        attrs += [{**a, **extra[m]} for m in run.members]
    if not order:
        return []
    rows = np.asarray(prod_idx)[order]
    boxes = bounding_boxes(det.xyxy[rows], w, h)
    confidence = np.asarray(det.confidence)[rows].tolist()
    return [
        {
            "objectName": names[m],
            "confidence": round(c, 4),
            "boundingBox": box,
            "attributes": dict(a),
        }
        for m, c, box, a in zip(order, confidence, boxes, attrs, strict=True)
    ]

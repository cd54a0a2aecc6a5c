"""How well the catalogue names products it was never trained on (issue 18's figures).

    python scripts/eval_catalog.py [--style heldout|generator] [--skus 60] [--shelves 40] [--k 1 5]
                                   [--threshold T] [--seed S]

``heldout`` (the figures that count): SKUs from scripts/heldout/catalog_skus.py, drawn apart from the
training generator; the catalogue holds ``--skus`` of them; the shelves also carry distractor SKUs that are
not in the catalogue (20 % of products). References: k = 1 is the pack shot on white; k = 5 adds four
crops of the SKU from other shelf photos. Queries are the products of the test shelves, each box jittered
by up to 4 % per side as a detector's would be.

``generator``: the training generator's 24 SKUs (scripts/datagen/shelves.py), a third left out of the
catalogue as unknowns; prints a threshold sweep. The default threshold (edgecv.catalog.matching) was
chosen here, never on the held-out style.

Reports top-1 on catalogued products (the best SKU whatever the threshold), the share named correctly at
the threshold, unknown-product precision/recall/F1, and the recognition time per crop, with the CPU flags.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgecv.catalog import features  # noqa: E402
from edgecv.catalog.matching import DEFAULT_THRESHOLD, Matcher  # noqa: E402
from edgecv.threads import cpu_flags_text as cpu_flags  # noqa: E402


def jitter(rng: np.random.Generator, boxes: np.ndarray, amount: float = 0.04) -> np.ndarray:
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    d = rng.uniform(-amount, amount, (len(boxes), 4)) * np.concatenate([w, h, w, h], 1)
    return boxes + d


class Source:
    """A style of SKUs: ``pack_shot(i)`` and ``shelf(rng, ids)`` -> (image, boxes, sku ids)."""

    def __init__(self, style: str) -> None:
        self.style = style
        if style == "heldout":
            from heldout import catalog_skus as C

            self.C = C
        else:
            from datagen import shelves as S

            self.S = S

    def pack_shot(self, sku: int) -> np.ndarray:
        if self.style == "heldout":
            return self.C.pack_shot(self.C.design(sku))
        img, alpha, _ = self.S.sprite(sku)
        out = img * alpha + 250.0 * (1 - alpha)
        return np.pad(
            np.clip(out, 0, 255).astype(np.uint8), ((12, 12), (12, 12), (0, 0)), constant_values=250
        )

    def shelf(self, rng: np.random.Generator, ids: list[int]):
        if self.style == "heldout":
            img, boxes, which = self.C.shelf(rng, [self.C.design(i) for i in ids])
            return img, boxes, np.asarray(ids)[which]
        sample = self.S.make(rng, 1280, 720)
        ok, enc = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, sample.quality])
        img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
        rows = [(c, b) for c, b in sample.boxes if c != self.S.TAG_CLASS]
        return (
            img,
            np.array([b for _, b in rows], float).reshape(-1, 4),
            np.array([c for c, _ in rows], np.int64),
        )


def evaluate(args, k: int) -> dict:
    src = Source(args.style)
    rng = np.random.default_rng(args.seed)
    if args.style == "heldout":
        known = list(range(args.skus))
        unknown = list(range(10_000, 10_000 + max(4, args.skus // 4)))
    else:
        order = rng.permutation(24).tolist()
        known, unknown = sorted(order[:16]), sorted(order[16:])
    # references: the pack shot, then crops from shelves made only for references
    shots = {
        s: features.reference_views(src.pack_shot(s))
        if args.views
        else features.describe(src.pack_shot(s))[None]
        for s in known
    }
    refs: dict[int, list[np.ndarray]] = {s: [shots[s][0]] for s in known}
    tries = 0
    while k > 1 and min(len(v) for v in refs.values()) < k and tries < 400:
        tries += 1
        need = [s for s in known if len(refs[s]) < k]
        pick = list(rng.choice(need, min(len(need), 12), replace=False)) if args.style == "heldout" else known
        img, boxes, ids = src.shelf(rng, [int(s) for s in pick])
        emb, ok = features.embed(img, jitter(rng, boxes))
        for e, good, s in zip(emb, ok, ids.tolist(), strict=True):
            if good and s in refs and len(refs[s]) < k:
                refs[s].append(e)
    for s in known:  # the pack shot's extra views (as given, it is already in)
        refs[s] += list(shots[s][1:])
    emb = np.concatenate([np.stack(v) for v in refs.values()])
    owner = np.concatenate([[i] * len(v) for i, v in enumerate(refs.values())])
    matcher = Matcher(emb, owner, len(refs))
    index_of = {s: i for i, s in enumerate(refs)}
    truth, scores, best, elapsed, crops = [], [], [], 0.0, 0
    for _ in range(args.shelves):
        if args.style == "heldout":
            n_known = 16
            pick = list(rng.choice(known, n_known, replace=False)) + list(
                rng.choice(unknown, 4, replace=False)
            )
            img, boxes, ids = src.shelf(rng, [int(s) for s in pick])
        else:
            img, boxes, ids = src.shelf(rng, [])
        q = jitter(rng, boxes)
        t0 = time.perf_counter()
        e, ok = features.embed(img, q)
        m = matcher.match(e, 0.0, ok)
        elapsed += time.perf_counter() - t0
        crops += len(q)
        truth += [index_of.get(int(s), -1) for s in ids]
        scores += m.score.tolist()
        best += m.best.tolist()
    truth, scores, best = np.array(truth), np.array(scores), np.array(best)
    is_known = truth >= 0
    if args.confusions:
        from collections import Counter

        names = list(refs)
        wrong = Counter((names[t], names[b]) for t, b in zip(truth, best, strict=True) if t >= 0 and b != t)
        print(f"  k={k} most confused (truth -> named): {wrong.most_common(8)}")
    out = {
        "k": k,
        "catalogued": int(is_known.sum()),
        "distractors": int((~is_known).sum()),
        "top1": float((best[is_known] == truth[is_known]).mean()),
        "ms_per_crop": 1e3 * elapsed / max(crops, 1),
    }
    for t in sorted({args.threshold, *([0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9] if args.sweep else [])}):
        named = scores >= t
        tp = int((~named & ~is_known).sum())
        prec = tp / max(int((~named).sum()), 1)
        rec = tp / max(int((~is_known).sum()), 1)
        f1 = 2 * prec * rec / max(prec + rec, 1e-9)
        correct = float((named[is_known] & (best[is_known] == truth[is_known])).mean())
        out[t] = {
            "named_correctly": correct,
            "unknown_precision": prec,
            "unknown_recall": rec,
            "unknown_f1": f1,
        }
    return out


def end_to_end(args) -> None:
    """Held-out shelves through the shelf detector and the catalogue, as a job would run them: of the
    catalogued products on the shelf, how many get a detector box (IoU >= 0.5) named right; how many of the
    named boxes are right; and how many distractors are called unknown (k = 1 references)."""
    import tempfile

    from heldout import catalog_skus as C

    from edgecv.catalog.index import build
    from edgecv.config import Config
    from edgecv.detections import box_iou
    from edgecv.work.pool import DetectorPool

    rng = np.random.default_rng(args.seed)
    known = list(range(args.skus))
    unknown = list(range(10_000, 10_000 + max(4, args.skus // 4)))
    detector = DetectorPool(Config()).get("shelf-detection-v2")
    tag = detector.package.labels.index("price-tag")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalog"
        for s in known:
            (root / f"sku-{s:05d}").mkdir(parents=True)
            cv2.imwrite(str(root / f"sku-{s:05d}" / "pack.png"), C.pack_shot(C.design(s)))
        index = build(root)
        found = right = named = named_right = strangers = strangers_unknown = total = 0
        for _ in range(args.shelves):
            pick = list(rng.choice(known, 16, replace=False)) + list(rng.choice(unknown, 4, replace=False))
            img, boxes, which = C.shelf(rng, [C.design(int(s)) for s in pick])
            truth = [int(pick[w]) for w in which.tolist()]
            det = detector.detect(img)
            prod = det.class_id != tag
            rec = index.recognise(img, det.xyxy[prod], DEFAULT_THRESHOLD, det.confidence[prod])
            kept = det.xyxy[prod][rec.keep]
            iou = box_iou(boxes[:, None, :], kept[None, :, :]) if len(kept) else np.zeros((len(boxes), 0))
            for t, s in enumerate(truth):
                j = int(np.argmax(iou[t])) if iou.shape[1] else -1
                hit = j >= 0 and iou[t, j] >= 0.5
                if s < 10_000:
                    total += 1
                    found += hit
                    right += hit and rec.sku[j] == f"sku-{s:05d}"
                else:
                    strangers += 1
                    strangers_unknown += hit and rec.sku[j] is None
            named += sum(k is not None for k in rec.sku)
            for j, k in enumerate(rec.sku):
                if k is None:
                    continue
                t = int(np.argmax(iou[:, j])) if len(boxes) else -1
                named_right += t >= 0 and iou[t, j] >= 0.5 and k == f"sku-{truth[t]:05d}"
    print(
        f"end to end, {args.shelves} held-out shelves, {args.skus} SKUs (k = 1), shelf detector + catalogue: "
        f"{found / total:.3f} of {total} catalogued products get a box (IoU >= 0.5), {right / total:.3f} a box "
        f"named right; {named_right / max(named, 1):.3f} of {named} named boxes are right; "
        f"{strangers_unknown / max(strangers, 1):.3f} of {strangers} distractors get a box called unknown"
    )


def bench_scale(args) -> None:
    """A catalogue of ``--scale`` held-out SKUs with 5 references each, written to a temp folder: cold
    build, cached load, memory of the index, and recognition time per shelf photo against the shelf
    detector's time on the same photo (both median, same process)."""
    import tempfile
    import tracemalloc

    from heldout import catalog_skus as C

    from edgecv.catalog.index import build
    from edgecv.config import Config
    from edgecv.work.pool import DetectorPool

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "catalog", Path(tmp) / "cache"
        for s in range(args.scale):
            folder = root / f"sku-{s:05d}"
            folder.mkdir(parents=True)
            shot = C.pack_shot(C.design(s), height=160)
            cv2.imwrite(str(folder / "pack.png"), shot)
            for k in range(4):  # four more looks: another exposure, a slight crop, softer
                v = np.clip(shot.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
                h, w = v.shape[:2]
                d = int(rng.integers(0, 6))
                v = cv2.GaussianBlur(v[d : h - d, d : w - d], (0, 0), 0.5 + 0.3 * k)
                cv2.imwrite(str(folder / f"look-{k}.jpg"), v, [cv2.IMWRITE_JPEG_QUALITY, 85])
        t0 = time.perf_counter()
        index = build(root, cache)
        cold = time.perf_counter() - t0
        tracemalloc.start()
        t0 = time.perf_counter()
        index = build(root, cache)
        warm = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{args.scale} SKUs, {len(index.emb)} reference embeddings: cold build {cold:.1f} s; "
            f"load from cache {warm * 1e3:.0f} ms; index {index.emb.nbytes / 2**20:.1f} MiB "
            f"(peak Python allocation while loading {peak / 2**20:.1f} MiB)"
        )
        detector = DetectorPool(Config()).get("shelf-detection-v2")
        det_t, rec_t, crops, right = [], [], [], []
        ids = list(range(min(args.scale, 200)))
        for _ in range(args.shelves):
            pick = [int(s) for s in rng.choice(ids, 16, replace=False)]
            img, boxes, which = C.shelf(rng, [C.design(s) for s in pick])
            t0 = time.perf_counter()
            detector.detect(img)
            det_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec = index.recognise(img, jitter(rng, boxes), DEFAULT_THRESHOLD)
            rec_t.append(time.perf_counter() - t0)
            crops.append(len(boxes))
            right += [sku == f"sku-{pick[w]:05d}" for sku, w in zip(rec.sku, which.tolist(), strict=True)]
        d, r = np.median(det_t[1:]) * 1e3, np.median(rec_t[1:]) * 1e3
        print(
            f"per 1280x720 shelf photo ({np.mean(crops):.0f} products): recognition {r:.2f} ms, "
            f"detector {d:.2f} ms: recognition = {100 * r / d:.0f} % of the detector's time; "
            f"named correctly at the default threshold: {np.mean(right):.3f} of {len(right)}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", choices=["heldout", "generator"], default="heldout")
    p.add_argument("--skus", type=int, default=60)
    p.add_argument("--shelves", type=int, default=40)
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--sweep", action="store_true", help="also print thresholds 0.6 .. 0.9")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confusions", action="store_true", help="print the most frequent confusions")
    p.add_argument(
        "--no-views", dest="views", action="store_false", help="references as given, no extra views"
    )
    p.add_argument("--end-to-end", action="store_true", help="held-out shelves through the shelf detector too")
    p.add_argument("--scale", type=int, default=0, help="time a catalogue of this many SKUs (k = 5) instead")
    args = p.parse_args(argv)
    if args.end_to_end:
        print(f"catalogue end to end; CPU flags: {cpu_flags()}")
        end_to_end(args)
        return 0
    if args.scale:
        print(f"catalogue at scale; CPU flags: {cpu_flags()}")
        bench_scale(args)
        return 0
    print(f"catalogue recognition, style {args.style}; CPU flags: {cpu_flags()}")
    for k in args.k:
        r = evaluate(args, k)
        print(
            f"k={k}: top-1 {r['top1']:.3f} on {r['catalogued']} catalogued products "
            f"({r['distractors']} distractors); {r['ms_per_crop']:.3f} ms per crop"
        )
        for t, v in r.items():
            if isinstance(t, float):
                print(
                    f"  threshold {t:.2f}: named correctly {v['named_correctly']:.3f}; unknown product "
                    f"precision {v['unknown_precision']:.3f} recall {v['unknown_recall']:.3f} F1 {v['unknown_f1']:.3f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

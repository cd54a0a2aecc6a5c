#!/usr/bin/env python3
"""Generate a deterministic synthetic detection dataset.

    python scripts/generate.py {shelves|facades|damage} --out DIR --count N --seed S [--size 1280x720]

Writes DIR/images/*.jpg, DIR/labels/*.txt (YOLO), DIR/annotations.json (COCO), DIR/names.txt,
DIR/truth.jsonl and DIR/data.yaml. Image i depends only on (domain, seed, i). See docs/datasets.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import DOMAINS, domain_module  # noqa: E402
from datagen import common as C  # noqa: E402


def stem_for(domain: str, seed: int, index: int) -> str:
    return f"{domain}_{seed}_{index:06d}"


def render_one(domain: str, seed: int, index: int, width: int, height: int):
    """Everything image ``index`` writes: (stem, jpeg bytes, w, h, boxes, truth)."""
    mod = domain_module(domain)
    rng = C.image_rng(seed, index, domain)
    sample = mod.make(rng, width, height)
    stem = stem_for(domain, seed, index)
    truth = {"image": f"{stem}.jpg", "index": index, "seed": seed, **sample.truth}
    h, w = sample.image.shape[:2]
    return stem, C.encode_jpeg(sample.image, sample.quality), w, h, sample.boxes, truth


def _render_args(args):
    return render_one(*args)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError("width and height must be between 64 and 8192")
    return w, h


def generate(
    domain: str, out: Path, count: int, seed: int, size=(1280, 720), workers: int = 1, progress=False
) -> float:
    """Write the dataset; returns images per second."""
    mod = domain_module(domain)
    writer = C.DatasetWriter(out, domain, list(mod.NAMES))
    jobs = [(domain, seed, i, size[0], size[1]) for i in range(count)]
    t0 = time.perf_counter()
    try:
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(workers) as pool:
                results = pool.imap(_render_args, jobs, chunksize=4)
                for i, res in enumerate(results):
                    writer.add(i, *res)
                    if progress and (i + 1) % 100 == 0:
                        print(f"{i + 1}/{count}", file=sys.stderr)
        else:
            for i, job in enumerate(jobs):
                writer.add(i, *render_one(*job))
                if progress and (i + 1) % 100 == 0:
                    print(f"{i + 1}/{count}", file=sys.stderr)
    finally:
        writer.close()
    dt = time.perf_counter() - t0
    return count / dt if dt > 0 else float("inf")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("domain", choices=DOMAINS)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--count", required=True, type=int)
    ap.add_argument("--seed", default=0, type=int)
    ap.add_argument("--size", default=(1280, 720), type=parse_size, help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--workers", default=1, type=int, help="processes (output is identical for any value)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.count < 0:
        ap.error("--count must be >= 0")
    rate = generate(a.domain, a.out, a.count, a.seed, a.size, max(1, a.workers), progress=not a.quiet)
    if not a.quiet:
        print(f"wrote {a.count} {a.domain} images to {a.out} ({rate:.1f} images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

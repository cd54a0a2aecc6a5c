#!/usr/bin/env python3
"""Train an EdgeDet detector on a YOLO-format dataset (needs torch: pip install torch==2.13.0).

    python scripts/train_model.py --data DIR --val VALDIR --out runs/shelf --imgsz 640x384 --minutes 40

DIR holds images/, labels/ (one ``class cx cy w h`` line per box, normalised) and names.txt or data.yaml.
Writes OUT/model.pt (EMA weights + class names + input size), OUT/last.pt checkpoints and OUT/train.log.
Then export it with scripts/export_model.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgecv.training.data import Augment  # noqa: E402
from edgecv.training.loop import TrainConfig, train  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="YOLO-format training folder")
    ap.add_argument("--val", help="YOLO-format validation folder (progress checks only)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--imgsz", default="640x384", help="network input WxH, multiples of 32 (default 640x384)")
    ap.add_argument("--size", default="n", choices=["n", "s"], help="model width/depth")
    ap.add_argument(
        "--minutes", type=float, default=30, help="wall-clock training budget; the LR schedule fits it"
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true", help="train in float32 (slower; for CPUs without bf16)")
    ap.add_argument(
        "--fliplr", type=float, default=0.5, help="horizontal flip probability (0 for text-heavy classes)"
    )
    ap.add_argument("--degrees", type=float, default=5.0, help="random rotation range")
    ap.add_argument("--scale", type=float, default=0.25, help="random zoom range")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--val-every", type=float, default=10.0, help="minutes between validation passes")
    ap.add_argument("--resume", help="start from these weights (model.pt / last.pt)")
    ap.add_argument(
        "--init",
        help="start from an exported model: a package folder or its model-fp32.onnx (BatchNorm stays frozen)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reg-lo",
        type=int,
        default=1,
        help="box bins start this many strides below zero (1: thin boxes between grid rows stay exact)",
    )
    ap.add_argument(
        "--balance",
        type=float,
        default=0.0,
        help="oversample images with rare classes: weight (mean count / class count) ** BALANCE (0 = off)",
    )
    ap.add_argument(
        "--border-warp",
        type=float,
        default=0.0,
        help="probability of a perspective warp leaving black/reflected border wedges (boxes follow)",
    )
    ap.add_argument(
        "--exposure",
        type=float,
        default=0.0,
        help="probability of an exposure gain x0.5-x1.6 (clipped), on top of the HSV jitter",
    )
    ap.add_argument(
        "--grow-like",
        type=int,
        default=0,
        help="with --init and more classes in the data than the package (the data's first names being the "
        "package's): new classes start as the mean of the package's first N classes (0: off)",
    )
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(out / "train.log")],
    )
    w, h = parse_size(a.imgsz)
    cfg = TrainConfig(
        data=a.data,
        val=a.val,
        out=a.out,
        width=w,
        height=h,
        size=a.size,
        minutes=a.minutes,
        batch=a.batch,
        lr=a.lr,
        threads=a.threads,
        bf16=not a.no_bf16,
        seed=a.seed,
        limit=a.limit,
        val_every_min=a.val_every,
        resume=a.resume,
        init=str(Path(a.init) / "model-fp32.onnx") if a.init and Path(a.init).is_dir() else a.init,
        grow_like=range(a.grow_like) if a.grow_like else None,
        reg_lo=a.reg_lo,
        balance=a.balance,
        aug=Augment(
            fliplr=a.fliplr, degrees=a.degrees, scale=a.scale, border_warp=a.border_warp, exposure=a.exposure
        ),
    )
    train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

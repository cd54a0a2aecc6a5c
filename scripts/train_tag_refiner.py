"""Train the tag box refiner that ships in ``edgecv/runtime/price_ocr/`` (``tag-refine.npz``, ``refiner.json``).

    python scripts/train_tag_refiner.py --train /work/data/ocr-train /work/data/ocr-train1080 \\
        --val /work/data/ocr-val

(the folders as made in ``train_price_ocr.py``'s docstring; ~1 min of detection, ~20 s of training on
one thread). The price reader cuts its crop from a tag box; shelf-detection-v2's boxes on small tags are
off by a tenth of the tag's height at the median, and a quarter of them by more than a quarter, which
costs the reader more than the pixels do. The refiner learns where the tag's edges are from the box's
window (``edgecv.runtime.text.tag_windows``: the box and a margin, grey, standardised, the function the
pipeline uses), so the reader gets crops close to the truth boxes.

Samples: every detector tag box on the training images matched to a truth tag (IoU ≥ 0.3,
``train_price_ocr.detector_matches``), plus ``--copies`` copies of each with its edges moved at random by
``--jitter`` × the box height (so it also learns from boxes worse than the detector's usual). Target: the
truth box's four edges as fractions of the window. Model: an MLP (window pixels → ``--hidden`` ReLU → 4),
smooth-L1 loss, AdamW with a one-cycle schedule; exported as plain numpy arrays (``w1, b1, w2, b2``) run by
``edgecv.runtime.text.TagRefiner`` with two matrix products. The export is checked against torch.
Validation figures (the detector's boxes on ``--val``, edge error in units of the true tag height and IoU
with the truth, before and after) go to ``refiner.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from train_price_ocr import OUT_DIR, detector_matches, rendered_tag  # noqa: E402

from edgecv.detections import box_iou  # noqa: E402
from edgecv.runtime.text import TAG_WINDOW, TagRefiner, tag_windows  # noqa: E402


def samples(
    matches,
    size: tuple[int, int],
    copies: int,
    jitter: float,
    rng: np.random.Generator,
    rendered: int = 0,
):
    """Windows (n, h, w) float32 and targets (n, 4: the truth edges as fractions of each window), from
    ``detector_matches`` tuples (each box and ``copies`` jittered copies) and ``rendered`` rendered tags."""
    xs, ys = [], []

    def add(img: np.ndarray, boxes: np.ndarray, truth: np.ndarray) -> None:
        x, ok, win = tag_windows(img, boxes, size, TAG_WINDOW)
        wx, wy = win[:, 2] - win[:, 0], win[:, 3] - win[:, 1]
        y = np.stack(
            [
                (truth[:, 0] - win[:, 0]) / wx,
                (truth[:, 1] - win[:, 1]) / wy,
                (truth[:, 2] - win[:, 0]) / wx,
                (truth[:, 3] - win[:, 1]) / wy,
            ],
            axis=1,
        )
        xs.append(x[ok])
        ys.append(y[ok].astype(np.float32))

    for img, boxes, tboxes, _ in matches:
        h = (boxes[:, 3] - boxes[:, 1])[:, None]
        for c in range(1 + copies):
            add(img, boxes if c == 0 else boxes + rng.normal(0.0, jitter, boxes.shape) * h, tboxes)
    for _ in range(rendered):  # a generator tag on a plain patch, 9-40 px tall, the box moved at random
        patch, box, _ = rendered_tag(rng)
        loose = box + rng.normal(0.0, jitter, 4) * (box[3] - box[1])
        add(patch, loose[None], box[None])
    return np.concatenate(xs), np.concatenate(ys)


def box_figures(boxes: np.ndarray, truth: np.ndarray) -> dict:
    """Median |edge error| in true tag heights, share of edges off by > 0.25 height, median IoU; all tags
    and tags under 15 px."""
    h = truth[:, 3] - truth[:, 1]
    err = np.abs(boxes - truth) / h[:, None]
    small = h < 15
    out = {}
    for name, m in (("all", np.ones(len(h), bool)), ("under15px", small)):
        out[name] = {
            "tags": int(m.sum()),
            "medianEdgeError": round(float(np.median(err[m])), 4),
            "edgesOffOverQuarter": round(float((err[m] > 0.25).mean()), 4),
            "medianIoU": round(float(np.median(box_iou(boxes[m], truth[m]))), 4),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, nargs="+", required=True)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--size", default="16,32", help="window height,width fed to the MLP")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--copies", type=int, default=3, help="jittered copies of each detector box")
    ap.add_argument("--jitter", type=float, default=0.12, help="edge jitter, sd in box heights")
    ap.add_argument(
        "--rendered", type=int, default=20000, help="samples of rendered tags on plain patches (any scale)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    size = tuple(int(v) for v in args.size.split(","))
    xs, ys = samples(detector_matches(args.train), size, args.copies, args.jitter, rng, args.rendered)
    val = list(detector_matches([args.val]))  # detected once: the windows here, the box figures at the end
    vx, vy = samples(val, size, 0, 0.0, rng)
    print(
        f"data: {len(xs)} training windows, {len(vx)} validation tags; {time.time() - t0:.0f} s", flush=True
    )

    h, w = size
    model = nn.Sequential(nn.Flatten(), nn.Linear(h * w, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 4))
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)
    batch = 256
    steps = args.epochs * ((len(xs) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    tx, ty, tvx = torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(vx)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(tx))
        for i in range(0, len(tx), batch):
            b = perm[i : i + batch]
            loss = nn.functional.smooth_l1_loss(model(tx[b]), ty[b], beta=0.02)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            model.eval()
            with torch.no_grad():
                err = np.abs(model(tvx).numpy() - vy)
            print(
                f"epoch {epoch + 1}: val median |edge error| {np.median(err):.4f} of the window", flush=True
            )
    train_s = time.time() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tag-refine.npz"
    lin1, lin2 = model[1], model[3]
    buf = io.BytesIO()
    np.savez(
        buf,
        w1=lin1.weight.detach().numpy().T.copy(),
        b1=lin1.bias.detach().numpy(),
        w2=lin2.weight.detach().numpy().T.copy(),
        b2=lin2.bias.detach().numpy(),
    )
    path.write_bytes(buf.getvalue())
    meta = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input": {
            "height": h,
            "width": w,
            "window": list(TAG_WINDOW),
            "preprocess": "edgecv.runtime.text.tag_windows: box window, bilinear remap, grey, (x - mean) / (std + 8)",
        },
        "output": "truth tag edges x1, y1, x2, y2 as fractions of the window",
        "hidden": args.hidden,
        "trainedBy": "scripts/train_tag_refiner.py",
        "data": (
            f"shelf-detection-v2's tag boxes on {', '.join(p.name for p in args.train)} "
            f"+ {args.copies} jittered copies each (sd {args.jitter} of the box height), {args.rendered} "
            f"rendered tags on plain patches; val {args.val.name}"
        ),
        "evaluation": {"trainSeconds": round(train_s)},
    }
    (args.out / "refiner.json").write_text(json.dumps(meta, indent=2) + "\n")

    # the shipped numpy path against torch, then the figures through the shipped path
    refiner = TagRefiner(args.out)
    with torch.no_grad():
        want = model(tvx).numpy()
    (w1, b1), (w2, b2) = refiner.layers
    got = np.maximum(vx.reshape(len(vx), -1) @ w1 + b1, 0) @ w2 + b2
    diff = float(np.abs(got - want).max())
    print(f"verify: numpy vs torch max |diff| {diff:.2e}", flush=True)
    if diff > 1e-4:
        raise SystemExit("exported refiner does not match the torch model")
    meta["evaluation"].update(_val_figures(refiner, val))
    (args.out / "refiner.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta["evaluation"], indent=2), flush=True)
    print(f"exported {path} ({path.stat().st_size / 1024:.0f} KiB); {time.time() - t0:.0f} s", flush=True)


def _val_figures(refiner: TagRefiner, val: list) -> dict:
    """The detector's boxes on the validation images (``detector_matches`` tuples) against the truth,
    before and after refining."""
    det, ref, truth = [], [], []
    for img, boxes, tboxes, _ in val:
        det.append(boxes)
        ref.append(refiner.refine(img, boxes))
        truth.append(tboxes)
    det, ref, truth = np.concatenate(det), np.concatenate(ref), np.concatenate(truth)
    return {"valDetectorBoxes": box_figures(det, truth), "valRefinedBoxes": box_figures(ref, truth)}


if __name__ == "__main__":
    main()

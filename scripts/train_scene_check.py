#!/usr/bin/env python3
"""Train the scene check: does an image look like a retail shelf, a building facade, a building surface
close-up, or none of these? Every shipped model names its scene; a job whose image scores low for it
completes with no detections and says so (``result.domain``, docs/api.md).

    python scripts/train_scene_check.py --out runs/scene [--grocery-store DIR] [--minutes 15]
    python scripts/train_scene_check.py --out runs/scene --export edgecv/runtime/scene

Training data (nothing downloaded; see docs/training.md, "Scene check"):
  * retail:   shelves from ``scripts/datagen`` (``shelves`` and ``shelves_wide`` alternately; fresh seeds, several sizes) and, with ``--grocery-store``, the
              in-store phone photos of the Grocery Store Dataset's classes that its licence issue allows for
              training (Fruit, Vegetables, Packages/Juice, Packages/Milk; train split only);
  * facade:   facades from ``scripts/datagen``;
  * surface:  damage close-ups from ``scripts/datagen``;
  * other:    scikit-image's bundled photos (random crops, scales, flips, colour), procedural scenes
              (noise, gradients, text pages, shapes), and in-domain images cut into shuffled tiles (the
              parts of a scene without its layout are not the scene).
Photos bundled with other packages are never used here: they are the held-out negatives of
``scripts/evaluate_model.py``. Needs torch (CPU build) and scikit-image: pip install torch==2.13.0 scikit-image
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

SCENES = ("retail", "facade", "surface", "other")
SIZE = 128  # network input, square; the whole image is resized to it (aspect not kept)
KEEP = 176  # short side of the cached images, so crops still have pixels to spare
# retail alternates the demo's shelves and the wide generator's (made-up packs, any colours, stronger camera)
GEN_DOMAINS = {"retail": ("shelves", "shelves_wide"), "facade": ("facades",), "surface": ("damage",)}
GEN_SIZES = ((1280, 720), (960, 720), (720, 960), (1024, 1024), (640, 480))
GROCERY_ALLOWED = ("Fruit", "Vegetables", "Packages/Juice", "Packages/Milk")


# ----------------------------------------------------------------------------------------------- data
def _keep(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    r = KEEP / min(h, w)
    return cv2.resize(img, (max(KEEP, round(w * r)), max(KEEP, round(h * r))), interpolation=cv2.INTER_AREA)


def synthetic(scene: str, count: int, seed: int) -> list[np.ndarray]:
    from datagen import common as C
    from datagen import domain_module

    domains = GEN_DOMAINS[scene]
    out = []
    for i in range(count):
        w, h = GEN_SIZES[i % len(GEN_SIZES)]
        domain = domains[i % len(domains)]
        sample = domain_module(domain).make(C.image_rng(seed, i, domain), w, h)
        out.append(_keep(sample.image))
    return out


def grocery(root: Path, split: str) -> list[np.ndarray]:
    out = []
    for cls in GROCERY_ALLOWED:
        for path in sorted((root / "dataset" / split / cls).rglob("*.jpg")):
            img = cv2.imread(str(path))
            if img is not None:
                out.append(_keep(img))
    return out


def skimage_photos() -> list[np.ndarray]:
    """Every photo scikit-image bundles that loads offline (a few fetch on demand and fail: skipped)."""
    import skimage.data as d

    names = (
        "astronaut",
        "brick",
        "camera",
        "cat",
        "cell",
        "chelsea",
        "clock",
        "coffee",
        "coins",
        "colorwheel",
        "grass",
        "gravel",
        "hubble_deep_field",
        "immunohistochemistry",
        "moon",
        "page",
        "retina",
        "rocket",
        "text",
        "logo",
        "horse",
        "binary_blobs",
        "checkerboard",
    )
    out = []
    for name in names:
        try:
            img = np.asarray(getattr(d, name)())
        except Exception:  # noqa: BLE001 - a photo that needs the network is skipped
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR)
        else:
            img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2BGR)
        out.append(img)
    return out


def procedural(rng: np.random.Generator) -> np.ndarray:
    """A scene that is none of the domains: noise, gradients, blobs, text, shapes, in random mixes."""
    h, w = SIZE * 2, SIZE * 2
    kind = rng.integers(5)
    if kind == 0:  # smooth noise at a random scale
        s = int(rng.integers(2, 32))
        small = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # gradient
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
        img = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8).copy()
    elif kind == 2:  # a text page: paper, ink, columns, sizes
        img = np.full((h, w, 3), rng.integers(150, 256, 3), np.uint8)
        ink = tuple(int(v) for v in rng.integers(0, 100, 3))
        cols = int(rng.integers(1, 3))
        scale = float(rng.uniform(0.3, 1.2))
        step = int(24 * scale) + int(rng.integers(2, 10))
        for c in range(cols):
            y = int(rng.integers(8, 30))
            while y < h:
                n = int(rng.integers(3, 30 // cols + 4))
                words = " ".join(
                    "".join(chr(int(v)) for v in rng.integers(97, 123, int(rng.integers(2, 9))))
                    for _ in range(max(1, n // 5))
                )
                cv2.putText(
                    img,
                    words,
                    (4 + c * w // cols, y),
                    int(rng.integers(0, 8)),
                    scale,
                    ink,
                    int(rng.integers(1, 3)),
                    cv2.LINE_AA,
                )
                y += step
    elif kind == 3:  # circles and ellipses (faces, fruit, coins look round)
        img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(int(rng.integers(3, 25))):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.ellipse(
                img,
                (int(rng.integers(w)), int(rng.integers(h))),
                (int(rng.integers(5, 80)), int(rng.integers(5, 80))),
                float(rng.uniform(0, 180)),
                0,
                360,
                c,
                -1,
                cv2.LINE_AA,
            )
    else:  # white noise under blur
        img = cv2.GaussianBlur(
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), float(rng.uniform(0.5, 4))
        )
    return img


def shuffled_tiles(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image cut into a g×g grid of tiles, shuffled and flipped: same textures, no scene."""
    g = int(rng.integers(3, 6))
    img = cv2.resize(img, (SIZE * 2, SIZE * 2))
    t = SIZE * 2 // g
    tiles = [img[i * t : (i + 1) * t, j * t : (j + 1) * t] for i in range(g) for j in range(g)]
    order = rng.permutation(len(tiles))
    rows = []
    for i in range(g):
        row = [tiles[order[i * g + j]] for j in range(g)]
        row = [cv2.flip(x, int(rng.integers(-1, 2))) if rng.random() < 0.5 else x for x in row]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def random_crop(img: np.ndarray, rng: np.random.Generator, min_area: float) -> np.ndarray:
    h, w = img.shape[:2]
    area = rng.uniform(min_area, 1.0) * h * w
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.7)))
    cw = int(min(w, round(math.sqrt(area * aspect))))
    ch = int(min(h, round(math.sqrt(area / aspect))))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img[y : y + ch, x : x + cw]


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera and light: exposure, colour cast, grey, blur, noise, JPEG, slight rotation/keystone."""
    img = img.astype(np.float32)
    img *= rng.uniform(0.5, 1.6)
    img *= rng.uniform(0.85, 1.15, 3)[None, None, :]
    img += rng.uniform(-20, 20)
    if rng.random() < 0.15:
        img[:] = img.mean(axis=2, keepdims=True)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # colour is not what makes a scene: permute channels or turn the hue
        img = img[..., rng.permutation(3)].copy()
    elif rng.random() < 0.3:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(rng.integers(0, 180))) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 2.0)))
    if rng.random() < 0.3:
        img = np.clip(img + rng.normal(0, rng.uniform(2, 12), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        h, w = img.shape[:2]
        d = rng.uniform(-0.12, 0.12, (4, 2)) * [w, h]
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        m = cv2.getPerspectiveTransform(src, (src + d).astype(np.float32))
        img = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.4:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def to_input(img: np.ndarray) -> np.ndarray:
    """What the runtime does: resize the whole BGR image to SIZE×SIZE (INTER_AREA)."""
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


class Sampler:
    """Balanced draws: each scene equally often; 'other' mixes photos, procedural scenes and tiles."""

    def __init__(
        self, pools: dict[str, list[np.ndarray]], real: list[np.ndarray], photos: list[np.ndarray], seed: int
    ) -> None:
        self.pools, self.real, self.photos = pools, real, photos
        self.rng = np.random.default_rng(seed)

    def one(self, label: int) -> np.ndarray:
        rng = self.rng
        scene = SCENES[label]
        if scene != "other":
            pool = self.real if scene == "retail" and self.real and rng.random() < 0.5 else self.pools[scene]
            img = random_crop(pool[rng.integers(len(pool))], rng, 0.45)
        else:
            r = rng.random()
            if r < 0.4:
                img = random_crop(self.photos[rng.integers(len(self.photos))], rng, 0.05)
            elif r < 0.5:
                img = self.mosaic(rng)
            elif r < 0.75:
                img = procedural(rng)
            else:
                pool = self.pools[SCENES[int(rng.integers(3))]]
                img = shuffled_tiles(pool[rng.integers(len(pool))], rng)
        if rng.random() < 0.5:
            img = cv2.flip(img, 1)
        return to_input(photometric(img, rng))

    def mosaic(self, rng: np.random.Generator) -> np.ndarray:
        """Two to four photo crops side by side: a photo of several things is still no scene of ours."""
        tiles = [
            cv2.resize(random_crop(self.photos[rng.integers(len(self.photos))], rng, 0.05), (SIZE, SIZE))
            for _ in range(4)
        ]
        if rng.random() < 0.5:
            return np.concatenate(tiles[:2], axis=int(rng.integers(2)))
        return np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = self.rng.integers(0, len(SCENES), n)
        return np.stack([self.one(int(c)) for c in labels]), labels


# ---------------------------------------------------------------------------------------------- model
def build_model():
    import torch.nn as nn

    def block(cin, cout, stride):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )

    return nn.Sequential(
        block(3, 16, 2),
        block(16, 32, 2),
        block(32, 32, 1),
        block(32, 64, 2),
        block(64, 64, 1),
        block(64, 96, 2),
        block(96, 96, 1),
        block(96, 128, 2),
        block(128, 128, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, len(SCENES)),
    )


def tensor(batch_bgr: np.ndarray):
    import torch

    rgb = batch_bgr[..., ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))


class Wrapped:
    """Export wrapper: u8-range BGR NHWC float in → softmax probabilities out (no preprocessing left to
    the caller but the resize)."""

    @staticmethod
    def build(net):
        import torch

        class _W(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):  # x: [N, SIZE, SIZE, 3] BGR 0..255 float
                x = x.flip(-1).permute(0, 3, 1, 2) / 255.0
                return torch.softmax(self.net(x), dim=1)

        return _W(net).eval()


def train(args) -> Path:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    pools = {
        s: synthetic(s, args.per_domain, args.seed + 17 * k)
        for k, s in enumerate(("retail", "facade", "surface"))
    }
    real = grocery(args.grocery_store, "train") if args.grocery_store else []
    photos = skimage_photos()
    print(
        f"data: {', '.join(f'{k} {len(v)}' for k, v in pools.items())}, real retail {len(real)}, "
        f"photos {len(photos)} ({time.time() - t0:.0f} s)",
        flush=True,
    )
    sampler = Sampler(pools, real, photos, args.seed)
    net = build_model()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    budget = args.minutes * 60
    start, step, seen = time.time(), 0, 0
    losses = []
    while (elapsed := time.time() - start) < budget:
        lr = 2e-3 * (min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = sampler.batch(args.batch)
        net.train()
        loss = F.cross_entropy(net(tensor(x)), torch.from_numpy(y).long(), label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        seen += len(y)
        if step % 50 == 0:
            print(
                f"step {step} {elapsed / 60:.1f} min loss {np.mean(losses[-50:]):.3f} lr {lr:.5f}", flush=True
            )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "scene.pt"
    torch.save(
        {
            "state": net.state_dict(),
            "scenes": SCENES,
            "size": SIZE,
            "steps": step,
            "images": seen,
            "minutes": args.minutes,
            "seed": args.seed,
            "grocery": bool(args.grocery_store),
        },
        path,
    )
    print(f"saved {path} after {step} steps ({seen} images)", flush=True)
    return path


def export(ckpt: Path, dest: Path) -> Path:
    import torch

    state = torch.load(ckpt, map_location="cpu")
    net = build_model()
    net.load_state_dict(state["state"])
    wrapped = Wrapped.build(net.eval())
    dest.mkdir(parents=True, exist_ok=True)
    onnx_path = dest / "scene-check.onnx"
    dummy = torch.zeros(1, SIZE, SIZE, 3)
    torch.onnx.export(
        wrapped,
        dummy,
        str(onnx_path),
        input_names=["image"],
        output_names=["scenes"],
        dynamic_axes={"image": {0: "n"}, "scenes": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    meta = {
        "scenes": list(SCENES),
        "input": {
            "size": SIZE,
            "color": "BGR",
            "layout": "NHWC",
            "range": "0..255",
            "resize": "whole image, INTER_AREA, aspect not kept",
        },
        "file": onnx_path.name,
        "sha256": digest,
        "training": {k: state[k] for k in ("steps", "images", "minutes", "seed", "grocery")},
    }
    (dest / "scene-check.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1024:.0f} KiB, sha256 {digest[:12]}…)")
    return onnx_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint)")
    ap.add_argument(
        "--grocery-store", type=Path, help="Grocery Store Dataset checkout (allowed classes only)"
    )
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--per-domain", type=int, default=900, help="synthetic images per domain")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--export", type=Path, help="export the run's checkpoint to this folder and stop")
    a = ap.parse_args(argv)
    if a.export:
        export(a.out / "scene.pt", a.export)
        return 0
    train(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

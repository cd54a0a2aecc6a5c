"""Train the catalogue's learned embedding: a small CNN that maps a product crop to 128 numbers so that
crops of one product are close and crops of different products far apart, for products it never saw.

    python scripts/train_catalog_embedding.py --grocery-store DIR [--minutes 12] [--out edgecv/catalog/embedder]

Training data (nothing from the held-out sets):
- made-up packs drawn by the training generator's pack renderer (scripts/datagen/shelves.py
  ``render_sku`` with random shapes, colours, patterns and lettering: --synthetic classes), each seen
  under random light, blur, scale, perspective, JPEG and box jitter;
- the Grocery Store Dataset's allowed classes only (Fruit, Vegetables, Packages/Juice, Packages/Milk;
  train and val splits and iconic images), with random crops and colour jitter. The other package classes
  (Oat-Milk, Oatghurt, Sour-Cream, Sour-Milk, Soy-Milk, Soyghurt, Yoghurt) are never read here.

Loss: CosFace (normalised softmax with an additive margin) over all training classes. Writes
``embedder.onnx`` (input ``crops`` [N, 3, 64, 64] BGR in 0..1, output ``embedding`` [N, 128], unit
length) and ``embedder.json`` (what it was trained on, its sha256) to --out. Needs PyTorch (CPU build:
pip install torch==2.13.0); never needed to run the agent.
"""

from __future__ import annotations

import argparse
import csv
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

from datagen import shelves as S  # noqa: E402

SIZE = 64
DIM = 128
ALLOWED = {"Fruit", "Vegetables"}
ALLOWED_PACKAGES = {"Juice", "Milk"}
LETTERS = "ABCDEFGHIJKLMNOPRSTUVWYZ"
SHAPES = {"can": (50, 70, 100, 170), "bottle": (60, 95, 180, 320), "carton": (60, 100, 150, 250),
          "box": (100, 200, 150, 300), "pouch": (110, 170, 140, 220), "jar": (60, 90, 80, 160)}


def random_sku(rng: np.random.Generator, i: int) -> S.SKU:
    shape = list(SHAPES)[rng.integers(len(SHAPES))]
    w0, w1, h0, h1 = SHAPES[shape]
    hexc = lambda: "#" + "".join(f"{int(v):02x}" for v in rng.integers(0, 256, 3))  # noqa: E731
    word = lambda a, b: "".join(rng.choice(list(LETTERS), int(rng.integers(a, b))))  # noqa: E731
    brand = word(3, 8)
    return S.SKU(
        name=f"rand-{i}", brand=brand, variant=word(3, 9), size=f"{int(rng.integers(1, 20)) * 50}ml",
        shape=shape, w_mm=float(rng.uniform(w0, w1)), h_mm=float(rng.uniform(h0, h1)), bg=hexc(), accent=hexc(),
        ink=hexc(), pattern=str(rng.choice(["band", "swoosh", "badge", "wave", "split", "stripes"])),
        price=1.0, tag_name=brand, vertical=bool(rng.random() < 0.15),
    )


def grocery(root: Path) -> tuple[list[str], list[np.ndarray], list[int]]:
    """Allowed classes' photos (train + val + iconic) at 96x96: (class names, images, labels)."""
    names, images, labels = [], [], []
    index: dict[str, int] = {}
    with open(root / "dataset" / "classes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    allowed = {}
    for row in rows:
        iconic = row["Iconic Image Path (str)"].lstrip("/")
        parts = Path(iconic).parts  # iconic-images-and-descriptions/<Top>/<Coarse>/...
        top, coarse = parts[1], parts[2]
        if top in ALLOWED or (top == "Packages" and coarse in ALLOWED_PACKAGES):
            allowed[row["Class Name (str)"]] = root / "dataset" / iconic
    assert not set(allowed) & {"Oatly-Oat-Milk", "Arla-Natural-Yoghurt"}, "a held-out class slipped in"
    for name in sorted(allowed):
        index[name] = len(names)
        names.append(name)
    files: list[tuple[Path, int]] = [(p, index[n]) for n, p in allowed.items()]
    for split in ("train", "val"):
        for line in (root / "dataset" / f"{split}.txt").read_text().splitlines():
            rel = line.split(",")[0].strip()
            parts = Path(rel).parts
            fine = parts[3] if parts[1] == "Packages" else (parts[-2] if len(parts) > 4 else parts[2])
            if fine in index:
                files.append((root / "dataset" / rel, index[fine]))
    for path, label in files:
        img = cv2.imread(str(path))
        if img is None:
            continue
        images.append(cv2.resize(img, (96, 96), interpolation=cv2.INTER_AREA))
        labels.append(label)
    return names, images, labels


def augment_light(rng, img: np.ndarray) -> np.ndarray:
    """Shelf light: exposure (dim aisles too), colour cast, gamma, a gradient across the pack, washed-out
    colour, blur, sensor noise, JPEG."""
    out = img.astype(np.float32) * rng.uniform(0.35, 1.5) * rng.uniform(0.82, 1.18, 3).astype(np.float32)
    h, w = out.shape[:2]
    if rng.random() < 0.5:
        ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), w if rng.random() < 0.5 else h, dtype=np.float32)
        out *= ramp[None, :, None] if len(ramp) == w else ramp[:, None, None]
    if rng.random() < 0.3:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.4, 1.0)
    out = np.clip(out, 0, 255)
    if rng.random() < 0.5:
        out = 255.0 * (out / 255.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    out = out + rng.normal(0, rng.uniform(0, 6), out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])[1], 1)
    return out


def synthetic_view(rng, sprite) -> np.ndarray:
    img, alpha, _ = sprite
    h, w = img.shape[:2]
    pad_x, pad_y = int(w * rng.uniform(0.0, 0.3)), int(h * rng.uniform(0.0, 0.2))
    bg = np.empty((h + 2 * pad_y, w + 2 * pad_x, 3), np.float32)
    bg[:] = rng.uniform(0, 255, 3)
    if rng.random() < 0.5:  # neighbours' colours at the sides
        bg[:, : pad_x + 1] = rng.uniform(0, 255, 3)
        bg[:, w + pad_x - 1 :] = rng.uniform(0, 255, 3)
    region = bg[pad_y : pad_y + h, pad_x : pad_x + w]
    bg[pad_y : pad_y + h, pad_x : pad_x + w] = img * alpha + region * (1 - alpha)
    H, W = bg.shape[:2]
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    dst = src + rng.uniform(-0.06, 0.06, (4, 2)).astype(np.float32) * np.float32([W, H])
    bg = cv2.warpPerspective(bg, cv2.getPerspectiveTransform(src, dst), (W, H), borderMode=cv2.BORDER_REPLICATE)
    # the detector's box: the pack less or more a little
    x1, x2 = pad_x + w * rng.uniform(-0.05, 0.05), pad_x + w * (1 + rng.uniform(-0.05, 0.05))
    y1, y2 = pad_y + h * rng.uniform(-0.05, 0.05), pad_y + h * (1 + rng.uniform(-0.05, 0.05))
    crop = bg[max(0, int(y1)) : int(y2), max(0, int(x1)) : int(x2)]
    small_h = int(rng.uniform(20, 140))  # the pack's height in the shelf photo
    s = small_h / crop.shape[0]
    crop = cv2.resize(crop, (max(4, int(crop.shape[1] * s)), max(4, small_h)), interpolation=cv2.INTER_AREA)
    return augment_light(rng, crop)


def real_view(rng, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    area = rng.uniform(0.35, 1.0)
    ar = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
    cw, ch = min(w, int(w * math.sqrt(area * ar))), min(h, int(h * math.sqrt(area / ar)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return augment_light(rng, img[y : y + ch, x : x + cw])


def to_input(crops: list[np.ndarray]) -> np.ndarray:
    batch = np.stack([cv2.resize(c, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for c in crops])
    return batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def make_model(torch, width: int = 16):
    """Four stages of two 3x3 convolutions, ``width`` channels doubling per stage (16: ~13 M multiply-adds
    per 64x64 crop, ~0.3 M parameters), global average pooling, a linear layer to DIM, unit length."""
    nn = torch.nn
    w = width

    def block(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                block(3, w, 2), block(w, w, 1), block(w, 2 * w, 2), block(2 * w, 2 * w, 1),
                block(2 * w, 4 * w, 2), block(4 * w, 4 * w, 1), block(4 * w, 8 * w, 2), block(8 * w, 8 * w, 1),
            )
            self.head = nn.Linear(8 * w, DIM)

        def forward(self, x):
            x = self.body(x - 0.5).mean(dim=(2, 3))
            return nn.functional.normalize(self.head(x), dim=1)

    return Embedder()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grocery-store", type=Path, required=True)
    p.add_argument("--synthetic", type=int, default=400, help="made-up packs (classes)")
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--width", type=int, default=16, help="channels of the first stage (32: 4x the compute)")
    p.add_argument("--out", type=Path, default=ROOT / "edgecv" / "catalog" / "embedder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("needs PyTorch: pip install torch==2.13.0 (the CPU build)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    sprites = [S.render_sku(random_sku(rng, i)) for i in range(args.synthetic)]
    names, photos, labels = grocery(args.grocery_store)
    print(f"{len(sprites)} made-up packs, {len(names)} real classes ({len(photos)} photos) in {time.time() - t0:.0f} s", flush=True)
    classes = args.synthetic + len(names)
    model = make_model(torch, args.width)
    weight = torch.nn.Parameter(torch.randn(classes, DIM) * 0.01)
    opt = torch.optim.AdamW([*model.parameters(), weight], lr=2e-3, weight_decay=1e-4)
    scale, margin = 30.0, 0.3
    labels_arr = np.array(labels)
    step, start = 0, time.time()
    budget = args.minutes * 60
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * frac))
        crops, ys = [], []
        for _ in range(args.batch):
            if rng.random() < 0.5:
                k = int(rng.integers(args.synthetic))
                crops.append(synthetic_view(rng, sprites[k]))
                ys.append(k)
            else:
                j = int(rng.integers(len(photos)))
                crops.append(real_view(rng, photos[j]))
                ys.append(args.synthetic + int(labels_arr[j]))
        x = torch.from_numpy(to_input(crops))
        y = torch.tensor(ys)
        model.train()
        emb = model(x)
        cos = emb @ torch.nn.functional.normalize(weight, dim=1).T
        logits = scale * (cos - margin * torch.nn.functional.one_hot(y, classes))
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            acc = (cos.argmax(1) == y).float().mean().item()
            print(f"step {step} ({time.time() - start:.0f} s): loss {loss.item():.3f}, batch accuracy {acc:.2f}", flush=True)
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "embedder.onnx"
    torch.onnx.export(
        model, torch.zeros(1, 3, SIZE, SIZE), str(onnx_path), input_names=["crops"], output_names=["embedding"],
        dynamic_axes={"crops": {0: "n"}, "embedding": {0: "n"}}, opset_version=17, dynamo=False,
    )
    card = {
        "file": onnx_path.name,
        "input": {"name": "crops", "shape": ["n", 3, SIZE, SIZE], "color": "BGR", "scale": "0..1"},
        "output": {"name": "embedding", "dim": DIM, "normalised": True},
        "trained": {
            "width": args.width, "steps": step, "minutes": round((time.time() - start) / 60, 1), "batch": args.batch,
            "syntheticPacks": args.synthetic, "realClasses": names,
            "realSource": "Grocery Store Dataset (MIT): Fruit, Vegetables, Packages/Juice, Packages/Milk; train+val+iconic",
            "heldOutNeverRead": ["Oat-Milk", "Oatghurt", "Sour-Cream", "Sour-Milk", "Soy-Milk", "Soyghurt", "Yoghurt"],
            "loss": f"CosFace s={scale} m={margin}",
        },
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    (args.out / "embedder.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) after {step} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

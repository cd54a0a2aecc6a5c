"""A user's labelled photos for ``edgecv models train``: read a YOLO or COCO folder, check it, split it.

Nothing here needs torch: the whole check runs before training starts, and a folder with errors stops the
command before anything is written. What counts as an error and what as a warning is listed in
docs/training.md ("Train a custom model: `edgecv models train`").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.errors import DatasetError, ImageUnreadable
from edgecv.imageio import decode_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
YAML_FILES = ("data.yaml", "dataset.yaml")
VAL_PARTS = {"val", "valid", "validation"}
BOX_TOLERANCE = 0.01  # a box may reach this far (fraction of a side) past the border; it is clipped
FEW_IMAGES = 5  # a class seen in fewer images gets a warning
VAL_EVERY = 5  # without a given split, every 5th image (by a hash of its name) validates
EXAMPLES = 3  # paths named per problem in the report


@dataclass
class Sample:
    """One labelled image: boxes ``[n, 4]`` (x1, y1, x2, y2 in image pixels) and class ids ``[n]``."""

    path: Path
    boxes: np.ndarray
    cls: np.ndarray
    width: int
    height: int
    split: str | None = None  # "train" / "val" when the dataset says

    @property
    def labels(self) -> np.ndarray:
        """``[n, 5]`` = class, x1, y1, x2, y2 (what ``edgecv.training.data`` takes)."""
        return np.concatenate((self.cls[:, None].astype(np.float32), self.boxes.astype(np.float32)), 1)


@dataclass
class DatasetCheck:
    """What was found in the folder: the samples, and the problems by kind (each with a few examples)."""

    root: Path
    format: str
    names: list[str]
    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    split_given: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def error(self, kind: str, example: str = "") -> None:
        self.errors.setdefault(kind, []).append(example)

    def warn(self, kind: str, example: str = "") -> None:
        self.warnings.setdefault(kind, []).append(example)

    @property
    def samples(self) -> list[Sample]:
        return self.train + self.val

    def per_class(self) -> dict[str, tuple[int, int]]:
        """Class name → (images holding it, boxes)."""
        out = {}
        for k, name in enumerate(self.names):
            imgs = sum(1 for s in self.samples if (s.cls == k).any())
            out[name] = (imgs, sum(int((s.cls == k).sum()) for s in self.samples))
        return out

    def report(self) -> list[str]:
        """The report the CLI prints: a summary, then every error and warning with examples."""
        boxes = sum(len(s.cls) for s in self.samples)
        split = "given" if self.split_given else f"made here: every {VAL_EVERY}th image by name hash"
        lines = [
            f"{self.root} ({self.format}): {len(self.samples)} images, {boxes} boxes, {len(self.names)} classes; "
            f"train {len(self.train)}, val {len(self.val)} (split {split})"
        ]
        for name, (imgs, n) in self.per_class().items():
            lines.append(f"  {name}: {n} boxes in {imgs} images")
        for prefix, problems in (("error", self.errors), ("warning", self.warnings)):
            for kind, examples in problems.items():
                shown = [e for e in examples if e][:EXAMPLES]
                more = f", … ({len(examples)} in all)" if len(examples) > len(shown) and shown else ""
                lines.append(f"{prefix}: {kind}" + (f": {', '.join(shown)}{more}" if shown else ""))
        return lines

    def raise_if_errors(self) -> None:
        if self.errors:
            kinds = "; ".join(f"{k} ({len(v)})" for k, v in self.errors.items())
            raise DatasetError(f"{self.root}: the data has errors, nothing was trained: {kinds}")


def check_dataset(root: Path) -> DatasetCheck:
    """Read and check ``root`` (YOLO: ``data.yaml``/``names.txt`` + ``images/`` + ``labels/``; COCO:
    ``annotations.json`` + images), and split it into train/val when it has no split of its own."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    coco = _coco_file(root)
    check = _read_coco(root, coco) if coco else _read_yolo(root)
    if not check.errors:
        _check_content(check)
    return check


# --- YOLO ---------------------------------------------------------------------------------------------


def read_names(root: Path) -> list[str]:
    """Class names from ``names.txt`` or ``data.yaml`` (simple ``names:`` list/mapping, no yaml dependency)."""
    root = Path(root)
    if (root / "names.txt").is_file():
        return [ln.strip() for ln in (root / "names.txt").read_text().splitlines() if ln.strip()]
    for yml in YAML_FILES:
        if (root / yml).is_file():
            names = _names_from_yaml((root / yml).read_text())
            if names:
                return names
    raise FileNotFoundError(f"{root}: no names.txt or data.yaml with a 'names:' entry")


def _names_from_yaml(text: str) -> list[str]:
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.strip().startswith("names:"):
            rest = ln.split(":", 1)[1].strip()
            if rest.startswith("["):
                return [s.strip().strip("'\"") for s in rest.strip("[]").split(",") if s.strip()]
            out: dict[int, str] = {}
            seq: list[str] = []
            for sub in lines[i + 1 :]:
                if not sub.startswith((" ", "\t", "-")):
                    break
                s = sub.strip()
                if s.startswith("- "):
                    seq.append(s[2:].strip().strip("'\""))
                elif ":" in s:
                    k, v = s.split(":", 1)
                    out[int(k)] = v.strip().strip("'\"")
            return seq or [out[k] for k in sorted(out)]
    return []


def label_path(image: Path, root: Path) -> Path:
    """The Ultralytics rule: the last ``images`` folder in the path becomes ``labels``, suffix ``.txt``."""
    parts = list(image.relative_to(root).parts)
    k = max(i for i, p in enumerate(parts) if p == "images")
    parts[k] = "labels"
    return root.joinpath(*parts).with_suffix(".txt")


def _split_of(rel: Path) -> str | None:
    parts = {p.lower() for p in rel.parts[:-1]}
    if parts & VAL_PARTS:
        return "val"
    if "train" in parts:
        return "train"
    if "test" in parts:
        return "test"
    return None


def _read_yolo(root: Path) -> DatasetCheck:
    try:
        names = read_names(root)
    except (FileNotFoundError, ValueError):
        names = []
    check = DatasetCheck(root, "yolo", names)
    images = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and "images" in p.relative_to(root).parts[:-1]
    )
    if not images:
        check.error(
            "no images found: expected images/ + labels/ + data.yaml (YOLO) or annotations.json + images (COCO)"
        )
        return check
    if not names:
        check.error("no class names: add data.yaml with a names: list (or names.txt, one name per line)")
        return check
    wanted = {label_path(p, root) for p in images}
    for txt in sorted(root.rglob("*.txt")):
        rel = txt.relative_to(root)
        if "labels" in rel.parts[:-1] and txt.name != "classes.txt" and txt not in wanted:
            check.error("label files without an image", str(rel))
    for p in images:
        rel = p.relative_to(root)
        split = _split_of(rel)
        if split == "test":
            check.warn("test split left out (train and val only)", str(rel))
            continue
        lab = label_path(p, root)
        if not lab.is_file():
            check.error(
                "images without a label file (an empty .txt marks an image with no objects)", str(rel)
            )
            continue
        size = _image_size(check, p)
        if size is None:
            continue
        rows = _yolo_rows(check, lab, len(names), size)
        if rows is None:
            continue
        boxes, cls = rows
        sample = Sample(p, boxes, cls, size[0], size[1], split)
        (check.val if split == "val" else check.train).append(sample)
    check.split_given = bool(check.val) and any(s.split == "train" for s in check.train)
    return check


def _yolo_rows(check: DatasetCheck, lab: Path, nc: int, size: tuple[int, int]):
    rel = lab.relative_to(check.root)
    w, h = size
    boxes, cls, seen, bad = [], [], set(), False
    for n, line in enumerate(lab.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            c, cx, cy, bw, bh = (float(v) for v in parts) if len(parts) == 5 else (None,) * 5
        except ValueError:
            c = None
        if c is None or c != int(c) or c < 0:
            check.error("label lines that are not 'class cx cy w h'", f"{rel}:{n}")
            bad = True
            continue
        if int(c) >= nc:
            check.error(f"class ids past the {nc} names", f"{rel}:{n} (class {int(c)})")
            bad = True
            continue
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        if bw <= 0 or bh <= 0 or min(x1, y1) < -BOX_TOLERANCE or max(x2, y2) > 1 + BOX_TOLERANCE:
            check.error("boxes outside the image (or of no size)", f"{rel}:{n}")
            bad = True
            continue
        key = tuple(parts)
        if key in seen:
            check.warn("duplicate boxes (kept once)", f"{rel}:{n}")
            continue
        seen.add(key)
        boxes.append([max(0.0, x1) * w, max(0.0, y1) * h, min(1.0, x2) * w, min(1.0, y2) * h])
        cls.append(int(c))
    if bad:
        return None
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(cls, np.int64)


def _image_size(check: DatasetCheck, path: Path) -> tuple[int, int] | None:
    try:
        img = decode_file(path)
    except ImageUnreadable as exc:
        check.error("images that cannot be decoded", f"{path.relative_to(check.root)} ({exc})")
        return None
    return img.shape[1], img.shape[0]


# --- COCO ---------------------------------------------------------------------------------------------


def _coco_file(root: Path) -> Path | None:
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    found = sorted((root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []
    return found[0] if len(found) == 1 else None


def _read_coco(root: Path, path: Path) -> DatasetCheck:
    check = DatasetCheck(root, "coco", [])
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        cats = {int(c["id"]): str(c["name"]) for c in coco.get("categories", [])}
        images = {int(im["id"]): str(im["file_name"]) for im in coco["images"]}
        anns = list(coco.get("annotations", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        check.error(f"{path.name} is not a COCO detection file ({exc})")
        return check
    if not cats:
        check.error(f"{path.name} has no categories")
    ids = sorted(cats)
    check.names = [cats[i] for i in ids]
    index = {cid: k for k, cid in enumerate(ids)}
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        try:
            cid, iid = int(a["category_id"]), int(a["image_id"])
            x, y, bw, bh = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            check.error("annotations without category_id, image_id or a 4-number bbox", str(a.get("id", "")))
            continue
        if cid not in cats:
            check.error(
                "annotations of categories missing from categories", f"id {a.get('id')} (category {cid})"
            )
        elif iid not in images:
            check.error("annotations of images missing from images", f"id {a.get('id')} (image {iid})")
        elif not a.get("iscrowd", 0):
            by_image.setdefault(iid, []).append(
                {"cls": index[cid], "bbox": (x, y, bw, bh), "id": a.get("id")}
            )
    listed = set()
    for iid, name in sorted(images.items(), key=lambda kv: kv[1]):
        p = root / "images" / name if (root / "images" / name).is_file() else root / name
        if not p.is_file():
            check.error("images in annotations.json that are not in the folder", name)
            continue
        listed.add(p.resolve())
        size = _image_size(check, p)
        if size is None:
            continue
        boxes, cls = [], []
        for a in by_image.get(iid, []):
            x, y, bw, bh = a["bbox"]
            tw, th = BOX_TOLERANCE * size[0], BOX_TOLERANCE * size[1]
            if bw <= 0 or bh <= 0 or x < -tw or y < -th or x + bw > size[0] + tw or y + bh > size[1] + th:
                check.error("boxes outside the image (or of no size)", f"{name} (annotation {a['id']})")
                continue
            boxes.append([max(0.0, x), max(0.0, y), min(size[0], x + bw), min(size[1], y + bh)])
            cls.append(a["cls"])
        split = _split_of(p.relative_to(root))
        sample = Sample(p, np.array(boxes, np.float32).reshape(-1, 4), np.array(cls, np.int64), *size, split)
        (check.val if split == "val" else check.train).append(sample)
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in listed:
            check.error(
                f"images not listed in {path.name} (list them with no annotations to mark them empty)",
                str(p.relative_to(root)),
            )
    if not images:
        check.error(f"no images listed in {path.name}")
    check.split_given = bool(check.val) and any(s.split == "train" for s in check.train)
    return check


# --- checks across the whole set, and the split ---------------------------------------------------------


def _check_content(check: DatasetCheck) -> None:
    seen: dict[str, Path] = {}
    for part in ("train", "val"):
        kept = []
        for s in getattr(check, part):
            digest = hashlib.sha256(s.path.read_bytes()).hexdigest()
            if digest in seen:
                check.warn(
                    "duplicate images (the same file twice; only the first is used)",
                    f"{s.path.relative_to(check.root)} = {seen[digest].relative_to(check.root)}",
                )
                continue
            seen[digest] = s.path
            kept.append(s)
        setattr(check, part, kept)
    labelled = [s for s in check.samples if len(s.cls)]
    if len(labelled) < 2:
        check.error(
            f"too few labelled images ({len(labelled)}; at least 2: one to train on, one to validate)"
        )
        return
    for name, (imgs, _) in check.per_class().items():
        if imgs == 0:
            check.warn("classes with no box (the model cannot learn them)", name)
        elif imgs < FEW_IMAGES:
            check.warn(f"classes in fewer than {FEW_IMAGES} images (expect poor accuracy on them)", name)
    if not check.split_given:
        ordered = sorted(check.samples, key=lambda s: hashlib.sha1(s.path.name.encode()).hexdigest())
        check.val = ordered[::VAL_EVERY]
        check.train = [s for s in ordered if s not in check.val]
        check.train.sort(key=lambda s: s.path)
        check.val.sort(key=lambda s: s.path)
    if not check.train or not any(len(s.cls) for s in check.val):
        check.error("the validation split has no labelled image (or the train split no image)")


def write_yolo(samples: list[Sample], names: list[str], out: Path) -> Path:
    """``samples`` as a YOLO folder (images linked, or copied where links fail): what ``edgecv models eval``
    and the INT8 calibration read."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    (out / "names.txt").write_text("".join(f"{n}\n" for n in names))
    for i, s in enumerate(samples):
        dest = out / "images" / f"{i:05d}-{s.path.stem}{s.path.suffix.lower()}"
        try:
            os.symlink(s.path.resolve(), dest)
        except OSError:
            shutil.copyfile(s.path, dest)
        rows = []
        for (x1, y1, x2, y2), c in zip(s.boxes, s.cls, strict=True):
            cx, cy = (x1 + x2) / 2 / s.width, (y1 + y2) / 2 / s.height
            rows.append(f"{c} {cx:.6f} {cy:.6f} {(x2 - x1) / s.width:.6f} {(y2 - y1) / s.height:.6f}\n")
        (out / "labels" / f"{dest.stem}.txt").write_text("".join(rows))
    return out

"""The catalogue folder: one sub-folder per SKU with its reference images and an optional ``sku.json``.

    catalog/
      FZ-COLA-330/            # the SKU id: letters, digits, '.', '_', '-' (at most 64; not starting with '.')
        front.jpg             # reference images: .jpg .jpeg .png .webp .bmp (pack shots or crops from shelf photos)
        shelf-crop-1.png
        sku.json              # optional: {"name": ..., "gtin": ..., "expectedPrice": 0.89, "currency": "EUR",
                              #            "size": "330ml", any other keys}

This module reads and writes that layout and says what is wrong with it (``scan`` returns problems
beside the usable SKUs: one bad image or a malformed ``sku.json`` never hides the rest). Embeddings and
matching live in ``edgecv.catalog.index``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import CatalogError, SkuNotFound
from edgecv.imageio import sniff

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SUFFIX_OF = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/bmp": ".bmp"}
SKU_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
META_FILE = "sku.json"


@dataclass(frozen=True)
class Problem:
    """Something in the catalogue that cannot be used (or looks wrong), with where and what to do."""

    sku: str | None
    path: str | None
    message: str
    severity: str = "error"  # error: skipped; warning: used, but look at it

    def __str__(self) -> str:
        where = self.path or (f"SKU {self.sku}" if self.sku else "catalogue")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "path": self.path, "message": self.message, "severity": self.severity}


@dataclass
class Sku:
    id: str
    folder: Path
    images: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        name = self.meta.get("name")
        return name if isinstance(name, str) and name.strip() else self.id

    @property
    def expected_price(self) -> float | None:
        value = self.meta.get("expectedPrice")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def height_mm(self) -> float | None:
        """The pack's height in mm (``heightMm``): tells apart SKUs that look the same in two sizes."""
        value = self.meta.get("heightMm")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return float(value) if ok else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "images": [p.name for p in self.images],
            **{k: v for k, v in self.meta.items() if k not in ("id", "images")},
        }


def check_sku_id(sku: str) -> str:
    if not isinstance(sku, str) or not SKU_ID.match(sku):
        raise CatalogError(
            f"SKU id {sku!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
        )
    return sku


def _read_meta(path: Path) -> tuple[dict[str, Any], Problem | None]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, Problem(path.parent.name, str(path), f"cannot be read ({exc}); the SKU is used without it")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, Problem(
            path.parent.name,
            str(path),
            f"is not valid JSON (line {exc.lineno}: {exc.msg}); fix it or delete it",
        )
    if not isinstance(meta, dict):
        return {}, Problem(path.parent.name, str(path), 'must hold a JSON object such as {"name": "..."}')
    price = meta.get("expectedPrice")
    if price is not None and (not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0):
        meta = {k: v for k, v in meta.items() if k != "expectedPrice"}
        return meta, Problem(
            path.parent.name,
            str(path),
            f"expectedPrice must be a non-negative number, got {price!r}; ignored",
        )
    height = meta.get("heightMm")
    if height is not None and (
        not isinstance(height, (int, float)) or isinstance(height, bool) or height <= 0
    ):
        meta = {k: v for k, v in meta.items() if k != "heightMm"}
        return meta, Problem(
            path.parent.name,
            str(path),
            f"heightMm must be a positive number of millimetres, got {height!r}; ignored",
        )
    if "name" in meta and not isinstance(meta["name"], str):
        meta = {k: v for k, v in meta.items() if k != "name"}
        return meta, Problem(path.parent.name, str(path), "name must be a string; the SKU id is used instead")
    return meta, None


def scan(root: Path) -> tuple[list[Sku], list[Problem]]:
    """The SKUs under ``root`` (sorted by id) and what could not be used. A missing root is an empty
    catalogue, not an error."""
    root = Path(root)
    skus: list[Sku] = []
    problems: list[Problem] = []
    seen_ids: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [Problem(None, str(root), f"cannot be listed: {exc.strerror}")]
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                problems.append(
                    Problem(None, entry.path, "images belong in a folder per SKU: catalog/<SKU id>/<image>")
                )
            continue
        if not SKU_ID.match(entry.name):
            problems.append(Problem(entry.name, entry.path, "folder name is not a usable SKU id; rename it"))
            continue
        if entry.name.lower() in seen_ids:
            other = seen_ids[entry.name.lower()]
            problems.append(
                Problem(entry.name, entry.path, f"duplicate SKU id: {other} differs only in case; merge or rename")
            )
            continue
        seen_ids[entry.name.lower()] = entry.name
        sku = Sku(entry.name, Path(entry.path))
        meta_path = sku.folder / META_FILE
        if meta_path.exists():
            sku.meta, problem = _read_meta(meta_path)
            if problem:
                problems.append(problem)
        try:
            files = sorted(os.scandir(sku.folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(sku.id, str(sku.folder), f"cannot be listed: {exc.strerror}"))
            continue
        for f in files:
            if f.name.startswith(".") or f.name == META_FILE:
                continue
            if Path(f.name).suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                sku.images.append(Path(f.path))
            else:
                problems.append(
                    Problem(
                        sku.id, f.path, "is not a reference image (.jpg .jpeg .png .webp .bmp); ignored", "warning"
                    )
                )
        if not sku.images:
            problems.append(
                Problem(sku.id, str(sku.folder), "has no reference images; add one with `edgecv catalog add`")
            )
            continue
        skus.append(sku)
    return skus, problems


def signature(root: Path) -> tuple:
    """A cheap fingerprint of the folder (names, sizes, mtimes): it changes whenever a file does."""
    out = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return ()
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if not f.name.startswith("."):
                    st = f.stat()
                    out.append((entry.name, f.name, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((entry.name, None, 0, 0))
    return tuple(out)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add(root: Path, sku: str, images: list[tuple[str, bytes]], meta: dict[str, Any] | None = None) -> Sku:
    """Add reference images (name, bytes) and/or metadata to SKU ``sku``, creating it. Every image must
    decode (checked by the caller's ``validate``); files land atomically (a running agent never sees a
    half-written one). A name already used in the SKU gets a numbered suffix."""
    check_sku_id(sku)
    folder = Path(root) / sku
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in images:
        base = Path(name).name or "image.jpg"
        stem, suffix = Path(base).stem or "image", Path(base).suffix.lower()
        sniffed = SUFFIX_OF.get(sniff(data) or "")
        if sniffed is None:
            raise CatalogError(f"{name}: not a reference image (JPEG, PNG, WebP or BMP)")
        if suffix not in IMAGE_SUFFIXES:  # an upload named "blob" or "photo.heic.jpg?x": name it by its bytes
            stem, suffix = Path(base).name or "image", sniffed
        target, n = folder / f"{stem}{suffix}", 1
        while target.exists():
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        _atomic_write(target, data)
    if meta:
        current: dict[str, Any] = {}
        meta_path = folder / META_FILE
        if meta_path.exists():
            current, _ = _read_meta(meta_path)
        current.update({k: v for k, v in meta.items() if v is not None})
        _atomic_write(meta_path, (json.dumps(current, indent=2, ensure_ascii=False) + "\n").encode())
    skus, _ = scan(root)
    found = next((s for s in skus if s.id == sku), None)
    if found is None:
        raise CatalogError(f"SKU {sku} has no reference images yet: add at least one image")
    return found


def remove(root: Path, sku: str) -> None:
    check_sku_id(sku)
    folder = Path(root) / sku
    if not folder.is_dir():
        raise SkuNotFound(f"no SKU {sku} in the catalogue at {root}")
    # rename first (one atomic step: a running agent sees the SKU or not, never half of it), then delete
    trash = Path(root) / f".removed-{sku}-{os.getpid()}"
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)

"""Draw a job's result on its image: boxes, labels and the key attributes, plus a summary banner.

Legibility rules (each a small pure function below, unit-tested in ``tests/test_annotate.py``):

- text size, stroke and box lines scale with the image's shorter side (720 px -> 1x, 4K -> 3x), so a 4K
  picture viewed scaled down to a screen reads like a 720p one;
- the summary banner goes to the image corner where it covers the least box area and no label is put under it;
- each label is placed greedily at the first free spot among eight candidates around its box (above, inside the
  top, below, inside the bottom; left- or right-aligned), clamped inside the image; when the full text fits
  nowhere the bare class name is tried, and when that fits nowhere either the label is left out (its box is
  still drawn in the class colour, and on a shelf a neighbouring facing of the same product carries the text);
- label text is black or white, whichever has the higher WCAG contrast with the class colour (always >= 4.5).
"""

from __future__ import annotations

import colorsys
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecv.errors import DiskFull, is_disk_full

# the attributes worth reading off a picture, in display order
KEY_ATTRIBUTES = ("facings", "shelfPosition", "priceTag", "storey", "severity", "maxWidthPx", "lengthPx")
SHORT = {
    "shelfPosition": "",
    "priceTag": "$",
    "storey": "st",
    "severity": "",
    "maxWidthPx": "w",
    "lengthPx": "L",
}
SUMMARY_KEYS = (
    "totalProducts", "uniqueSKUs", "complianceScore", "outOfStock",
    "storeyCount", "totalComponents", "conditionLabel", "worstSeverity", "totalDetections",
)  # fmt: skip

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
BANNER_BG = WHITE
BANNER_MAX_CHARS = 400

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1 and y1 exclusive
Size = tuple[int, int]  # width, height


@dataclass(frozen=True)
class Style:
    """Sizes for one image: label and banner font scale, text stroke, box line width, padding (px)."""

    label_scale: float
    banner_scale: float
    thickness: int
    line: int
    pad: int


def style_for(width: int, height: int) -> Style:
    """Sizes proportional to the shorter side: 1x at 720 px, 3x at 2160 px (4K), never below legible."""
    unit = min(width, height) / 720
    return Style(
        label_scale=max(0.35, 0.5 * unit),
        banner_scale=max(0.4, 0.6 * unit),
        thickness=max(1, round(unit)),
        line=max(1, round(2 * unit)),
        pad=max(1, round(2 * unit)),
    )


def colour_for(name: str) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per label."""
    hue = (zlib.crc32(name.encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def relative_luminance(bgr: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an 8-bit sRGB colour given as BGR."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    b, g, r = bgr
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio of two colours, 1..21."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``background`` (the worse of the two is >= 4.58:1)."""
    return BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE


def overlaps(a: Rect, b: Rect) -> bool:
    """Whether two rectangles share at least one pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def overlap_area(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def label_candidates(box: Rect, size: Size, image: Size) -> list[Rect]:
    """Where a label of ``size`` may go for ``box``, in order of preference, each clamped inside the image.

    Above the box, inside its top, below it, inside its bottom; left-aligned, then right-aligned. A label
    wider or taller than the image has no candidate. Clamping is what flips a label that has no room above
    a box at the top edge down onto the box.
    """
    lw, lh = size
    iw, ih = image
    if lw > iw or lh > ih:
        return []
    x0, y0, x1, y1 = box
    out: list[Rect] = []
    for y in (y0 - lh, y0, y1, y1 - lh):
        for x in (x0, x1 - lw):
            cx, cy = min(max(x, 0), iw - lw), min(max(y, 0), ih - lh)
            rect = (cx, cy, cx + lw, cy + lh)
            if rect not in out:
                out.append(rect)
    return out


def place_labels(
    boxes: list[Rect], variants: list[list[Size]], image: Size, blocked: list[Rect]
) -> list[tuple[int, Rect] | None]:
    """Greedy label placement: per box (in the given order) the first variant and candidate spot that
    overlaps neither an earlier label nor a ``blocked`` area. Returns (variant index, rect) or None per box.
    """
    taken = list(blocked)
    out: list[tuple[int, Rect] | None] = []
    for box, sizes in zip(boxes, variants, strict=True):
        chosen = None
        for k, size in enumerate(sizes):
            spot = next(
                (r for r in label_candidates(box, size, image) if not any(overlaps(r, t) for t in taken)),
                None,
            )
            if spot is not None:
                chosen = (k, spot)
                taken.append(spot)
                break
        out.append(chosen)
    return out


def _neighbours(a: Rect, b: Rect) -> bool:
    """Side by side in one row: they share at least half the lower height and the gap is under half a width."""
    shared = min(a[3], b[3]) - max(a[1], b[1])
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return shared >= 0.5 * min(a[3] - a[1], b[3] - b[1]) and gap <= 0.5 * min(a[2] - a[0], b[2] - b[0])


def group_boxes(boxes: list[Rect], texts: list[str]) -> list[list[int]]:
    """Indices of boxes grouped into runs of side-by-side neighbours with the same label text (a shelf's
    facings of one product), in order of each group's first member. Each group gets one label."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i):
            if texts[i] == texts[j] and _neighbours(boxes[i], boxes[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def union(rects: list[Rect]) -> Rect:
    return (
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def banner_rect(size: Size, image: Size, boxes: list[Rect]) -> Rect:
    """The image corner for a banner of ``size`` that covers the least box area (top-left on a tie)."""
    bw, bh = min(size[0], image[0]), min(size[1], image[1])
    iw, ih = image
    corners = [(0, 0), (iw - bw, 0), (0, ih - bh), (iw - bw, ih - bh)]
    rects = [(x, y, x + bw, y + bh) for x, y in corners]
    return min(rects, key=lambda r: sum(overlap_area(r, b) for b in boxes))


def wrap(parts: list[str], max_width: int, width_of: Callable[[str], int], sep: str = "  ") -> list[str]:
    """Join ``parts`` with ``sep`` into lines no wider than ``max_width`` (a part too wide stays alone)."""
    lines: list[str] = []
    for part in parts:
        if lines and width_of(lines[-1] + sep + part) <= max_width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


def _label(det: dict) -> str:
    parts = [det.get("objectName", "?")]
    attrs = det.get("attributes") or {}
    for key in KEY_ATTRIBUTES:
        value = attrs.get(key)
        if value is None:
            continue
        prefix = SHORT.get(key, key[:1])
        parts.append(f"{prefix}{value}" if key != "facings" else f"x{value}")
    return " ".join(str(p) for p in parts)


def summary_parts(summary: dict) -> list[str]:
    parts = []
    for key in SUMMARY_KEYS:
        if key in summary:
            value = summary[key]
            if isinstance(value, list):
                value = ", ".join(value) if value else "none"
            parts.append(f"{key}: {value}")
    return parts


def summary_line(summary: dict) -> str:
    return "  ".join(summary_parts(summary))


def _text_size(text: str, scale: float, thickness: int, pad: int) -> Size:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    return tw + 2 * pad, th + base + 2 * pad


def _draw_text(img: np.ndarray, text: str, rect: Rect, bg, scale: float, thickness: int, pad: int) -> None:
    x0, y0, x1, y1 = rect
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), bg, -1)
    (_, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    cv2.putText(img, text, (x0 + pad, y0 + pad + th), FONT, scale, text_colour(bg), thickness, cv2.LINE_AA)


def _box(det: dict) -> Rect:
    b = det.get("boundingBox") or {}
    x, y = int(b.get("x", 0)), int(b.get("y", 0))
    return x, y, x + int(b.get("width", 0)), y + int(b.get("height", 0))


def _banner_parts(job: dict, result: dict) -> list[str]:
    if job.get("status") and job.get("status") != "completed":
        error = job.get("error") or {}
        return [f"{job['status']}: {error.get('code', '')} {error.get('message', '')}".strip()]
    return summary_parts(result.get("summary", {}))


Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    """Everything ``draw_job`` draws, in pixels: boxes, banner lines and labels, each with its rectangle."""

    style: Style
    boxes: list[tuple[Rect, Colour]]
    banner: list[tuple[str, Rect]]
    labels: list[tuple[str, Rect, Colour]]


def layout(job: dict, width: int, height: int) -> Layout:
    """Where every box, banner line and label of ``job`` goes on a ``width`` x ``height`` image."""
    st = style_for(width, height)
    result = job.get("result", job) or {}
    dets = sorted(result.get("detections", []), key=lambda d: (_box(d)[1], _box(d)[0]))
    boxes = [_box(d) for d in dets]
    colours = [colour_for(str(d.get("objectName", "?"))) for d in dets]

    banner: list[tuple[str, Rect]] = []
    parts = [p[:BANNER_MAX_CHARS] for p in _banner_parts(job, result) if p]
    if parts:

        def width_of(s: str) -> int:
            return _text_size(s, st.banner_scale, st.thickness, st.pad)[0]

        fit = width - 2 * st.pad
        lines = [
            piece
            for line in wrap(parts, fit, width_of)
            for piece in (wrap(line.split(" "), fit, width_of, " ") if width_of(line) > fit else [line])
        ]
        sizes = [_text_size(line, st.banner_scale, st.thickness, st.pad) for line in lines]
        x0, y, x1, y1 = banner_rect(
            (max(s[0] for s in sizes), sum(s[1] for s in sizes)), (width, height), boxes
        )
        for line, (_, lh) in zip(lines, sizes, strict=True):
            if y + lh <= y1:
                banner.append((line, (x0, y, x1, y + lh)))
            y += lh

    names = [_label(d) for d in dets]
    groups = group_boxes(boxes, names)
    texts = [[names[g[0]], str(dets[g[0]].get("objectName", "?"))] for g in groups]
    variants = [[_text_size(t, st.label_scale, st.thickness, st.pad) for t in ts] for ts in texts]
    anchors = [union([boxes[i] for i in g]) for g in groups]
    blocked = [rect for _, rect in banner]
    labels = [
        (ts[spot[0]], spot[1], colours[g[0]])
        for g, ts, spot in zip(
            groups, texts, place_labels(anchors, variants, (width, height), blocked), strict=True
        )
        if spot is not None
    ]
    return Layout(st, list(zip(boxes, colours, strict=True)), banner, labels)


def draw_job(image_bgr: np.ndarray, job: dict) -> np.ndarray:
    """A copy of ``image_bgr`` with the job's detections and summary drawn on it (see ``layout``).

    ``job`` is the job object as the API returns it (``result.detections`` / ``result.summary``) or a bare
    result (``detections`` / ``summary``). Failed or unfinished jobs get a banner with their status.
    """
    img = image_bgr.copy()
    lay = layout(job, img.shape[1], img.shape[0])
    st = lay.style
    for (x0, y0, x1, y1), colour in lay.boxes:
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, st.line)
    for text, rect in lay.banner:
        _draw_text(img, text, rect, BANNER_BG, st.banner_scale, st.thickness, st.pad)
    for text, rect, colour in lay.labels:
        _draw_text(img, text, rect, colour, st.label_scale, st.thickness, st.pad)
    return img


def write_annotated(store, config, job, out: Path) -> Path:
    """Draw ``job`` on its observation's image and write it to ``out`` (format from the suffix)."""
    from edgecv.imageio import decode_file

    observation = store.get_observation(job.observation_id)
    image = decode_file(config.data_dir / observation.spool_path, max_pixels=config.max_image_pixels)
    ok, buf = cv2.imencode(out.suffix or ".jpg", draw_job(image, job.to_dict()))
    if not ok:
        raise ValueError(f"cannot encode an image as {out.suffix!r}; use .jpg or .png")
    tmp = out.with_name(f".{out.name}.tmp")
    try:  # written beside its name and renamed: a full disk leaves no truncated image behind
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFull.writing("an annotated image", out) from None
        raise
    return out

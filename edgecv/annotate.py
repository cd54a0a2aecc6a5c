"""Draw a job's result on its image: boxes, labels and the key attributes, plus a summary banner."""

from __future__ import annotations

import colorsys
import zlib
from pathlib import Path

import cv2
import numpy as np

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


def colour_for(name: str) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per label."""
    hue = (zlib.crc32(name.encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


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


def _text(img: np.ndarray, text: str, x: int, y: int, colour, scale: float, thickness: int) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    y = max(th + base, y)
    cv2.rectangle(img, (x, y - th - base), (x + tw + 2, y + 1), colour, -1)
    cv2.putText(
        img, text, (x + 1, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA
    )


def summary_line(summary: dict) -> str:
    parts = []
    for key in SUMMARY_KEYS:
        if key in summary:
            value = summary[key]
            if isinstance(value, list):
                value = ", ".join(value) if value else "none"
            parts.append(f"{key}: {value}")
    return "  ".join(parts)


def draw_job(image_bgr: np.ndarray, job: dict) -> np.ndarray:
    """A copy of ``image_bgr`` with the job's detections and summary drawn on it.

    ``job`` is the job object as the API returns it (``result.detections`` / ``result.summary``) or a bare
    result (``detections`` / ``summary``). Failed or unfinished jobs get a banner with their status.
    """
    img = image_bgr.copy()
    h, w = img.shape[:2]
    scale = max(0.35, min(1.0, w / 1800))
    thickness = 1 if w < 1600 else 2
    result = job.get("result", job) or {}
    for det in result.get("detections", []):
        box = det.get("boundingBox") or {}
        x, y = int(box.get("x", 0)), int(box.get("y", 0))
        bw, bh = int(box.get("width", 0)), int(box.get("height", 0))
        colour = colour_for(det.get("objectName", "?"))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), colour, thickness + 1)
        _text(img, _label(det), x, y - 2, colour, scale * 0.8, thickness)
    banner = summary_line(result.get("summary", {}))
    if job.get("status") and job.get("status") != "completed":
        error = job.get("error") or {}
        banner = f"{job['status']}: {error.get('code', '')} {error.get('message', '')}".strip()
    if banner:
        _text(img, banner[:200], 4, int(28 * scale) + 4, (255, 255, 255), scale, thickness)
    return img


def write_annotated(store, config, job, out: Path) -> Path:
    """Draw ``job`` on its observation's image and write it to ``out`` (format from the suffix)."""
    from edgecv.imageio import decode_file

    observation = store.get_observation(job.observation_id)
    image = decode_file(config.data_dir / observation.spool_path, max_pixels=config.max_image_pixels)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(out.suffix or ".jpg", draw_job(image, job.to_dict()))
    if not ok:
        raise ValueError(f"cannot encode an image as {out.suffix!r}; use .jpg or .png")
    out.write_bytes(buf.tobytes())
    return out

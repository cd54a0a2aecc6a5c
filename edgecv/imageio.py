"""Image bytes: sniffing, header dimensions, completeness, decoding. The one home for decoding.

Header parsing is cheap and happens before anything large is allocated, so a decompression bomb
(a tiny file claiming 30000×30000 pixels) is refused without decoding it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from edgecv.errors import ImageUnreadable

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


@dataclass(frozen=True)
class ImageHeader:
    media_type: str  # image/jpeg, image/png, …
    width: int  # after EXIF orientation
    height: int
    complete: bool  # the end-of-image marker is present (JPEG EOI, PNG IEND)
    orientation: int = 1  # EXIF orientation tag (1 = upright)


def sniff(data: bytes) -> str | None:
    """Media type from magic bytes, or None when the bytes are not an image edgecv reads."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_header(data: bytes) -> ImageHeader:
    """Media type, dimensions and completeness from the header alone. Raises ImageUnreadable."""
    media_type = sniff(data)
    if media_type is None:
        raise ImageUnreadable("not an image: the bytes are not JPEG, PNG, BMP or WebP")
    try:
        if media_type == "image/jpeg":
            return _jpeg_header(data)
        if media_type == "image/png":
            return _png_header(data)
        if media_type == "image/bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return ImageHeader(media_type, abs(w), abs(h), len(data) >= struct.unpack("<I", data[2:6])[0])
        return _webp_header(data)
    except (struct.error, IndexError, ValueError):
        raise ImageUnreadable(f"{media_type} header is truncated or corrupt") from None


def _png_header(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    w, h = struct.unpack(">II", data[16:24])
    return ImageHeader("image/png", w, h, data.rstrip(b"\x00")[-8:-4] == b"IEND")


def _webp_header(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    complete = len(data) >= struct.unpack("<I", data[4:8])[0] + 8
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return ImageHeader("image/webp", w & 0x3FFF, h & 0x3FFF, complete)
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, complete)
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("image/webp", w, h, complete)
    raise ValueError("unknown WebP chunk")


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(data: bytes) -> ImageHeader:
    pos, orientation = 2, 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            orientation = _exif_orientation(data[pos + 10 : pos + 2 + length])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if orientation in (5, 6, 7, 8):
                w, h = h, w
            complete = b"\xff\xd9" in data[-64:]
            return ImageHeader("image/jpeg", w, h, complete, orientation)
        pos += 2 + length
    raise ValueError("no SOF marker")


def _exif_orientation(tiff: bytes) -> int:
    if len(tiff) < 8:
        return 1
    endian = "<" if tiff[:2] == b"II" else ">"
    offset = struct.unpack(endian + "I", tiff[4:8])[0]
    count = struct.unpack(endian + "H", tiff[offset : offset + 2])[0]
    for i in range(count):
        entry = tiff[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, _typ, _n = struct.unpack(endian + "HHI", entry[:8])
        if tag == 0x0112:
            value = struct.unpack(endian + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


# A JPEG over this many pixels is decoded at 1/2, 1/4 or 1/8 size (libjpeg's DCT scaling: the full
# image is never in memory) when it only feeds a model input far smaller than itself; the reduced image
# stays at least REDUCE_MARGIN × the input in both axes. Smaller images (every phone photo at its
# default 12 MP, 4K frames) decode exactly as before. PNG, BMP and WebP have no reduced decoder in
# OpenCV (its IMREAD_REDUCED_* flags decode those in full, then resize), so they are always decoded full.
REDUCE_ABOVE_PIXELS = 20_000_000
REDUCE_MARGIN = 2.0
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass(frozen=True)
class Decoded:
    """A decoded image and the full size of the original (after EXIF orientation)."""

    image: np.ndarray
    size: tuple[int, int]  # (width, height) of the original image

    @property
    def reduced(self) -> bool:
        return (self.image.shape[1], self.image.shape[0]) != self.size


def reduction_for(header: ImageHeader, fit: tuple[int, int] | None) -> int:
    """1, or the DCT reduction (2, 4, 8) to decode a large JPEG with for a model input of ``fit``
    (width, height) pixels: the largest that keeps the image REDUCE_MARGIN × ``fit`` in both axes."""
    if (
        fit is None
        or header.media_type != "image/jpeg"
        or header.width * header.height <= REDUCE_ABOVE_PIXELS
    ):
        return 1
    room = min(header.width / fit[0], header.height / fit[1]) / REDUCE_MARGIN
    return next((f for f in (8, 4, 2) if f <= room), 1)


def decode(data: bytes, *, max_pixels: int | None = None, fit: tuple[int, int] | None = None) -> np.ndarray:
    """Bytes → BGR uint8 image, EXIF orientation applied. Raises ImageUnreadable with the reason.

    With ``fit`` (a model input's width, height) a large JPEG may come back reduced (``reduction_for``);
    without it the image is always full size."""
    return decode_sized(data, max_pixels=max_pixels, fit=fit).image


def decode_sized(
    data: bytes, *, max_pixels: int | None = None, fit: tuple[int, int] | None = None
) -> Decoded:
    """As ``decode``, with the original size beside the (possibly reduced) image."""
    header = read_header(data)
    if max_pixels is not None and header.width * header.height > max_pixels:
        raise ImageUnreadable(
            f"image is {header.width}×{header.height} pixels, more than the limit of {max_pixels}; "
            "downscale it or raise max_image_pixels"
        )
    if not header.complete:
        raise ImageUnreadable(
            f"{header.media_type} file is truncated (no end-of-image marker); send it again"
        )
    flags = _REDUCED_FLAGS.get(reduction_for(header, fit), cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageUnreadable(f"{header.media_type} data could not be decoded; the file is corrupt")
    return Decoded(image, (header.width, header.height))


def read_file(path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImageUnreadable(f"cannot read {path}: {exc.strerror}") from None


def decode_file(path, *, max_pixels: int | None = None) -> np.ndarray:
    """The full-size image in the file at ``path``."""
    return decode(read_file(path), max_pixels=max_pixels)


def decode_file_sized(path, *, max_pixels: int | None = None, fit: tuple[int, int] | None = None) -> Decoded:
    """The image at ``path`` for a model input of ``fit`` pixels (reduced when large), with its full size."""
    return decode_sized(read_file(path), max_pixels=max_pixels, fit=fit)

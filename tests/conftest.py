"""Shared fixtures: a real data dir, a real inbox, and a real (tiny) model package on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fixtures import make_package, red_rectangle_image

from edgecv.config import load_config
from edgecv.store import Store


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A models folder holding ``rect``: an ONNX + OpenVINO IR detector of red rectangles."""
    root = tmp_path_factory.mktemp("models")
    make_package(root, "rect", with_ir=True)
    return root


def jpeg_bytes(width: int = 320, height: int = 240, box=(100, 60, 180, 140), quality: int = 95) -> bytes:
    """A JPEG of a red rectangle at ``box`` (x1, y1, x2, y2) on a dark background."""
    ok, buf = cv2.imencode(
        ".jpg", red_rectangle_image(width, height, box), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return buf.tobytes()


def distinct_jpeg(i: int) -> bytes:
    """Different bytes per ``i`` (the rectangle moves), so each is its own observation."""
    x = 20 + (i * 7) % 200
    y = 20 + (i * 3) % 120
    return jpeg_bytes(box=(x, y, x + 60, y + 50))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def inbox(tmp_path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def config(data_dir, inbox, models_root):
    return load_config(
        overrides={
            "data_dir": data_dir,
            "inbox": inbox,
            "models_dirs": [models_root],
            "default_model": "rect",
            "api.enabled": False,
        },
        environ={},
    )


@pytest.fixture
def store(config):
    s = Store(config.db_path)
    yield s
    s.close()


@pytest.fixture
def image_array() -> np.ndarray:
    return red_rectangle_image(320, 240, (100, 60, 180, 140))

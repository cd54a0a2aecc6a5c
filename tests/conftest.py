"""Shared fixtures: a real data dir, a real inbox, and a real (tiny) model package on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.runtime import make_package, red_rectangle_image

from edgecv.config import load_config
from edgecv.store import Store


@pytest.fixture(autouse=True)
def _restore_umask():
    """The CLI makes its process umask private (edgecv.paths.private_umask); CliRunner runs it in this
    process, so put the umask back after each test."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A models folder holding ``rect``: an ONNX + OpenVINO IR detector of red rectangles."""
    root = tmp_path_factory.mktemp("models")
    make_package(root, "rect", with_ir=True)
    return root


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

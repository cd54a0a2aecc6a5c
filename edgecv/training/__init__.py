"""Training edgecv's detectors (EdgeDet): network, loss, data, time-budgeted loop, export, and
``edgecv models train`` (a custom model from a user's labelled photos, on a CPU or an NVIDIA GPU).

Never imported by the agent at run time. Everything but ``dataset.py`` needs PyTorch, which is not a
dependency of edgecv: ``require_torch`` says how to install it.
"""

from __future__ import annotations

import importlib.util

from edgecv.errors import TrainingError

TORCH_VERSION = "2.13.0"
INSTALL_HINT = f"pip install torch=={TORCH_VERSION} (the CPU build) and pip install 'edgecv[train]'"


def require_torch() -> None:
    """Raise ``TrainingError`` naming the install commands when torch or the train extra is missing."""
    missing = [
        m for m in ("torch", "onnx", "nncf", "faster_coco_eval") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise TrainingError(
            f"training needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}",
        )

"""``edgecv models train``: a user's labelled photos → a checked split → a fine-tuned EdgeDet → FP32 and
INT8 files (calibrated on the user's own images) → evaluation → model card → an installed package.

The run lives in ``<data dir>/training/<name>/`` (the split, checkpoints, the package before it is
installed); a stopped run is continued with ``resume``. Nothing is written to the installed models until
the package is complete and evaluated, and then in one rename (``runtime.custom.install_files``).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecv.config import Config
from edgecv.errors import ModelPackageError, TrainingError
from edgecv.imageio import decode_file
from edgecv.runtime.custom import install_files
from edgecv.runtime.installed import find_package, installed_models
from edgecv.runtime.package import NAME_RE, ModelPackage
from edgecv.training import require_torch
from edgecv.training.dataset import DatasetCheck, write_yolo

log = logging.getLogger(__name__)

SCRATCH = "scratch"
DEFAULT_BASE = "shelf-detection-v2"
DEFAULT_SIZE = (640, 384)
CALIBRATION_IMAGES = 200
ORT_CHUNK = 10  # ONNX Runtime calibration slices: bounded memory (export.onnx_int8)


@dataclass
class TrainRequest:
    """What the user asked for (``edgecv models train`` options)."""

    data: Path
    name: str
    base: str = DEFAULT_BASE  # an installed EdgeDet package, or "scratch"
    minutes: float = 30.0
    imgsz: tuple[int, int] | None = None  # (width, height); default: the base package's input
    threads: int = 1
    resume: bool = False
    force: bool = False
    seed: int = 0
    device: str = "auto"
    val_every_min: float | None = None  # default: a tenth of the budget

    def key(self, names: list[str]) -> dict:
        """What must be the same for ``resume`` to continue a run."""
        return {
            "data": str(Path(self.data).resolve()),
            "base": self.base,
            "imgsz": list(self.imgsz or []),
            "names": list(names),
        }


@dataclass
class TrainResult:
    stopped: bool
    checkpoint: Path
    package: ModelPackage | None = None
    report: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def work_dir(config: Config, name: str) -> Path:
    return config.data_dir / "training" / name


def train_custom(
    request: TrainRequest,
    config: Config,
    check: DatasetCheck,
    *,
    progress: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
    stage: Callable[[str], None] = log.info,
) -> TrainResult:
    """Train, export, evaluate and install ``request.name`` from the checked data (``check`` without
    errors). Returns early, with ``stopped`` and the checkpoint, when ``stop`` is set."""
    check.raise_if_errors()
    _check_name(config, request)
    require_torch()
    from edgecv.training.data import Augment, DetectionDataset
    from edgecv.training.loop import TrainConfig, train

    init, init_names, size = _base(config, request)
    width, height = request.imgsz or size
    if width % 32 or height % 32 or width < 32 or height < 32:
        raise TrainingError(f"--imgsz {width}x{height}: both sides must be multiples of 32 (e.g. 640x384)")
    run = work_dir(config, request.name)
    request = TrainRequest(**{**asdict(request), "imgsz": (width, height)})
    continue_from = _prepare_run(run, request, check.names)

    stage(f"loading {len(check.train)} training and {len(check.val)} validation images at {width}x{height}")
    train_ds, val_ds = (
        DetectionDataset(width, height, check.names),
        DetectionDataset(width, height, check.names),
    )
    for ds, samples in ((train_ds, check.train), (val_ds, check.val)):
        for s in samples:
            ds.add(s.path, decode_file(s.path), s.labels)
    cfg = TrainConfig(
        data=str(request.data),
        out=str(run),
        width=width,
        height=height,
        minutes=request.minutes,
        lr=5e-4 if init else 2e-3,
        threads=request.threads,
        seed=request.seed,
        init=init,
        init_names=init_names,
        new_head_ok=True,
        continue_from=str(continue_from) if continue_from else None,
        reg_lo=1,
        device=request.device,
        val_every_min=request.val_every_min or max(request.minutes / 10, 0.01),
        aug=Augment(fliplr=0.5),
    )
    try:
        outcome = train(cfg, train_ds, val_ds, progress=progress, stop=stop)
    except ValueError as exc:  # a base package whose weights cannot seed EdgeDet
        raise TrainingError(str(exc)) from None
    if outcome.stopped:
        return TrainResult(True, outcome.path, summary=outcome.summary)
    return _finish(request, config, check, run, outcome.path, outcome.summary, stage)


def _check_name(config: Config, request: TrainRequest) -> None:
    """The name is valid, hides no other package, and is free (or ``force``)."""
    if not NAME_RE.match(request.name or ""):
        raise ModelPackageError(
            f"model name: expected lowercase letters, digits, '.', '_' or '-' (at most 64), got {request.name!r}"
        )
    other = installed_models(config).get(request.name)
    if other is not None and other.path.parent.resolve() != config.user_models_dir.resolve():
        raise TrainingError(
            f"{request.name!r} is the name of the package in {other.path}; choose another name "
            "(a trained package would hide it)"
        )
    dest = config.user_models_dir / request.name
    if dest.exists() and not request.force:
        raise TrainingError(
            f"model {request.name!r} is already installed at {dest}; use --force to replace it"
        )


def _base(config: Config, request: TrainRequest) -> tuple[str | None, list[str] | None, tuple[int, int]]:
    """The base package's ``model-fp32.onnx``, labels and input size (``scratch``: none, 640x384)."""
    if request.base == SCRATCH:
        return None, None, DEFAULT_SIZE
    pkg = find_package(config, request.base)
    onnx = pkg.path / "model-fp32.onnx"
    if not onnx.is_file():
        raise TrainingError(
            f"{request.base}: has no model-fp32.onnx to start from; choose an EdgeDet package "
            f"(shelf-detection-v2, building-inspection-v1, damage-assessment-v1, one trained here) or scratch"
        )
    return str(onnx), list(pkg.labels), (pkg.input.width, pkg.input.height)


def _prepare_run(run: Path, request: TrainRequest, names: list[str]) -> Path | None:
    """The run folder: kept for ``resume`` (the checkpoint to continue from), else started afresh."""
    state = run / "request.json"
    last = run / "last.pt"
    if request.resume:
        if not last.is_file() or not state.is_file():
            raise TrainingError(
                f"nothing to resume for {request.name!r}: no stopped run in {run}; run without --resume"
            )
        before = json.loads(state.read_text())
        if before != request.key(names):
            raise TrainingError(
                f"--resume: the stopped run of {request.name!r} used {before}, not {request.key(names)}; "
                "run with the same --data, --from and --imgsz, or without --resume to start over"
            )
        return last
    if last.is_file() and not request.force:
        raise TrainingError(
            f"a stopped run of {request.name!r} is in {run}: add --resume to continue it, "
            "or --force to start over"
        )
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    state.write_text(json.dumps(request.key(names)) + "\n")
    return None


def _finish(
    request: TrainRequest,
    config: Config,
    check: DatasetCheck,
    run: Path,
    checkpoint: Path,
    summary: dict,
    stage: Callable[[str], None],
) -> TrainResult:
    from edgecv.evaluation import evaluate_package
    from edgecv.training import export
    from edgecv.training.card import model_card
    from edgecv.training.loop import load_checkpoint

    model, ck = load_checkpoint(checkpoint)
    width, height, names = ck["width"], ck["height"], ck["names"]
    pkg = run / "package" / request.name  # a package folder is named after its model
    shutil.rmtree(pkg.parent, ignore_errors=True)
    pkg.mkdir(parents=True)
    stage("exporting ONNX and OpenVINO FP32")
    export.export_onnx(model, width, height, pkg / "model-fp32.onnx", names)
    export.openvino_fp32(pkg / "model-fp32.onnx", pkg / "openvino-fp32" / "model.xml")
    calib_paths = [s.path for s in check.train][:CALIBRATION_IMAGES]
    stage(
        f"quantizing to INT8 (NNCF and ONNX Runtime), calibrated on {len(calib_paths)} of your training images"
    )
    calib = export.image_tensors(calib_paths, width, height)
    export.openvino_int8(pkg / "openvino-fp32" / "model.xml", calib, pkg / "openvino-int8" / "model.xml")
    export.onnx_int8(
        pkg / "model-fp32.onnx", calib, pkg / "model-int8.onnx", recipe="careful", chunk=ORT_CHUNK
    )
    described = dict(
        name=request.name,
        version="1.0.0",
        description=f"Custom model trained on {check.root.name} ({', '.join(names)})",
        use_case="custom",
        pipeline="generic",
        width=width,
        height=height,
        labels=names,
        conf=0.25,
        iou=0.5,
        max_det=300,
        training_data=f"{len(check.train)} labelled images from {check.root} ({check.format}); "
        f"started from {request.base}; {summary['step']} steps in {summary['train_minutes']} min",
    )
    export.write_package(pkg, **described)
    stage(f"evaluating OpenVINO INT8 and FP32, ONNX Runtime INT8 on the {len(check.val)} validation images")
    val_dir = write_yolo(check.val, names, run / "val")
    int8 = evaluate_package(pkg, val_dir, backend="openvino", precision="int8")
    fp32 = evaluate_package(pkg, val_dir, backend="openvino", precision="fp32", inference_precision="f32")
    ort_int8 = evaluate_package(pkg, val_dir, backend="onnx", precision="int8")
    report = {
        "model": request.name,
        "data": str(check.root),
        "validation": {"images": len(check.val), "boxes": int(int8["instances"]), "folder": str(val_dir)},
        "int8": _figures(int8),
        "fp32": _figures(fp32),
        "onnxInt8": _figures(ort_int8),
        "int8LossMAP50_95Points": round(100 * (fp32["mAP50_95"] - int8["mAP50_95"]), 2),
        "onnxInt8LossMAP50_95Points": round(100 * (fp32["mAP50_95"] - ort_int8["mAP50_95"]), 2),
        "training": summary,
        "base": request.base,
    }
    evaluation = {
        "mAP50": int8["mAP50"],
        "mAP50_95": int8["mAP50_95"],
        "fp32MAP50_95": fp32["mAP50_95"],
        "data": f"validation split of {check.root} ({len(check.val)} images)",
    }
    export.write_package(pkg, **described, evaluation=evaluation)
    (pkg / "eval-report.json").write_text(json.dumps(report, indent=2) + "\n")
    (pkg / "MODEL_CARD.md").write_text(model_card(report, check, request, described))
    manifest = json.loads((pkg / "model.json").read_text())
    files = {
        p: str(p.relative_to(pkg)) for p in sorted(pkg.rglob("*")) if p.is_file() and p.name != "model.json"
    }
    for ws in manifest["weights"]:
        ws["files"] = list(ws["files"])
    installed = install_files(files, manifest, config.user_models_dir, request.force)
    (run / "last.pt").unlink(missing_ok=True)  # finished: nothing left to resume
    shutil.rmtree(pkg.parent, ignore_errors=True)
    stage(f"installed {request.name} in {installed.path}")
    return TrainResult(False, checkpoint, installed, report, summary)


def _figures(r: dict) -> dict:
    return {
        "mAP50": r["mAP50"],
        "mAP50_95": r["mAP50_95"],
        "perClass": r["per_class"],
        "atThreshold": r["atThreshold"],
    }

"""Model packages: a folder with a manifest (``model.json`` or ``model.toml``) and sha256-pinned weights.

The format is documented in ``docs/model-package.md``. Parsing validates every field with
"expected X, got Y" messages that name the manifest and the field, so a user editing a manifest by hand
sees exactly what to fix. Nothing here imports an inference runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import ModelPackageError
from edgecv.logging_setup import log_name

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("model.json", "model.toml")
BACKENDS = ("openvino", "onnx")
MODEL_SUFFIX = {"openvino": ".xml", "onnx": ".onnx"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MISSING = object()


@dataclass(frozen=True)
class InputSpec:
    """The network's static input: size, channel order, layout, normalisation, letterbox."""

    width: int
    height: int
    color: str = "RGB"
    layout: str = "NCHW"
    scale: float = 255.0
    letterbox: bool = True
    pad_value: int = 114


@dataclass(frozen=True)
class Thresholds:
    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 300
    agnostic: bool = False  # NMS across classes: one box per object whatever class each anchor guessed


SCENES = ("retail", "facade", "surface")


@dataclass(frozen=True)
class DomainSpec:
    """The scene a model was made for and the scene-check score under which a job is refused
    (``domain`` in model.json; see :mod:`edgecv.runtime.scene`)."""

    scene: str
    threshold: float = 0.5


@dataclass(frozen=True)
class WeightSet:
    """One way to run the model: a backend, a precision and its files (relative path → sha256)."""

    backend: str
    precision: str
    files: dict[str, str]

    @property
    def model_file(self) -> str:
        """The file a runtime reads: the ``.xml`` of an IR or the ``.onnx`` file."""
        return next(f for f in self.files if f.endswith((".xml", ".onnx")))

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.precision}"


@dataclass(frozen=True)
class ModelPackage:
    name: str
    version: str
    description: str
    use_case: str
    task: str
    pipeline: str
    input: InputSpec
    labels: list[str]
    thresholds: Thresholds
    weights: list[WeightSet]
    default_backend: str
    default_precision: str
    path: Path
    evaluation: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    pipeline_options: dict = field(default_factory=dict)
    domain: DomainSpec | None = None  # None: no scene check (custom models)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def weight_set(self, backend: str | None = None, precision: str | None = None) -> WeightSet:
        """The weight set for ``backend``/``precision``; ``None`` means the manifest default.

        With only ``backend`` given, the default precision is used if that backend has it, else the
        first precision listed for that backend.
        """
        backend = backend or self.default_backend
        candidates = [w for w in self.weights if w.backend == backend]
        if precision is None:
            preferred = [w for w in candidates if w.precision == self.default_precision]
            candidates = preferred or candidates
        else:
            candidates = [w for w in candidates if w.precision == precision]
        if not candidates:
            wanted = f"{backend}/{precision or '*'}"
            have = ", ".join(w.key for w in self.weights)
            raise ModelPackageError(f"model {self.name!r} has no weights for {wanted}; it has: {have}")
        return candidates[0]

    def model_path(self, weights: WeightSet) -> Path:
        return self.path / weights.model_file

    def to_dict(self) -> dict:
        """camelCase summary for ``edgecv models show --json`` and the API models list."""
        spec = self.input
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "useCase": self.use_case,
            "task": self.task,
            "pipeline": self.pipeline,
            "input": {
                "width": spec.width,
                "height": spec.height,
                "color": spec.color,
                "layout": spec.layout,
                "scale": spec.scale,
                "letterbox": spec.letterbox,
                "padValue": spec.pad_value,
            },
            "labels": list(self.labels),
            "thresholds": {
                "confidence": self.thresholds.confidence,
                "iou": self.thresholds.iou,
                "maxDetections": self.thresholds.max_detections,
                "agnosticNms": self.thresholds.agnostic,
            },
            "backends": [{"backend": w.backend, "precision": w.precision} for w in self.weights],
            "default": {"backend": self.default_backend, "precision": self.default_precision},
            "evaluation": self.evaluation,
            "path": str(self.path),
        }


class _Fields:
    """Typed reads from one manifest mapping; every failure names the manifest and the field."""

    def __init__(self, source: str, data: Any, where: str = "") -> None:
        self.source, self.where = source, where
        if not isinstance(data, dict):
            self.fail(where or "manifest", "an object", data)
        self.data = data

    def fail(self, key: str, expected: str, got: Any) -> None:
        shown = f"{type(got).__name__} {got!r}" if got is not _MISSING else "nothing (field missing)"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ModelPackageError(f"{self.source}: {self._path(key)}: expected {expected}, got {shown}")

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key != self.where else key

    def get(self, key: str, kind: type | tuple, expected: str, default: Any = _MISSING) -> Any:
        value = self.data.get(key, default)
        if value is _MISSING or not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            self.fail(key, expected, value)
        return value

    def text(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> str:
        value = self.get(key, str, "a string", default)
        if choices and value not in choices:
            self.fail(key, "one of " + ", ".join(choices), value)
        if not value and not choices and default is _MISSING:
            self.fail(key, "a non-empty string", value)
        return value

    def number(self, key: str, default: Any = _MISSING, lo: float = 0.0, hi: float | None = None) -> float:
        value = self.get(key, (int, float), "a number", default)
        if value < lo or (hi is not None and value > hi):
            self.fail(key, f"a number in [{lo}, {hi if hi is not None else 'inf'}]", value)
        return float(value)

    def integer(self, key: str, default: Any = _MISSING, lo: int = 1) -> int:
        value = self.get(key, int, f"an integer >= {lo}", default)
        if value < lo:
            self.fail(key, f"an integer >= {lo}", value)
        return value

    def sub(self, key: str, default: Any = _MISSING) -> _Fields:
        return _Fields(self.source, self.get(key, dict, "an object", default), self._path(key))


def parse_manifest(manifest: dict, pkg_dir: Path, source: str = "model.json") -> ModelPackage:
    """Validate a manifest mapping and build the package (no file access)."""
    top = _Fields(source, manifest)
    name = top.text("name")
    if not NAME_RE.match(name):
        top.fail("name", "lowercase letters, digits, '.', '_' or '-' (at most 64)", name)
    labels = top.get("labels", list, "a non-empty list of non-empty strings")
    if not labels or not all(isinstance(x, str) and x for x in labels):
        top.fail("labels", "a non-empty list of non-empty strings", labels)
    weights = _parse_weights(top, source)
    default = top.sub("default", {})
    backend = default.text("backend", weights[0].backend, BACKENDS)
    same_backend = [w.precision for w in weights if w.backend == backend]
    precision = default.text("precision", same_backend[0] if same_backend else weights[0].precision)
    if f"{backend}/{precision}" not in {w.key for w in weights}:
        have = ", ".join(w.key for w in weights)
        top.fail("default", f"a backend/precision listed in weights ({have})", f"{backend}/{precision}")
    return ModelPackage(
        name=name,
        version=top.text("version"),
        description=top.text("description", ""),
        use_case=top.text("useCase", ""),
        task=top.text("task", "detect", ("detect",)),
        pipeline=top.text("pipeline", "generic"),
        input=_parse_input(top.sub("input")),
        labels=list(labels),
        thresholds=_parse_thresholds(top.sub("thresholds", {})),
        weights=weights,
        default_backend=backend,
        default_precision=precision,
        path=pkg_dir,
        evaluation=top.get("evaluation", dict, "an object", {}),
        manifest=manifest,
        pipeline_options=top.get("pipelineOptions", dict, "an object", {}),
        domain=_parse_domain(top.sub("domain")) if "domain" in manifest else None,
    )


def _parse_domain(f: _Fields) -> DomainSpec:
    return DomainSpec(scene=f.text("scene", choices=SCENES), threshold=f.number("threshold", 0.5, hi=1.0))


def _parse_input(f: _Fields) -> InputSpec:
    return InputSpec(
        width=f.integer("width", lo=8),
        height=f.integer("height", lo=8),
        color=f.text("color", "RGB", ("RGB", "BGR")),
        layout=f.text("layout", "NCHW", ("NCHW", "NHWC")),
        scale=f.number("scale", 255.0, lo=1e-6),
        letterbox=f.get("letterbox", bool, "true or false", True),
        pad_value=int(f.integer("padValue", 114, lo=0)),
    )


def _parse_thresholds(f: _Fields) -> Thresholds:
    return Thresholds(
        confidence=f.number("confidence", 0.25, 0.0, 1.0),
        iou=f.number("iou", 0.45, 0.0, 1.0),
        max_detections=f.integer("maxDetections", 300),
        agnostic=f.get("agnosticNms", bool, "true or false", False),
    )


def _parse_weights(top: _Fields, source: str) -> list[WeightSet]:
    entries = top.get("weights", list, "a non-empty list of weight sets")
    if not entries:
        top.fail("weights", "a non-empty list of weight sets", entries)
    result: list[WeightSet] = []
    for i, entry in enumerate(entries):
        f = _Fields(source, entry, f"weights[{i}]")
        backend = f.text("backend", choices=BACKENDS)
        precision = f.text("precision")
        files = f.get("files", dict, "an object mapping relative path to sha256")
        for rel, digest in files.items():
            _check_relpath(f, rel)
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                f.fail(f"files[{rel!r}]", "a lowercase hex sha256 (64 characters)", digest)
        models = [r for r in files if r.endswith(MODEL_SUFFIX[backend])]
        if len(models) != 1:
            f.fail("files", f"exactly one {MODEL_SUFFIX[backend]} file for backend {backend}", list(files))
        if backend == "openvino" and models[0][:-4] + ".bin" not in files:
            f.fail("files", f"{models[0][:-4]}.bin next to {models[0]}", list(files))
        ws = WeightSet(backend, precision, dict(files))
        if ws.key in {w.key for w in result}:
            f.fail(
                "precision", f"a backend/precision pair not listed before ({ws.key} is repeated)", precision
            )
        result.append(ws)
    return result


def _check_relpath(f: _Fields, rel: str) -> None:
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or "\\" in rel:
        f.fail("files", "paths relative to the package folder, inside it", rel)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(pkg_dir: Path) -> tuple[dict, str]:
    """The raw manifest mapping of ``pkg_dir`` and the manifest's file name."""
    for fname in MANIFEST_NAMES:
        path = pkg_dir / fname
        if path.is_file():
            return _read_manifest_file(path), fname
    raise ModelPackageError(f"{pkg_dir}: no model.json or model.toml in the package folder")


def _read_manifest_file(path: Path) -> dict:
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(path.read_text(encoding="utf-8"))
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{path}: not a valid manifest: {exc}") from exc
    except RecursionError:
        raise ModelPackageError(f"{path}: not a valid manifest: it nests too deep") from None


def load_package(path: Path, *, verify: bool = True) -> ModelPackage:
    """Parse and validate the package at ``path``; with ``verify``, check every file's sha256.

    The manifest ``name`` must equal the folder name: the folder name is what jobs refer to.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelPackageError(f"{path}: model package folder does not exist")
    manifest, fname = read_manifest(path)
    package = parse_manifest(manifest, path, f"{path / fname}")
    if package.name != path.name:
        raise ModelPackageError(
            f"{path / fname}: name: expected {path.name!r} (the folder name), got {package.name!r}"
        )
    if verify:
        verify_files(package)
    else:
        _check_present(package)
    return package


def _check_present(package: ModelPackage) -> None:
    for ws in package.weights:
        for rel in ws.files:
            if not (package.path / rel).is_file():
                raise ModelPackageError(f"model {package.name!r}: weight file {rel} is missing")


def verify_files(package: ModelPackage) -> None:
    """sha256-check every weight file; raise naming the file and both hashes on a mismatch."""
    _check_present(package)
    for ws in package.weights:
        for rel, expected in ws.files.items():
            actual = sha256_file(package.path / rel)
            if actual != expected:
                raise ModelPackageError(
                    f"model {package.name!r}: {rel} is corrupt or was changed: "
                    f"expected sha256 {expected}, got {actual}"
                )


def discover_packages(dirs: list[Path], *, verify: bool = False) -> dict[str, ModelPackage]:
    """Every loadable package under ``dirs`` by name; the first dir holding a name wins.

    A broken package is logged and skipped so one bad folder cannot take the agent down.
    """
    found: dict[str, ModelPackage] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            log.debug("model dir %s does not exist; skipped", log_name(root))
            continue
        for pkg_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if pkg_dir.name in found or not any((pkg_dir / m).is_file() for m in MANIFEST_NAMES):
                continue
            try:
                found[pkg_dir.name] = load_package(pkg_dir, verify=verify)
            except ModelPackageError as exc:
                log.warning("skipping model package %s: %s", log_name(pkg_dir), exc)
    return found


def bundled_models_dir() -> Path | None:
    """Shipped packages: ``edgecv/_models`` in a wheel install, ``<repo>/models`` in a checkout."""
    pkg_root = Path(__file__).resolve().parent.parent
    installed = pkg_root / "_models"
    if installed.is_dir():
        return installed
    checkout = pkg_root.parent / "models"
    if checkout.is_dir() and (pkg_root.parent / "pyproject.toml").is_file():
        return checkout
    return None


def write_manifest(pkg_dir: Path, manifest: dict) -> None:
    """Write ``pkg_dir/model.json`` with the sha256 of every weight file listed.

    Each weight set's ``files`` may be a list of relative paths or a mapping (its values are
    replaced). The manifest is validated before anything is written; the write is atomic.
    """
    pkg_dir = Path(pkg_dir)
    manifest = json.loads(json.dumps(manifest))
    for ws in manifest.get("weights") or []:
        if isinstance(ws, dict) and isinstance(ws.get("files"), (list, dict)):
            rels = list(ws["files"])
            for rel in rels:
                if not (pkg_dir / rel).is_file():
                    raise ModelPackageError(f"{pkg_dir}: weight file {rel} does not exist")
            ws["files"] = {rel: sha256_file(pkg_dir / rel) for rel in rels}
    parse_manifest(manifest, pkg_dir, str(pkg_dir / "model.json"))
    tmp = pkg_dir / "model.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, pkg_dir / "model.json")

"""Turn a user's own Ultralytics export into a model package (``edgecv models add``).

Two export formats are accepted, both carrying the metadata Ultralytics writes:

- ``model.onnx``: class names and input size in the ONNX ``metadata_props`` (``names`` is a Python
  dict literal such as ``"{0: 'person', 1: 'car'}"``, ``imgsz`` a list literal such as ``"[640, 640]"``);
- ``*_openvino_model/``: ``<stem>.xml`` + ``<stem>.bin`` and a ``metadata.yaml`` with the same keys.

The package gets pipeline ``generic``; its output must follow the ``[1, 4+nc, N]`` contract.
"""

from __future__ import annotations

import ast
import json
import logging
import shutil
import tempfile
from pathlib import Path

from edgecv.errors import ModelPackageError
from edgecv.logging_setup import log_name
from edgecv.paths import ensure_writable_dir
from edgecv.runtime.package import NAME_RE, ModelPackage, load_package, write_manifest

log = logging.getLogger(__name__)


def parse_names(value: object, source: str) -> list[str]:
    """Class names from Ultralytics ``names`` (dict literal, mapping or list) as an index-ordered list."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ModelPackageError(
                f"{source}: names: expected a dict literal like {{0: 'person'}}, got {value!r}"
            ) from exc
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelPackageError(
            f"{source}: names: expected a non-empty mapping of class index to name, got {value!r}"
        )
    try:
        by_index = {int(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise ModelPackageError(
            f"{source}: names: expected integer class indices, got {list(value)!r}"
        ) from exc
    if sorted(by_index) != list(range(len(by_index))):
        raise ModelPackageError(
            f"{source}: names: expected indices 0..{len(by_index) - 1}, got {sorted(by_index)}"
        )
    return [by_index[i] for i in range(len(by_index))]


def parse_imgsz(value: object, source: str) -> tuple[int, int]:
    """``(height, width)`` from Ultralytics ``imgsz`` (``"[640, 640]"``, a list, or one int)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ModelPackageError(
                f"{source}: imgsz: expected a list like [640, 640], got {value!r}"
            ) from exc
    if isinstance(value, int):
        value = [value, value]
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise ModelPackageError(f"{source}: imgsz: expected [height, width] positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _dims(shape: list) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _check_shapes(source: str, input_shape: list, output_shape: list, size: tuple[int, int], nc: int) -> None:
    h, w = size
    inp, out = _dims(input_shape), _dims(output_shape)
    if len(inp) != 4 or inp[1] not in (3, None) or inp[2] not in (h, None) or inp[3] not in (w, None):
        raise ModelPackageError(
            f"{source}: input: expected shape [1, 3, {h}, {w}] (imgsz), got {input_shape}"
        )
    if len(out) != 3 or out[1] not in (4 + nc, None):
        raise ModelPackageError(
            f"{source}: output: expected shape [1, {4 + nc}, N] (4 box values + {nc} classes from names), "
            f"got {output_shape}; only Ultralytics detection exports without NMS are supported"
        )


def _check_task(metadata: dict, source: str) -> None:
    task = metadata.get("task", "detect")
    if task != "detect":
        raise ModelPackageError(f"{source}: task: expected detect, got {task!r}")


PYTORCH_SUFFIXES = (".pt", ".pth")


def _onnx_info(onnx_path: Path) -> tuple[dict, list, list]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        log.debug("onnxruntime could not load %s: %s", onnx_path, exc)
        raise ModelPackageError(
            f"{onnx_path}: not a valid ONNX model; export one with `yolo export model=best.pt format=onnx`, "
            "or pass an OpenVINO IR folder (model.xml + model.bin + metadata.yaml)"
        ) from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    return meta, list(session.get_inputs()[0].shape), list(session.get_outputs()[0].shape)


def add_ultralytics_onnx(
    onnx_path: Path,
    name: str,
    dest_root: Path,
    *,
    description: str = "Custom-trained model",
    force: bool = False,
) -> ModelPackage:
    """Install an Ultralytics ``.onnx`` export as package ``dest_root/name`` and return it loaded."""
    onnx_path = Path(onnx_path)
    if onnx_path.is_dir():
        return add_ultralytics_openvino(onnx_path, name, dest_root, description=description, force=force)
    if not onnx_path.is_file():
        raise ModelPackageError(f"{onnx_path}: file does not exist")
    if onnx_path.suffix.lower() in PYTORCH_SUFFIXES:
        raise ModelPackageError(
            f"{onnx_path}: a PyTorch checkpoint cannot run here; export it to ONNX first "
            f"(yolo export model={onnx_path} format=onnx) and add the .onnx file"
        )
    _check_name(name)
    meta, in_shape, out_shape = _onnx_info(onnx_path)
    source = str(onnx_path)
    labels, size = _labels_and_size(meta, source, "ONNX metadata")
    _check_shapes(source, in_shape, out_shape, size, len(labels))
    files = {onnx_path: "model.onnx"}
    weights = {"backend": "onnx", "precision": "fp32", "files": ["model.onnx"]}
    return _install(
        files, weights, _manifest(name, description, labels, size, meta, onnx_path), dest_root, force
    )


def add_ultralytics_openvino(
    folder: Path,
    name: str,
    dest_root: Path,
    *,
    description: str = "Custom-trained model",
    force: bool = False,
) -> ModelPackage:
    """Install an Ultralytics ``*_openvino_model/`` export folder as package ``dest_root/name``."""
    folder = Path(folder)
    xmls = sorted(folder.glob("*.xml"))
    if len(xmls) != 1 or not xmls[0].with_suffix(".bin").is_file():
        raise ModelPackageError(
            f"{folder}: expected one <model>.xml with its .bin, got {[p.name for p in xmls]}"
        )
    meta_file = folder / "metadata.yaml"
    if not meta_file.is_file():
        raise ModelPackageError(
            f"{folder}: metadata.yaml is missing; re-export with Ultralytics `format=openvino`"
        )
    _check_name(name)
    meta = parse_simple_yaml(meta_file.read_text(encoding="utf-8"))
    labels, size = _labels_and_size(meta, str(meta_file), "metadata.yaml")
    in_shape, out_shape = _openvino_shapes(xmls[0])
    _check_shapes(str(xmls[0]), in_shape, out_shape, size, len(labels))
    precision = "int8" if "int8" in folder.name.lower() else "fp32"
    files = {xmls[0]: "openvino/model.xml", xmls[0].with_suffix(".bin"): "openvino/model.bin"}
    weights = {"backend": "openvino", "precision": precision, "files": list(files.values())}
    return _install(
        files, weights, _manifest(name, description, labels, size, meta, folder), dest_root, force
    )


def _openvino_shapes(xml: Path) -> tuple[list, list]:
    import openvino as ov

    try:
        model = ov.Core().read_model(str(xml))
    except RuntimeError as exc:
        raise ModelPackageError(f"{xml}: not a loadable OpenVINO IR: {exc}") from exc

    def dims(ps) -> list:
        return [d.get_length() if d.is_static else None for d in ps]

    return dims(model.input(0).get_partial_shape()), dims(model.output(0).get_partial_shape())


def _check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ModelPackageError(
            f"model name: expected lowercase letters, digits, '.', '_' or '-' (at most 64), got {name!r}"
        )


def _labels_and_size(meta: dict, source: str, where: str) -> tuple[list[str], tuple[int, int]]:
    missing = [k for k in ("names", "imgsz") if k not in meta]
    if missing:
        raise ModelPackageError(
            f"{source}: {where} has no {' or '.join(missing)}; expected an Ultralytics export "
            "(yolo export format=onnx) that records class names and image size"
        )
    _check_task(meta, source)
    return parse_names(meta["names"], source), parse_imgsz(meta["imgsz"], source)


def _manifest(
    name: str, description: str, labels: list[str], size: tuple[int, int], meta: dict, src: Path
) -> dict:
    h, w = size
    return {
        "name": name,
        "version": "1.0.0",
        "description": description,
        "useCase": "custom",
        "task": "detect",
        "pipeline": "generic",
        "input": {
            "width": w,
            "height": h,
            "color": "RGB",
            "layout": "NCHW",
            "scale": 255.0,
            "letterbox": True,
            "padValue": 114,
        },
        "labels": labels,
        "thresholds": {"confidence": 0.25, "iou": 0.45, "maxDetections": 300},
        "weights": [],
        "evaluation": {},
        "source": {
            "format": "ultralytics",
            "file": src.name,
            **{k: str(meta[k]) for k in ("author", "date", "license") if k in meta},
            **({"ultralyticsVersion": str(meta["version"])} if "version" in meta else {}),
        },
    }


def _install(
    files: dict[Path, str], weights: dict, manifest: dict, dest_root: Path, force: bool
) -> ModelPackage:
    manifest = {
        **manifest,
        "weights": [weights],
        "default": {"backend": weights["backend"], "precision": weights["precision"]},
    }
    return install_files(files, manifest, dest_root, force)


def install_files(files: dict[Path, str], manifest: dict, dest_root: Path, force: bool) -> ModelPackage:
    """Copy ``files`` (source → path in the package) and the manifest into a temporary folder next to the
    destination ``dest_root/<name>``, then rename it into place (``edgecv models add`` and ``train``)."""
    _check_name(manifest["name"])
    dest_root = Path(dest_root)
    dest = dest_root / manifest["name"]
    if dest.exists() and not force:
        raise ModelPackageError(
            f"model {manifest['name']!r} already exists at {dest}; use --force to replace it"
        )
    ensure_writable_dir(dest_root, "models folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest['name']}.", dir=dest_root))
    try:
        for src, rel in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        write_manifest(tmp, manifest)
        if dest.is_symlink():  # a version installed from a signed bundle: its folder stays in .versions
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "added custom model %s (%d labels) at %s", manifest["name"], len(manifest["labels"]), log_name(dest)
    )
    return load_package(dest)


def parse_simple_yaml(text: str) -> dict:
    """The subset of YAML Ultralytics writes in ``metadata.yaml``: top-level scalars, lists, flat maps.

    Lines nested deeper than one level are skipped; PyYAML is not a dependency of the agent.
    """
    result: dict = {}
    key = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if key is not None and body.startswith("- ") and indent <= 2:
            current = result[key] if isinstance(result[key], list) else []
            result[key] = current + [_scalar(body[2:].strip())]
        elif indent == 0:
            key, _, rest = body.partition(":")
            key, rest = key.strip(), rest.strip()
            result[key] = _scalar(rest) if rest else None
        elif key is not None and ":" in body and indent == 2:
            sub_key, _, value = body.partition(":")
            current = result[key] if isinstance(result[key], dict) else {}
            current[_scalar(sub_key.strip())] = _scalar(value.strip())
            result[key] = current
    return result


def _scalar(text: str) -> object:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text

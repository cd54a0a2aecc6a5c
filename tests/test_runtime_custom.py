"""Adding a user's own Ultralytics export (ONNX file or OpenVINO folder) as a model package."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from helpers.runtime import rect_detector, red_rectangle_image

from edgecv.errors import ModelPackageError
from edgecv.runtime.custom import (
    add_ultralytics_onnx,
    add_ultralytics_openvino,
    parse_imgsz,
    parse_names,
    parse_simple_yaml,
)
from edgecv.runtime.detector import Detector
from edgecv.runtime.package import discover_packages, load_package

ULTRA_META = {
    "description": "Ultralytics YOLO11n model trained on shelf.yaml",
    "author": "Ultralytics",
    "version": "8.3.40",
    "task": "detect",
    "stride": "32",
    "batch": "1",
    "imgsz": "[96, 128]",
    "names": "{0: 'person', 1: \"o'neil can\"}",
}

METADATA_YAML = """\
description: Ultralytics YOLO11n model trained on shelf.yaml
author: Ultralytics
date: '2026-11-28T10:00:00'
version: 8.3.40
task: detect
stride: 32
batch: 1
imgsz:
- 96
- 128
names:
  0: person
  1: 'o''neil can'
args:
  batch: 1
  half: false
"""


def _export(tmp_path, name="best.onnx", **meta_changes):
    meta = {k: v for k, v in {**ULTRA_META, **meta_changes}.items() if v is not None}
    path = tmp_path / name
    onnx.save(rect_detector(128, 96, metadata=meta), path)
    return path


def test_add_onnx_reads_names_and_imgsz_and_runs(tmp_path):
    pkg = add_ultralytics_onnx(_export(tmp_path), "my-shelf", tmp_path / "models", description="Shelf v1")
    assert pkg.name == "my-shelf" and pkg.description == "Shelf v1"
    assert pkg.labels == ["person", "o'neil can"]
    assert (pkg.input.width, pkg.input.height, pkg.pipeline, pkg.use_case) == (128, 96, "generic", "custom")
    assert (pkg.default_backend, pkg.default_precision) == ("onnx", "fp32")
    assert pkg.manifest["source"]["ultralyticsVersion"] == "8.3.40"
    assert load_package(tmp_path / "models" / "my-shelf").labels == pkg.labels
    det = Detector.open(pkg).detect(red_rectangle_image(400, 200, (50, 60, 150, 120)))
    np.testing.assert_allclose(det.xyxy[0], (50, 60, 150, 120), atol=3.6)
    assert list(discover_packages([tmp_path / "models"])) == ["my-shelf"]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["my-shelf"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"names": None}, "ONNX metadata has no names"),
        (
            {"names": None, "imgsz": None},
            "ONNX metadata has no names or imgsz; expected an Ultralytics export",
        ),
        (
            {"names": "{0: 'a', 1: 'b', 2: 'c'}"},
            r"output: expected shape \[1, 7, N\] \(4 box values \+ 3 classes",
        ),
        (
            {"imgsz": "[640, 640]"},
            r"input: expected shape \[1, 3, 640, 640\] \(imgsz\), got \[1, 3, 96, 128\]",
        ),
        ({"task": "segment"}, "task: expected detect, got 'segment'"),
        ({"names": "{0: 'a', 2: 'b'}"}, r"names: expected indices 0..1, got \[0, 2\]"),
        ({"names": "not a dict"}, "names: expected a dict literal"),
    ],
)
def test_add_onnx_refuses_bad_exports(tmp_path, changes, message):
    with pytest.raises(ModelPackageError, match=message):
        add_ultralytics_onnx(_export(tmp_path, **changes), "custom", tmp_path / "models")
    assert not (tmp_path / "models" / "custom").exists()
    assert not any((tmp_path / "models").glob(".custom.*"))


def test_add_onnx_refuses_existing_name_unless_forced(tmp_path):
    src, dest = _export(tmp_path), tmp_path / "models"
    add_ultralytics_onnx(src, "custom", dest)
    with pytest.raises(
        ModelPackageError, match="model 'custom' already exists at .*; use --force to replace it"
    ):
        add_ultralytics_onnx(src, "custom", dest)
    assert add_ultralytics_onnx(src, "custom", dest, description="v2", force=True).description == "v2"


def test_force_replaces_a_bundle_installed_symlink_and_keeps_its_version(tmp_path):
    """A model installed from a signed bundle is a symlink into models/.versions: --force replaces the link
    with the new package and leaves the versioned folder alone."""
    src, dest = _export(tmp_path), tmp_path / "models"
    add_ultralytics_onnx(src, "custom", dest)
    versioned = dest / ".versions" / "custom" / "1.0.0" / "custom"
    versioned.parent.mkdir(parents=True)
    (dest / "custom").rename(versioned)
    (dest / "custom").symlink_to(versioned.relative_to(dest))
    pkg = add_ultralytics_onnx(src, "custom", dest, description="v2", force=True)
    assert pkg.description == "v2"
    assert not (dest / "custom").is_symlink() and (dest / "custom").is_dir()
    assert (versioned / "model.json").is_file()


def test_add_onnx_refuses_bad_name_missing_file_and_garbage(tmp_path):
    with pytest.raises(ModelPackageError, match="model name: expected lowercase letters"):
        add_ultralytics_onnx(_export(tmp_path), "My Model", tmp_path / "models")
    with pytest.raises(ModelPackageError, match="file does not exist"):
        add_ultralytics_onnx(tmp_path / "nope.onnx", "x", tmp_path / "models")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelPackageError) as err:
        add_ultralytics_onnx(tmp_path / "junk.onnx", "x", tmp_path / "models")
    assert str(err.value) == (
        f"{tmp_path / 'junk.onnx'}: not a valid ONNX model; export one with "
        "`yolo export model=best.pt format=onnx`, or pass an OpenVINO IR folder "
        "(model.xml + model.bin + metadata.yaml)"
    )
    (tmp_path / "best.pt").write_bytes(b"PK\x03\x04 a torch zip")
    with pytest.raises(ModelPackageError) as err:
        add_ultralytics_onnx(tmp_path / "best.pt", "x", tmp_path / "models")
    assert str(err.value) == (
        f"{tmp_path / 'best.pt'}: a PyTorch checkpoint cannot run here; export it to ONNX first "
        f"(yolo export model={tmp_path / 'best.pt'} format=onnx) and add the .onnx file"
    )
    assert not (tmp_path / "models").exists()


def _openvino_export(tmp_path, metadata: str | None = METADATA_YAML):
    import openvino as ov

    folder = tmp_path / "best_openvino_model"
    folder.mkdir()
    ov.save_model(ov.convert_model(_export(tmp_path)), folder / "best.xml", compress_to_fp16=False)
    if metadata is not None:
        (folder / "metadata.yaml").write_text(metadata)
    return folder


def test_add_openvino_folder(tmp_path):
    folder = _openvino_export(tmp_path)
    pkg = add_ultralytics_onnx(folder, "ov-shelf", tmp_path / "models")
    assert pkg.labels == ["person", "o'neil can"]
    assert (pkg.default_backend, pkg.weight_set().model_file) == ("openvino", "openvino/model.xml")
    det = Detector.open(pkg, inference_precision="f32").detect(
        red_rectangle_image(400, 200, (50, 60, 150, 120))
    )
    np.testing.assert_allclose(det.xyxy[0], (50, 60, 150, 120), atol=3.6)


def test_add_openvino_folder_without_metadata_is_refused(tmp_path):
    folder = _openvino_export(tmp_path, metadata=None)
    with pytest.raises(ModelPackageError, match="metadata.yaml is missing"):
        add_ultralytics_openvino(folder, "ov-shelf", tmp_path / "models")


def test_metadata_parsers():
    meta = parse_simple_yaml(METADATA_YAML)
    assert meta["imgsz"] == [96, 128] and meta["names"] == {0: "person", 1: "o'neil can"}
    assert meta["date"] == "2026-11-28T10:00:00" and meta["args"] == {"batch": 1, "half": "false"}
    assert parse_names(["a", "b"], "src") == ["a", "b"]
    assert parse_names("{1: 'b', 0: 'a'}", "src") == ["a", "b"]
    assert parse_imgsz(640, "src") == (640, 640)
    with pytest.raises(ModelPackageError, match=r"imgsz: expected \[height, width\] positive integers"):
        parse_imgsz("[640]", "src")

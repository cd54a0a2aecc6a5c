"""Model package manifests: validation, sha256 verification, discovery precedence, bundled dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers.runtime import LABELS, base_manifest, make_package, read_manifest_json

from edgecv.errors import ModelPackageError
from edgecv.runtime.package import (
    bundled_models_dir,
    discover_packages,
    load_package,
    parse_manifest,
    sha256_file,
    write_manifest,
)


def _parse(**changes) -> object:
    manifest = base_manifest("rect")
    manifest["weights"] = [{"backend": "onnx", "precision": "fp32", "files": {"model.onnx": "a" * 64}}]
    manifest.update(changes)
    return parse_manifest(manifest, Path("/pkgs/rect"), "rect/model.json")


def test_load_package_reads_every_field(tmp_path):
    pkg = load_package(make_package(tmp_path))
    assert (pkg.name, pkg.version, pkg.pipeline, pkg.task) == ("rect", "1.0.0", "generic", "detect")
    assert pkg.labels == LABELS and pkg.num_classes == 2
    assert (pkg.input.width, pkg.input.height, pkg.input.color, pkg.input.pad_value) == (128, 96, "RGB", 114)
    assert (pkg.thresholds.confidence, pkg.thresholds.iou, pkg.thresholds.max_detections) == (0.25, 0.5, 100)
    ws = pkg.weight_set()
    assert (ws.backend, ws.precision, ws.model_file) == ("onnx", "fp32", "model.onnx")
    assert ws.files["model.onnx"] == sha256_file(pkg.path / "model.onnx")
    assert pkg.evaluation == {"mAP50": 1.0}


def test_to_dict_is_camel_case_and_json_serialisable(tmp_path):
    data = load_package(make_package(tmp_path)).to_dict()
    json.dumps(data)
    assert data["useCase"] == "tests"
    assert data["input"]["padValue"] == 114
    assert data["thresholds"]["maxDetections"] == 100
    assert data["backends"] == [{"backend": "onnx", "precision": "fp32"}]
    assert data["default"] == {"backend": "onnx", "precision": "fp32"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"labels": []},
            "rect/model.json: labels: expected a non-empty list of non-empty strings, got list []",
        ),
        ({"labels": "person"}, "labels: expected a non-empty list of non-empty strings, got str 'person'"),
        ({"version": 2}, "version: expected a string, got int 2"),
        ({"name": "Bad Name"}, "name: expected lowercase letters"),
        ({"task": "segment"}, "task: expected one of detect, got str 'segment'"),
        ({"input": {"width": "640", "height": 640}}, "input.width: expected an integer >= 8, got str '640'"),
        ({"input": {"width": 640}}, "input.height: expected an integer >= 8, got nothing (field missing)"),
        ({"input": {"width": 64, "height": 64, "color": "GRAY"}}, "input.color: expected one of RGB, BGR"),
        (
            {"input": {"width": 64, "height": 64, "letterbox": 1}},
            "input.letterbox: expected true or false, got int 1",
        ),
        (
            {"thresholds": {"confidence": 1.5}},
            "thresholds.confidence: expected a number in [0.0, 1.0], got float 1.5",
        ),
        ({"weights": []}, "weights: expected a non-empty list of weight sets, got list []"),
        (
            {"weights": [{"backend": "tensorrt", "precision": "fp16", "files": {}}]},
            "weights[0].backend: expected one of openvino, onnx, got str 'tensorrt'",
        ),
        (
            {"weights": [{"backend": "onnx", "precision": "fp32", "files": {"model.onnx": "xyz"}}]},
            "weights[0].files['model.onnx']: expected a lowercase hex sha256",
        ),
        (
            {"weights": [{"backend": "onnx", "precision": "fp32", "files": {"../evil.onnx": "a" * 64}}]},
            "weights[0].files: expected paths relative to the package folder, inside it, got str '../evil.onnx'",
        ),
        (
            {"weights": [{"backend": "openvino", "precision": "int8", "files": {"m.xml": "a" * 64}}]},
            "weights[0].files: expected m.bin next to m.xml",
        ),
        (
            {"default": {"backend": "openvino", "precision": "int8"}},
            "default: expected a backend/precision listed in weights (onnx/fp32), got str 'openvino/int8'",
        ),
        ({"pipelineOptions": [1]}, "pipelineOptions: expected an object, got list [1]"),
    ],
)
def test_manifest_validation_says_expected_and_got(changes, message):
    with pytest.raises(ModelPackageError) as err:
        _parse(**changes)
    assert message in str(err.value)


def test_defaults_fill_optional_fields():
    pkg = _parse(thresholds={}, default={}, description="", useCase="")
    assert (pkg.thresholds.confidence, pkg.thresholds.iou, pkg.thresholds.max_detections) == (0.25, 0.45, 300)
    assert (pkg.default_backend, pkg.default_precision) == ("onnx", "fp32")
    assert pkg.pipeline_options == {}


def test_pipeline_options_are_read():
    pkg = _parse(pipelineOptions={"fill": {"rust-stain": 0.6}})
    assert pkg.pipeline_options == {"fill": {"rust-stain": 0.6}}


def test_weight_set_choice_and_error_lists_what_exists():
    files = {"a.onnx": "a" * 64}
    pkg = _parse(
        weights=[
            {"backend": "onnx", "precision": "fp32", "files": files},
            {"backend": "onnx", "precision": "int8", "files": files},
        ],
        default={"backend": "onnx", "precision": "int8"},
    )
    assert pkg.weight_set().precision == "int8"
    assert pkg.weight_set("onnx", "fp32").precision == "fp32"
    with pytest.raises(ModelPackageError, match=r"no weights for openvino/\*; it has: onnx/fp32, onnx/int8"):
        pkg.weight_set("openvino")


def test_name_must_match_folder(tmp_path):
    pkg = make_package(tmp_path, "rect")
    moved = pkg.rename(tmp_path / "other")
    with pytest.raises(ModelPackageError, match=r"name: expected 'other' \(the folder name\), got 'rect'"):
        load_package(moved)


def test_sha256_mismatch_names_file_and_both_hashes(tmp_path):
    pkg = make_package(tmp_path)
    expected = read_manifest_json(pkg)["weights"][0]["files"]["model.onnx"]
    with open(pkg / "model.onnx", "ab") as fh:
        fh.write(b"tampered")
    actual = sha256_file(pkg / "model.onnx")
    with pytest.raises(ModelPackageError) as err:
        load_package(pkg)
    assert str(err.value) == (
        f"model 'rect': model.onnx is corrupt or was changed: expected sha256 {expected}, got {actual}"
    )
    assert load_package(pkg, verify=False).name == "rect"


def test_missing_weight_file_is_reported_even_without_verify(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / "model.onnx").unlink()
    with pytest.raises(ModelPackageError, match="weight file model.onnx is missing"):
        load_package(pkg, verify=False)


def test_toml_manifest_is_accepted(tmp_path):
    pkg = make_package(tmp_path)
    data = read_manifest_json(pkg)
    (pkg / "model.json").unlink()
    digest = data["weights"][0]["files"]["model.onnx"]
    (pkg / "model.toml").write_text(
        'name = "rect"\nversion = "1.0.0"\nlabels = ["a", "b"]\n'
        "[input]\nwidth = 128\nheight = 96\n"
        f'[[weights]]\nbackend = "onnx"\nprecision = "fp32"\nfiles = {{ "model.onnx" = "{digest}" }}\n'
    )
    pkg_obj = load_package(pkg)
    assert pkg_obj.labels == ["a", "b"] and pkg_obj.pipeline == "generic"


def test_invalid_json_is_a_package_error(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / "model.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="not a valid manifest"):
        load_package(pkg)


def test_write_manifest_refuses_missing_file_and_invalid_manifest(tmp_path):
    with pytest.raises(ModelPackageError, match="weight file nope.onnx does not exist"):
        write_manifest(
            tmp_path,
            {
                **base_manifest("x"),
                "weights": [{"backend": "onnx", "precision": "fp32", "files": ["nope.onnx"]}],
            },
        )
    (tmp_path / "m.onnx").write_bytes(b"x")
    bad = {
        **base_manifest("x"),
        "labels": [],
        "weights": [{"backend": "onnx", "precision": "fp32", "files": ["m.onnx"]}],
    }
    with pytest.raises(ModelPackageError, match="labels"):
        write_manifest(tmp_path, bad)
    assert not (tmp_path / "model.json").exists()


def test_discovery_first_dir_wins_and_broken_packages_are_skipped(tmp_path, caplog):
    user, bundled = tmp_path / "user", tmp_path / "bundled"
    make_package(user, "rect", version="9.0.0")
    make_package(bundled, "rect", version="1.0.0")
    make_package(bundled, "other")
    broken = make_package(bundled, "broken")
    (broken / "model.json").write_text(json.dumps({"name": "broken"}))
    (bundled / "not-a-package").mkdir()
    with caplog.at_level(logging.WARNING, logger="edgecv.runtime.package"):
        found = discover_packages([user, tmp_path / "missing", bundled])
    assert sorted(found) == ["other", "rect"]
    assert found["rect"].version == "9.0.0"
    assert found["rect"].path == user / "rect"
    assert any("skipping model package" in r.message and "broken" in r.message for r in caplog.records)


def test_discovery_with_verify_skips_corrupt_package(tmp_path):
    pkg = make_package(tmp_path, "rect")
    (pkg / "model.onnx").write_bytes(b"corrupt")
    assert discover_packages([tmp_path], verify=False)["rect"].name == "rect"
    assert discover_packages([tmp_path], verify=True) == {}


def test_bundled_models_dir_in_a_checkout():
    found = bundled_models_dir()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "models").is_dir():
        assert found == repo / "models"
    else:
        assert found is None


def test_agnostic_nms_flag():
    assert _parse().thresholds.agnostic is False
    thresholds = {"confidence": 0.25, "iou": 0.5, "maxDetections": 100, "agnosticNms": True}
    assert _parse(thresholds=thresholds).thresholds.agnostic is True
    with pytest.raises(ModelPackageError, match="thresholds.agnosticNms: expected true or false, got str"):
        _parse(thresholds={**thresholds, "agnosticNms": "yes"})


def test_agnostic_nms_keeps_one_box_per_object():
    """Two anchors guessing different classes for one object: per-class NMS keeps both, agnostic one."""
    import numpy as np

    from edgecv.runtime.decode import nms

    boxes = np.array([[10, 10, 50, 90], [11, 9, 51, 91], [60, 10, 100, 90]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 1, 1])
    assert sorted(nms(boxes, scores, classes, 0.5).tolist()) == [0, 1, 2]
    assert sorted(nms(boxes, scores, classes, 0.5, agnostic=True).tolist()) == [0, 2]

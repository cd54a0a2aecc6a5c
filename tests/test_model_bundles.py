"""Signed model bundles: pack, install with the acceptance gate, atomic switch, rollback, and refusals.

Real tar files, real Ed25519 keys, real packages run on ONNX Runtime; every refusal must leave the
previous version active and nothing half-installed.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from helpers.runtime import (
    acceptance_images,
    make_package,
    read_manifest_json,
    rect_detector,
    red_rectangle_image,
)

from edgecv.cli import main
from edgecv.config import load_config
from edgecv.errors import AcceptanceFailed, InstallInProgress, ModelBundleError, ModelPackageError
from edgecv.runtime.bundle import (
    acceptance_set,
    generate_keys,
    load_private_key,
    pack,
    write_bundle,
)
from edgecv.runtime.installed import find_package
from edgecv.runtime.lifecycle import install, install_lock, read_state, rollback, versions_dir
from edgecv.runtime.package import load_package, write_manifest

NAME = "widget"


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys")


@pytest.fixture
def cfg(tmp_path, keys):
    return load_config(
        overrides={"data_dir": tmp_path / "data", "trusted_keys": [str(keys[1])], "api.enabled": False},
        environ={},
    )


@pytest.fixture
def images(tmp_path):
    return acceptance_images(tmp_path / "acceptance-images")


def build(tmp_path, keys, images, version: str, **extra):
    src = make_package(tmp_path / "src" / version, NAME, version=version, **extra)
    out = tmp_path / f"{NAME}-{version}.edgecv"
    pack(src, out, keys[0], images)
    return out


def assert_clean(cfg, active: str | None):
    """The active version is ``active`` and no staging folder is left."""
    folder = versions_dir(cfg, NAME)
    left = [p.name for p in folder.iterdir() if p.name.startswith(".staging")] if folder.exists() else []
    assert left == []
    if active is None:
        assert not (cfg.user_models_dir / NAME).exists()
    else:
        assert find_package(cfg, NAME).version == active


def test_install_switches_keeps_two_versions_and_rolls_back(tmp_path, cfg, keys, images):
    first = install(cfg, build(tmp_path, keys, images, "1.0.0"))
    assert (first.version, first.previous, first.images) == ("1.0.0", None, 3)
    assert first.agreement == 1.0 and first.backend == "onnx"
    assert find_package(cfg, NAME).version == "1.0.0"
    install(cfg, build(tmp_path, keys, images, "1.1.0"))
    report = install(cfg, build(tmp_path, keys, images, "1.2.0"))
    assert report.previous == "1.1.0"
    assert find_package(cfg, NAME).version == "1.2.0"
    kept = sorted(p.name for p in versions_dir(cfg, NAME).iterdir() if p.is_dir())
    assert kept == ["1.1.0", "1.2.0"]  # 1.0.0 pruned: the last two are kept
    assert rollback(cfg, NAME) == ("1.2.0", "1.1.0")
    assert find_package(cfg, NAME).version == "1.1.0"
    assert read_state(cfg, NAME) == {"current": "1.1.0", "previous": "1.2.0"}
    assert rollback(cfg, NAME) == ("1.1.0", "1.2.0")  # and forward again
    with pytest.raises(ModelBundleError, match=r"widget 1.2.0 is already installed \(active\)"):
        install(cfg, tmp_path / "widget-1.2.0.edgecv")


def test_rollback_without_a_previous_version_is_refused(tmp_path, cfg, keys, images):
    with pytest.raises(ModelBundleError, match="was not installed from a bundle here"):
        rollback(cfg, NAME)
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    with pytest.raises(ModelBundleError, match=r"no previous version of widget is kept here \(1.0.0"):
        rollback(cfg, NAME)
    assert_clean(cfg, "1.0.0")


def _member_offset(bundle, name):
    with tarfile.open(bundle) as tar:
        member = tar.getmember(name)
        return member.offset_data, member.size


def test_a_changed_weight_file_is_refused(tmp_path, cfg, keys, images):
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    bundle = build(tmp_path, keys, images, "2.0.0")
    offset, size = _member_offset(bundle, "package/model.onnx")
    data = bytearray(bundle.read_bytes())
    data[offset + size // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="package/model.onnx does not match its sha256 in the signed"):
        install(cfg, bundle)
    assert_clean(cfg, "1.0.0")
    assert sorted(p.name for p in versions_dir(cfg, NAME).iterdir()) == ["1.0.0", "state.json"]


def test_a_changed_manifest_fails_the_signature(tmp_path, cfg, keys, images):
    bundle = build(tmp_path, keys, images, "1.0.0")
    offset, size = _member_offset(bundle, "bundle.json")
    data = bytearray(bundle.read_bytes())
    text = data[offset : offset + size]
    data[offset : offset + size] = text.replace(b'"iou": 0.5', b'"iou": 0.1')
    assert data != bundle.read_bytes()
    bundle.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="the signature does not match bundle.json"):
        install(cfg, bundle)
    assert_clean(cfg, None)


def test_a_member_not_in_the_manifest_is_refused(tmp_path, cfg, keys, images):
    bundle = build(tmp_path, keys, images, "1.0.0")
    with tarfile.open(bundle, "a") as tar:
        tar.add(images[0], arcname="package/extra.png")
    with pytest.raises(ModelBundleError, match="'package/extra.png' is not listed in the signed bundle.json"):
        install(cfg, bundle)
    assert_clean(cfg, None)


def test_untrusted_or_unconfigured_keys_are_refused(tmp_path, cfg, keys, images):
    other = generate_keys(tmp_path / "other")
    src = make_package(tmp_path / "src", NAME)
    bundle = tmp_path / "other.edgecv"
    pack(src, bundle, other[0], images)
    with pytest.raises(ModelBundleError, match=r"signed by key [0-9a-f]{16}, which is not in trusted_keys"):
        install(cfg, bundle)
    cfg.trusted_keys = []
    with pytest.raises(ModelBundleError, match="no key is trusted here; add the signer's .pub file"):
        install(cfg, bundle)
    cfg.trusted_keys = [str(tmp_path / "missing.pub")]
    with pytest.raises(ModelBundleError, match="trusted_keys: cannot read"):
        install(cfg, bundle)
    cfg.trusted_keys = [(other[1]).read_text().strip()]  # the base64 key itself is accepted
    assert install(cfg, bundle).version == "1.0.0"


def test_a_truncated_bundle_is_refused(tmp_path, cfg, keys, images):
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    bundle = build(tmp_path, keys, images, "2.0.0")
    data = bundle.read_bytes()
    for cut in (len(data) * 2 // 3, 600, 10):
        bundle.write_bytes(data[:cut])
        with pytest.raises(
            ModelBundleError, match="is truncated or is not an edgecv bundle|not where a bundle"
        ):
            install(cfg, bundle)
        assert_clean(cfg, "1.0.0")


def _bundle_of(tmp_path, keys, images, pkg_dir, out_name):
    """Sign ``pkg_dir`` as it is, with the acceptance set of a good package (pack would refuse it)."""
    good = load_package(make_package(tmp_path / "good", NAME))
    files, expected = acceptance_set(good, images)
    out = tmp_path / out_name
    write_bundle(load_package(pkg_dir), out, load_private_key(keys[0]), files, expected)
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": ["a", "b", "c"]}, r"output: expected shape \[1, 7, N\] \(4 \+ 3 labels\)"),
        ({"input": {"width": 64, "height": 64}}, r"input: expected shape \[1, 3, 64, 64\]"),
    ],
)
def test_a_package_that_does_not_match_its_manifest_is_refused(tmp_path, cfg, keys, images, change, message):
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    pkg = make_package(tmp_path / "bad", NAME, version="2.0.0")
    manifest = read_manifest_json(pkg)
    for key, value in change.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    write_manifest(pkg, manifest)  # the graph itself is still the 128x96, 2-label one
    with pytest.raises(ModelPackageError, match=message):
        install(cfg, _bundle_of(tmp_path, keys, images, pkg, "bad.edgecv"))
    assert_clean(cfg, "1.0.0")


def test_a_failed_acceptance_check_is_refused(tmp_path, cfg, keys, images):
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    pkg = make_package(tmp_path / "v2", NAME, version="2.0.0")
    files, expected = acceptance_set(load_package(pkg), images)
    for per_image in expected["detections"]["onnx/fp32"]:  # what the packer saw is not what it finds
        for det in per_image:
            if det["classId"] == 0:
                det["box"] = [b + 40 for b in det["box"]]
    out = tmp_path / "drifted.edgecv"
    write_bundle(load_package(pkg), out, load_private_key(keys[0]), files, expected)
    with pytest.raises(AcceptanceFailed, match=r"agrees 0\.\d\d with the bundle's expected detections on 3"):
        install(cfg, out)
    assert_clean(cfg, "1.0.0")


def collapsed_detector():
    """The rectangle detector whose rectangle score is 0: a quantized model that lost its main class."""
    model = rect_detector()
    for init in model.graph.initializer:
        if init.name == "score":
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(0.0, np.float32), "score"))
        if init.name == "fixed":  # and the fixed class-0 anchor: class 0 is gone
            fixed = onnx.numpy_helper.to_array(init).copy()
            fixed[0, 4, :] = 0.0
            init.CopyFrom(onnx.numpy_helper.from_array(fixed, "fixed"))
    return model


@pytest.mark.parametrize("collapsed", [False, True])
def test_int8_must_agree_with_fp32(tmp_path, cfg, keys, images, collapsed):
    pkg = make_package(tmp_path / "src", NAME)
    onnx.save(collapsed_detector() if collapsed else rect_detector(), pkg / "model-int8.onnx")
    manifest = read_manifest_json(pkg)
    manifest["weights"].insert(0, {"backend": "onnx", "precision": "int8", "files": ["model-int8.onnx"]})
    manifest["default"] = {"backend": "onnx", "precision": "int8"}
    write_manifest(pkg, manifest)
    bundle = tmp_path / "w.edgecv"
    pack(pkg, bundle, keys[0], images)  # the expected detections come from the (broken) INT8 itself
    if not collapsed:
        report = install(cfg, bundle)
        assert report.precision == "int8" and report.precision_agreement == {
            "int8VsFp32": 1.0,
            "worstClass": 1.0,
        }
        return
    with pytest.raises(
        AcceptanceFailed, match=r"INT8 agrees 0\.50 with its FP32 weights \(onnx; worst class 0\.00\).*broken"
    ):
        install(cfg, bundle)
    assert_clean(cfg, None)


def test_a_second_install_while_one_runs_is_refused(tmp_path, cfg, keys, images):
    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    bundle = build(tmp_path, keys, images, "2.0.0")
    with install_lock(cfg.user_models_dir):  # the first install, holding the lock
        with pytest.raises(InstallInProgress, match="another model install or rollback is running"):
            install(cfg, bundle)
        with pytest.raises(InstallInProgress):
            rollback(cfg, NAME)
    assert_clean(cfg, "1.0.0")
    assert install(cfg, bundle).version == "2.0.0"


def test_a_package_folder_in_the_way_is_refused(tmp_path, cfg, keys, images):
    make_package(cfg.user_models_dir, NAME)  # e.g. from `edgecv models add`
    with pytest.raises(ModelBundleError, match="is a package folder not installed from a bundle"):
        install(cfg, build(tmp_path, keys, images, "2.0.0"))
    cfg.models_dirs = [tmp_path / "src" / "2.0.0"]
    with pytest.raises(ModelBundleError, match="is searched before the installed bundles"):
        install(cfg, tmp_path / "widget-2.0.0.edgecv")


def test_the_cli_keygen_pack_install_rollback(tmp_path, images):
    src = tmp_path / "src"
    make_package(src / "a", NAME, version="1.0.0")
    env = {"EDGECV_DATA_DIR": str(tmp_path / "data"), "EDGECV_CONFIG": ""}
    runner = CliRunner(env=env)

    def cli(*args, ok=True, **more):
        result = runner.invoke(main, list(args), catch_exceptions=False, env=more or None)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    out = cli("models", "keygen")
    pub = tmp_path / "data" / "keys" / "edgecv-signing.pub"
    assert f"public key:  {pub}" in out
    assert "Error: " in cli("models", "keygen", ok=False)  # never overwrites a key silently
    bundle = tmp_path / "w1.edgecv"
    out = cli("models", "pack", NAME, "-o", str(bundle), "--images", str(images[0].parent),
              EDGECV_MODELS_DIRS=str(src / "a"))  # fmt: skip
    assert f"packed {NAME} 1.0.0" in out
    out = cli("models", "install", str(bundle), ok=False)
    assert out.strip().splitlines()[-1].startswith("Error: ") and "no key is trusted here" in out
    assert "Traceback" not in out
    out = cli("models", "install", str(bundle), EDGECV_TRUSTED_KEYS=str(pub))
    assert "installed widget 1.0.0" in out and "agreement 1.00 on 3 image(s)" in out
    out = cli("models", "list")
    assert "widget" in out and "1.0.0" in out
    out = cli("models", "rollback", NAME, ok=False)
    assert out.strip() == "Error: no previous version of widget is kept here (1.0.0 is the only one)"
    make_package(src / "b", NAME, version="1.1.0")
    cli("models", "pack", NAME, "-o", str(tmp_path / "w2.edgecv"), "--images", str(images[0].parent),
        EDGECV_MODELS_DIRS=str(src / "b"))  # fmt: skip
    cli("models", "install", str(tmp_path / "w2.edgecv"), EDGECV_TRUSTED_KEYS=str(pub))
    assert cli("models", "rollback", NAME).startswith("widget: 1.1.0 -> 1.0.0")


def test_jobs_record_the_model_version(tmp_path, cfg, keys, images):
    install(cfg, build(tmp_path, keys, images, "3.1.4"))
    env = {"EDGECV_DATA_DIR": str(cfg.data_dir), "EDGECV_CONFIG": "", "EDGECV_DEFAULT_MODEL": NAME}
    result = CliRunner(env=env).invoke(main, ["run", str(images[0]), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    job = jobs[0] if isinstance(jobs, list) else jobs
    assert job["status"] == "completed" and job["model"] == NAME and job["modelVersion"] == "3.1.4"


def test_a_running_pool_follows_a_switch_and_jobs_in_hand_keep_their_version(tmp_path, cfg, keys, images):
    from edgecv.work.pool import DetectorPool

    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    pool = DetectorPool(cfg)
    old = pool.get(NAME)
    assert old.package.version == "1.0.0" and pool.get(NAME) is old  # kept while nothing switches
    install(cfg, build(tmp_path, keys, images, "2.0.0"))
    new = pool.get(NAME)
    assert new.package.version == "2.0.0" and new is not old
    assert len(old.detect(red_rectangle_image(160, 120, (10, 10, 60, 50)))) >= 1  # a job in hand finishes
    assert [d.package.version for d in pool.lanes(NAME, 2)] == ["2.0.0", "2.0.0"]
    rollback(cfg, NAME)
    assert pool.get(NAME).package.version == "1.0.0"
    assert {k[1] for k in pool.loaded()} == {"LATENCY"}  # the lanes of 2.0.0 were dropped


FULL_DISK = """
import resource, signal, sys
from edgecv.config import load_config
from edgecv.errors import EdgecvError
from edgecv.runtime.lifecycle import install
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
cfg = load_config(overrides={"data_dir": sys.argv[1], "trusted_keys": [sys.argv[2]]}, environ={})
try:
    install(cfg, sys.argv[3])
except EdgecvError as exc:
    print(exc)
"""


def test_no_room_while_unpacking_is_refused(tmp_path, cfg, keys, images):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk: writes past it fail in the kernel."""
    import subprocess
    import sys

    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    bundle = build(tmp_path, keys, images, "2.0.0")
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(cfg.data_dir), str(keys[1]), str(bundle)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "cannot unpack" in out and "free space or fix the models dir, then install again" in out
    assert_clean(cfg, "1.0.0")
    assert sorted(p.name for p in versions_dir(cfg, NAME).iterdir()) == ["1.0.0", "state.json"]


def test_trusted_keys_in_the_config_file_are_relative_to_it(tmp_path, keys):
    inline = keys[1].read_text().strip()
    conf = tmp_path / "edgecv.toml"
    conf.write_text(f'trusted_keys = ["keys/edgecv-signing.pub", "{inline}", "/abs/x.pub"]\n')
    cfg = load_config(conf, environ={})
    assert cfg.trusted_keys == [str(keys[1]), inline, "/abs/x.pub"]
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    with pytest.raises(ModelBundleError, match="does not hold a base64 Ed25519 public key"):
        from edgecv.runtime.bundle import trusted_public_keys

        trusted_public_keys([str(bad)])


def test_an_interrupted_install_leaves_nothing_that_blocks_the_next(tmp_path, cfg, keys, images):
    import os

    install(cfg, build(tmp_path, keys, images, "1.0.0"))
    folder = versions_dir(cfg, NAME)
    (folder / ".staging-killed").mkdir()  # kill -9 while unpacking
    (folder / "2.0.0" / NAME).mkdir(parents=True)  # kill -9 after the rename, before the switch
    assert read_state(cfg, NAME) == {"current": "1.0.0", "previous": None}
    link, tmp = cfg.user_models_dir / NAME, cfg.user_models_dir / "tmp-link"
    os.symlink(os.readlink(link).replace("1.0.0", "2.0.0"), tmp)
    os.replace(tmp, link)  # kill -9 after the switch, before the state file: the symlink is the truth
    assert read_state(cfg, NAME) == {"current": "2.0.0", "previous": "1.0.0"}
    os.symlink(os.readlink(link).replace("2.0.0", "1.0.0"), tmp)
    os.replace(tmp, link)
    assert install(cfg, build(tmp_path, keys, images, "2.0.0")).previous == "1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == ["1.0.0", "2.0.0", "state.json"]
    assert rollback(cfg, NAME) == ("2.0.0", "1.0.0")

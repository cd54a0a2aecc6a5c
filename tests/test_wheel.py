"""The wheel: `python -m build` output carries the agent and every shipped model package, installs into a
fresh venv and runs a job with nothing read from the source tree.

Fast and offline: the wheel is built from a copy of the tree (``--no-isolation`` when hatchling is
installed), and the fresh venv gets the wheel with ``--no-deps``; its dependencies come from the test
venv's site-packages through a ``.pth`` line (a plain path line, so the test venv's own ``.pth`` files,
including the editable install of this checkout, are not processed). Select with ``-m wheel``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers.images import jpeg_bytes
from helpers.runtime import make_package

from edgecv.runtime.package import MANIFEST_NAMES, read_manifest

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
TREE = ("pyproject.toml", "README.md", "LICENSE", "edgecv", "models")


def shipped_packages(models: Path) -> dict[str, Path]:
    """``name → folder`` of every package in a models/ folder (a manifest file marks a package)."""
    if not models.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(models.iterdir())
        if p.is_dir() and any((p / m).is_file() for m in MANIFEST_NAMES)
    }


def _copy_tree(dest: Path) -> Path:
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in TREE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / "models").mkdir(exist_ok=True)
    return dest


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """``(wheel, packages it must carry)``: the real models/ packages, or a tiny one when none exist yet."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_tree(tmp / "src")
    packages = shipped_packages(REPO / "models")
    if not packages:
        make_package(src / "models", "tiny-rect")
        packages = shipped_packages(src / "models")
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-isolation"]
    _run([sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", tmp / "dist", src])
    wheels = list((tmp / "dist").glob("edgecv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], packages


def test_wheel_contains_the_agent_and_every_shipped_model(built):
    wheel, packages = built
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "edgecv/__init__.py",
        "edgecv/cli/__init__.py",
        "edgecv/config_template.toml",
        "edgecv/store/migrations/0001_initial.sql",
    ):
        assert required in names, f"{required} is not in {wheel.name}"
    migrations = sorted(p.name for p in (REPO / "edgecv" / "store" / "migrations").glob("*.sql"))
    assert migrations == sorted(
        n.rsplit("/", 1)[1] for n in names if n.startswith("edgecv/store/migrations/")
    )
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    for f in (REPO / "edgecv" / "api" / "static").iterdir():  # the dashboard's stylesheet, script and icon
        assert f"edgecv/api/static/{f.name}" in names, f"{f} is not in the wheel"
    for f in (REPO / "edgecv" / "runtime" / "price_ocr").iterdir():  # price reader and tag box refiner
        assert f"edgecv/runtime/price_ocr/{f.name}" in names, f"{f} is not in the wheel"
    for manifest in (REPO / "models").glob("*/model.json"):
        assert f"edgecv/_models/{manifest.parent.name}/model.json" in names, f"{manifest} is not in the wheel"
    for name, folder in packages.items():
        manifest, fname = read_manifest(folder)
        assert f"edgecv/_models/{name}/{fname}" in names
        for weights in manifest["weights"]:
            for rel in weights["files"]:
                assert f"edgecv/_models/{name}/{rel}" in names, f"{name}: {rel} is not in the wheel"


def _fresh_venv(root: Path, wheel: Path) -> Path:
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_edgecv_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            wheel,
        ]
    )
    return python


def test_wheel_installs_into_a_fresh_venv_and_runs_a_job(built, tmp_path):
    wheel, packages = built
    python = _fresh_venv(tmp_path / "venv", wheel)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECV_", "PYTHON"))}
    env["HOME"] = str(tmp_path / "home")

    where = _run(
        [
            python,
            "-c",
            "import edgecv.runtime.package as p; print(p.__file__); print(p.bundled_models_dir())",
        ],
        cwd=cwd,
        env=env,
    ).stdout.split()
    venv = str((tmp_path / "venv").resolve())
    assert where[0].startswith(venv), f"edgecv imported from {where[0]}, not the installed wheel"
    assert where[1].startswith(venv) and where[1].endswith("edgecv/_models")

    edgecv = tmp_path / "venv" / "bin" / "edgecv"
    listed = json.loads(
        _run([edgecv, "--data-dir", tmp_path / "data", "models", "list", "--json"], cwd=cwd, env=env).stdout
    )
    assert {m["name"] for m in listed} == set(packages)
    assert all(m["verified"] for m in listed), listed

    image = cwd / "shelf.jpg"
    image.write_bytes(jpeg_bytes())
    model = next(iter(sorted(packages)))
    proc = _run(
        [edgecv, "--data-dir", tmp_path / "data", "run", image, "--model", model, "--json"], cwd=cwd, env=env
    )
    jobs = json.loads(proc.stdout)
    assert [j["status"] for j in jobs] == ["completed"], proc.stdout + proc.stderr
    assert jobs[0]["model"] == model
    assert str(REPO) not in proc.stderr  # nothing was read from the source tree

"""``edgecv models train``: the data check (every bad input of issue 26 stops with a report and installs
nothing), the split, the missing-torch message, and one real run on a handful of generated images:
stopped part-way (checkpoint, nothing installed), resumed, exported, evaluated, installed, then a job on it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecv.cli import main
from edgecv.runtime.package import load_package
from edgecv.training.dataset import check_dataset

W, H = 160, 96
NAMES = ("box", "disc")


def _draw(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A grey image with two objects: red squares are class 0, blue discs class 1."""
    img = np.full((H, W, 3), int(rng.integers(150, 230)), np.uint8)
    rows = []
    for _ in range(2):
        c, s = int(rng.integers(0, 2)), int(rng.integers(18, 30))
        x, y = int(rng.integers(0, W - s)), int(rng.integers(0, H - s))
        if c == 0:
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), (30, 30, 200), -1)
        else:
            cv2.circle(img, (x + s // 2, y + s // 2), s // 2, (200, 60, 20), -1)
        rows.append(f"{c} {(x + s / 2) / W:.5f} {(y + s / 2) / H:.5f} {s / W:.5f} {s / H:.5f}\n")
    return img, rows


def make_yolo(root, count: int = 10, seed: int = 0):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES)))
    rng = np.random.default_rng(seed)
    for i in range(count):
        img, rows = _draw(rng)
        cv2.imwrite(str(root / "images" / f"{i:03d}.jpg"), img)
        (root / "labels" / f"{i:03d}.txt").write_text("".join(rows))
    return root


def make_coco(root, count: int = 6):
    yolo = make_yolo(root / "src", count)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(count):
        (yolo / "images" / f"{i:03d}.jpg").rename(root / "images" / f"{i:03d}.jpg")
        images.append({"id": i + 1, "file_name": f"{i:03d}.jpg", "width": W, "height": H})
        for line in (yolo / "labels" / f"{i:03d}.txt").read_text().splitlines():
            c, cx, cy, bw, bh = (float(v) for v in line.split())
            box = [(cx - bw / 2) * W, (cy - bh / 2) * H, bw * W, bh * H]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "bbox": box})
    (yolo / "data.yaml").unlink()
    for p in (yolo / "labels").iterdir():
        p.unlink()
    (yolo / "labels").rmdir()
    (yolo / "images").rmdir()
    yolo.rmdir()
    cats = [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner(env={"EDGECV_DATA_DIR": str(tmp_path / "data")})

    def invoke(*args):
        return runner.invoke(main, ["--log-level", "WARNING", *args], catch_exceptions=False)

    return invoke


def _installed(tmp_path) -> list[str]:
    models = tmp_path / "data" / "models"
    return sorted(p.name for p in models.iterdir()) if models.is_dir() else []


# --- bad input: a clear report, an Error: line, nothing installed ------------------------------------


def _labels_without_images(d):
    (d / "images" / "003.jpg").unlink()


def _images_without_labels(d):
    (d / "labels" / "004.txt").unlink()


def _class_past_names(d):
    (d / "labels" / "002.txt").write_text("5 0.5 0.5 0.2 0.2\n")


def _box_outside(d):
    (d / "labels" / "001.txt").write_text("0 0.95 0.5 0.3 0.2\n")


def _corrupt_image(d):
    (d / "images" / "005.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def _empty(d):
    for sub in ("images", "labels"):
        for p in (d / sub).iterdir():
            p.unlink()


@pytest.mark.parametrize(
    ("spoil", "reported"),
    [
        (_empty, "no images found"),
        (_labels_without_images, "label files without an image: labels/003.txt"),
        (_images_without_labels, "images without a label file (an empty .txt marks an image with no objects): images/004.jpg"),
        (_class_past_names, "class ids past the 2 names: labels/002.txt:1 (class 5)"),
        (_box_outside, "boxes outside the image (or of no size): labels/001.txt:1"),
        (_corrupt_image, "images that cannot be decoded: images/005.jpg"),
    ],
)  # fmt: skip
def test_bad_yolo_data_is_reported_and_nothing_is_installed(tmp_path, cli, spoil, reported):
    data = make_yolo(tmp_path / "yolo")
    spoil(data)
    result = cli("models", "train", "--data", str(data), "--name", "mine", "--minutes", "0.1")
    assert result.exit_code == 1
    assert f"error: {reported}" in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {data}: the data has errors")
    assert "Traceback" not in result.output
    assert _installed(tmp_path) == []
    assert not (tmp_path / "data" / "training").exists()


def test_an_empty_folder_is_reported(tmp_path, cli):
    (tmp_path / "nothing").mkdir()
    result = cli("models", "train", "--data", str(tmp_path / "nothing"), "--name", "mine")
    assert result.exit_code == 1
    assert "error: no images found: expected images/ + labels/ + data.yaml (YOLO)" in result.output
    assert _installed(tmp_path) == []


def test_coco_with_missing_categories_is_reported(tmp_path, cli):
    data = make_coco(tmp_path / "coco")
    coco = json.loads((data / "annotations.json").read_text())
    coco["categories"] = coco["categories"][:1]  # every "disc" annotation now names a missing category
    (data / "annotations.json").write_text(json.dumps(coco))
    result = cli("models", "train", "--data", str(data), "--name", "mine")
    assert result.exit_code == 1
    assert "error: annotations of categories missing from categories: id " in result.output
    assert "(category 2)" in result.output
    assert _installed(tmp_path) == []


def test_good_coco_is_read_with_its_category_names(tmp_path):
    check = check_dataset(make_coco(tmp_path / "coco", count=6))
    assert not check.errors, check.report()
    assert check.format == "coco" and check.names == ["box", "disc"]
    assert sum(len(s.cls) for s in check.samples) == 12
    s = check.samples[0]
    assert s.boxes.shape == (2, 4) and (s.boxes[:, 2] <= W).all() and (s.boxes[:, 3] <= H).all()


def test_warnings_do_not_stop_and_the_split_is_deterministic(tmp_path):
    data = make_yolo(tmp_path / "yolo", count=10)
    (data / "images" / "009.jpg").write_bytes((data / "images" / "000.jpg").read_bytes())
    line = (data / "labels" / "001.txt").read_text().splitlines()[0]
    (data / "labels" / "001.txt").write_text(f"{line}\n{line}\n")
    first, second = check_dataset(data), check_dataset(data)
    assert not first.errors
    assert "duplicate images (the same file twice; only the first is used)" in first.warnings
    assert first.warnings["duplicate boxes (kept once)"] == ["labels/001.txt:2"]
    assert len(first.samples) == 9 and len(first.val) == 2 and not first.split_given
    assert [s.path for s in first.val] == [s.path for s in second.val]
    assert not {s.path for s in first.val} & {s.path for s in first.train}


def test_a_given_split_is_kept(tmp_path):
    data = make_yolo(tmp_path / "yolo", count=6)
    for kind, ext in (("images", "jpg"), ("labels", "txt")):
        for split, ids in (("train", range(4)), ("val", range(4, 6))):
            (data / kind / split).mkdir()
            for i in ids:
                (data / kind / f"{i:03d}.{ext}").rename(data / kind / split / f"{i:03d}.{ext}")
    check = check_dataset(data)
    assert not check.errors and check.split_given
    assert [s.path.name for s in check.val] == ["004.jpg", "005.jpg"]


def test_without_torch_the_message_names_the_install_commands(tmp_path, cli, monkeypatch):
    data = make_yolo(tmp_path / "yolo")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    result = cli("models", "train", "--data", str(data), "--name", "mine")
    assert result.exit_code == 1
    assert "pip install torch==2.13.0" in result.output
    assert "pip install 'edgecv[train]'" in result.output
    assert _installed(tmp_path) == []


# --- a real run (in child processes: torch stays out of the test process) ---------------------------


@pytest.mark.process
def test_train_ctrl_c_resume_install_and_run_a_job(tmp_path, cli):
    pytest.importorskip("torch")
    pytest.importorskip("nncf")
    data = make_yolo(tmp_path / "yolo", count=10)
    env = {**os.environ, "EDGECV_DATA_DIR": str(tmp_path / "data")}
    train = [sys.executable, "-m", "edgecv", "--log-level", "WARNING", "models", "train", "--data", str(data),
             "--name", "mine", "--minutes", "0.15", "--imgsz", f"{W}x{H}", "--threads", "1"]  # fmt: skip
    proc = subprocess.Popen(train, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # the first progress line comes after the first step
        seen.append(line)
        if line.startswith("[") and " step " in line:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            break
    out = "".join(seen) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    assert "stopped at step " in out and "continue with: edgecv models train" in out and "--resume" in out
    assert "Traceback" not in out
    stopped_at = int(out.split("stopped at step ")[1].split()[0])
    assert (tmp_path / "data" / "training" / "mine" / "last.pt").is_file()
    assert _installed(tmp_path) == []

    again = cli("models", "train", "--data", str(data), "--name", "mine", "--imgsz", f"{W}x{H}")
    assert again.exit_code == 1 and "add --resume to continue it" in again.output

    resumed = subprocess.run([*train, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "mine: validation mAP50 " in resumed.stdout
    pkg = load_package(tmp_path / "data" / "models" / "mine", verify=True)
    assert pkg.labels == list(NAMES) and (pkg.input.width, pkg.input.height) == (W, H)
    assert {(w.backend, w.precision) for w in pkg.weights} == {
        ("openvino", "int8"), ("openvino", "fp32"), ("onnx", "int8"), ("onnx", "fp32")
    }  # fmt: skip
    report = json.loads((pkg.path / "eval-report.json").read_text())
    assert report["training"]["step"] > stopped_at  # continued from the checkpoint's step
    assert set(report["int8"]["perClass"]) == set(NAMES)
    for key in ("mAP50", "mAP50_95"):
        for weights in ("int8", "fp32", "onnxInt8"):
            assert 0.0 <= report[weights][key] <= 1.0
    assert report["int8LossMAP50_95Points"] == pytest.approx(
        100 * (report["fp32"]["mAP50_95"] - report["int8"]["mAP50_95"]), abs=0.01
    )
    assert "## Validation" in (pkg.path / "MODEL_CARD.md").read_text()
    assert not (tmp_path / "data" / "training" / "mine" / "last.pt").exists()

    listed = cli("models", "list")
    assert "mine" in listed.output and "BROKEN" not in listed.output.split("mine", 1)[1].splitlines()[0]
    job = cli("run", str(data / "images" / "000.jpg"), "--model", "mine", "--json")
    assert job.exit_code == 0, job.output
    (done,) = json.loads(job.output)
    assert done["status"] == "completed" and done["model"] == "mine"


def test_a_rare_class_gets_a_warning(tmp_path):
    data = make_yolo(tmp_path / "yolo", count=8)
    for i in range(8):  # "disc" in one image only, "box" in the seven others
        (data / "labels" / f"{i:03d}.txt").write_text("1 0.5 0.5 0.2 0.2\n" if i == 0 else "0 0.3 0.3 0.2 0.2\n")
    check = check_dataset(data)
    assert not check.errors
    assert check.warnings["classes in fewer than 5 images (expect poor accuracy on them)"] == ["disc"]


def test_torch_is_not_a_runtime_dependency():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("torch")]
    assert not [d for d in project["optional-dependencies"]["train"] if d.lower().startswith("torch")]


def test_a_shipped_package_name_is_refused_before_training(tmp_path, cli):
    data = make_yolo(tmp_path / "yolo")
    result = cli("models", "train", "--data", str(data), "--name", "shelf-detection-v2")
    assert result.exit_code == 1
    assert "Error: 'shelf-detection-v2' is the name of the package in " in result.output
    assert _installed(tmp_path) == [] and not (tmp_path / "data" / "training").exists()


def test_the_first_ctrl_c_asks_training_to_stop_and_the_second_interrupts():
    """The handler the CLI installs while training (called directly here: a real SIGINT is sent to the
    child process of the training run above)."""
    from edgecv.cli.models import _ctrl_c

    before = signal.getsignal(signal.SIGINT)
    with _ctrl_c() as stop:
        handler = signal.getsignal(signal.SIGINT)
        handler(signal.SIGINT, None)
        assert stop.is_set()  # no KeyboardInterrupt: training stops after its step, with a checkpoint
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) is before

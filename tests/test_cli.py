"""The CLI end to end with CliRunner on a real data dir and the tiny real model."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from helpers.images import distinct_jpeg

from edgecv.cli import main


@pytest.fixture
def cli(tmp_path, models_root):
    env = {
        "EDGECV_DATA_DIR": str(tmp_path / "data"),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_DEFAULT_MODEL": "rect",
        "EDGECV_CONFIG": "",
    }
    runner = CliRunner(env=env)

    def invoke(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def images(tmp_path, n, start=0):
    paths = []
    for i in range(start, start + n):
        path = tmp_path / f"photo {i}.jpg"
        path.write_bytes(distinct_jpeg(i))
        paths.append(str(path))
    return paths


def test_run_prints_jobs_in_the_api_shape_and_keeps_originals(cli, tmp_path):
    paths = images(tmp_path, 2)
    out = json.loads(cli("run", *paths, "--json").stdout)
    assert [j["status"] for j in out] == ["completed", "completed"]
    job = out[0]
    assert set(job) == {
        "id",
        "status",
        "model",
        "modelVersion",
        "observationId",
        "createdAt",
        "startedAt",
        "completedAt",
        "error",
        "result",
    }
    assert job["modelVersion"] == "1.0.0"  # the version of the package it ran on
    det = job["result"]["detections"][0]  # highest confidence first: the drawn rectangle
    assert det["objectName"] == "red-thing" and det["confidence"] == pytest.approx(0.9, abs=0.01)
    box = det["boundingBox"]
    assert all(isinstance(v, int) for v in box.values())
    assert abs(box["x"] - 20) <= 2 and abs(box["y"] - 20) <= 2  # distinct_jpeg(0) draws (20, 20)-(80, 70)
    assert abs(box["width"] - 60) <= 3 and abs(box["height"] - 50) <= 3
    assert det["attributes"] == {}
    summary = job["result"]["summary"]
    assert summary["totalDetections"] == len(job["result"]["detections"])
    assert sum(summary["countsByLabel"].values()) == summary["totalDetections"]
    assert all((tmp_path / p).exists() for p in paths)
    again = json.loads(cli("run", paths[0], "--json").stdout)
    assert again[0]["id"] == job["id"]  # identical bytes, same model: the existing job


def test_jobs_show_and_list(cli, tmp_path):
    out = json.loads(cli("run", *images(tmp_path, 3), "--json").stdout)
    shown = json.loads(cli("jobs", "show", out[1]["id"]).stdout)
    assert shown == out[1]
    listed = json.loads(cli("jobs", "list", "--json", "--limit", "2").stdout)
    assert [j["id"] for j in listed] == [out[2]["id"], out[1]["id"]]
    text = cli("jobs", "list", "--status", "completed").output
    assert text.count("completed") == 3
    lines = text.splitlines()
    assert lines[0].startswith(f"{out[2]['id']}  photo 2.jpg{' ' * 17}  completed ")
    assert [line.split("  ")[1] for line in lines] == ["photo 2.jpg", "photo 1.jpg", "photo 0.jpg"]
    assert json.loads(cli("jobs", "list", "--json", "--model", "other").stdout) == []


def test_jobs_list_shortens_long_file_names_from_the_front():
    from edgecv.cli.jobs import short_name

    long = "store-0042/aisle-17/shelf-left/2024-06-01T10-00-00-camera-3.jpg"
    assert short_name(long) == "…" + long[-27:] and len(short_name(long)) == 28
    assert short_name("a.jpg") == "a.jpg"


def test_run_reports_rejected_files_and_exits_nonzero(cli, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = cli("run", str(bad), ok=False)
    assert result.exit_code == 1 and "not_an_image" in result.output


def test_run_with_unknown_model_fails_the_job(cli, tmp_path):
    result = cli("run", images(tmp_path, 1)[0], "--model", "nope", "--json", ok=False)
    job = json.loads(result.stdout)[0]
    assert job["status"] == "failed" and job["error"]["code"] == "model_not_found"


def test_jobs_show_unknown_id_is_a_clear_error(cli):
    result = cli("jobs", "show", "job_missing", ok=False)
    assert result.exit_code == 1 and "job job_missing does not exist" in result.output


def test_models_list_and_show(cli):
    out = cli("models", "list").output
    assert "rect" in out and "sha256 ok" in out and "onnx/fp32" in out
    shown = json.loads(cli("models", "show", "rect").stdout)
    assert shown["name"] == "rect" and shown["verified"] is True
    missing = cli("models", "show", "nope", ok=False)
    assert "model 'nope' is not installed" in missing.output


def test_bad_config_is_reported_with_the_key(cli, tmp_path):
    toml = tmp_path / "edgecv.toml"
    toml.write_text("workers = 0\n")
    result = cli("--config", str(toml), "jobs", "list", ok=False)
    assert "workers: must be at least 1" in result.output


def test_agent_refuses_a_missing_inbox_and_creates_nothing(cli, tmp_path):
    typo = tmp_path / "typo" / "inbox"
    result = cli("agent", "--inbox", str(typo), "--once", ok=False)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: inbox: {typo} does not exist; check the path, or create it first (mkdir -p {typo})\n"
    )
    assert not (tmp_path / "typo").exists() and not (tmp_path / "data").exists()


def test_agent_refuses_model_names_that_are_not_installed(cli, tmp_path):
    (tmp_path / "inbox").mkdir()
    toml = tmp_path / "edgecv.toml"
    toml.write_text('[folders]\nshelves = "rect"\nfacades = "rekt"\n')
    result = cli("--config", str(toml), "agent", "--inbox", str(tmp_path / "inbox"), "--once", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: folders.facades 'rekt': not installed (installed: ")
    assert not (tmp_path / "data").exists()
    ok = cli(
        "--config",
        str(toml),
        "agent",
        "--inbox",
        str(tmp_path / "inbox"),
        "--once",
        "--model",
        "nope",
        ok=False,
    )
    assert ok.output.startswith("Error: default_model 'nope', folders.facades 'rekt': not installed")


def _custom_export(tmp_path):
    import onnx
    from helpers.runtime import rect_detector

    export = tmp_path / "best.onnx"
    meta = {"task": "detect", "imgsz": "[96, 128]", "names": "{0: 'carton', 1: 'crate'}", "stride": "32"}
    onnx.save(rect_detector(128, 96, metadata=meta), export)
    return export


@pytest.mark.parametrize("command", ["run", "agent", "jobs list", "models add", "sync", "serve"])
def test_an_unusable_data_dir_is_one_clear_line(cli, tmp_path, command):
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / "a-file" / "data"
    (tmp_path / "inbox").mkdir()
    args = {
        "run": ["run", images(tmp_path, 1)[0]],
        "agent": ["agent", "--inbox", str(tmp_path / "inbox"), "--once"],
        "jobs list": ["jobs", "list"],
        "models add": ["models", "add", str(_custom_export(tmp_path)), "--name", "custom"],
        "sync": ["sync", "--status"],
        "serve": ["serve", "--port", "0"],
    }[command]
    result = cli("--data-dir", str(data_dir), *args, ok=False)
    assert result.exit_code == 1
    what, path = ("models folder", data_dir / "models") if command == "models add" else ("data dir", data_dir)
    assert result.output == (
        f"Error: {what} {path} cannot be created (not a directory: part of the path is a file); create it "
        f"writable by this user (sudo install -d -o $(id -un) {path}), or choose another with --data-dir "
        "(EDGECV_DATA_DIR, data_dir in edgecv.toml)\n"
    )


def test_sync_without_a_url_says_so_and_creates_nothing(cli, tmp_path):
    result = cli("sync", ok=False)
    assert result.exit_code == 1
    assert result.output == "Error: sync.url is not set; set [sync] url in edgecv.toml or EDGECV_SYNC_URL\n"
    assert not (tmp_path / "data").exists()


@pytest.fixture
def busy_port():
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_serve_on_a_busy_port_says_so(cli, busy_port):
    result = cli("serve", "--port", str(busy_port), ok=False)
    assert result.exit_code == 1
    assert (
        result.output
        == f"Error: port {busy_port} is in use (another edgecv agent?); pass --port or stop it\n"
    )


def test_agent_with_the_api_on_a_busy_port_says_so(cli, tmp_path, busy_port):
    (tmp_path / "inbox").mkdir()
    toml = tmp_path / "edgecv.toml"
    toml.write_text(f"[api]\nport = {busy_port}\n")
    result = cli("--config", str(toml), "agent", "--inbox", str(tmp_path / "inbox"), "--once", ok=False)
    assert result.exit_code == 1
    assert result.output.endswith(
        f"Error: port {busy_port} is in use (another edgecv agent?); set api.port (EDGECV_API_PORT) "
        "or api.enabled = false, or stop it\n"
    )


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help_text():
    missing = [" ".join(path) for path, cmd in _commands(main) if not (cmd.help or "").strip()]
    assert missing == []


def test_every_option_has_help_text():
    commands = [((), main), *_commands(main)]
    missing = [
        f"{' '.join(path) or 'edgecv'} {param.opts[0]}"
        for path, cmd in commands
        for param in cmd.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert missing == []


def test_models_add_help_names_both_export_formats(cli):
    text = " ".join(cli("models", "add", "--help").output.split())
    assert "an .onnx file (`yolo export format=onnx`)" in text
    assert "an OpenVINO IR folder (`yolo export format=openvino`" in text


def test_annotate_writes_pictures_from_run_and_show(cli, tmp_path):
    import cv2

    out = json.loads(cli("run", *images(tmp_path, 2), "--json", "--annotate", str(tmp_path / "ann")).stdout)
    drawn = sorted((tmp_path / "ann").glob("*.jpg"))
    assert [p.stem for p in drawn] == sorted(j["id"] for j in out)
    picture = tmp_path / "show.png"
    cli("jobs", "show", out[0]["id"], "--annotate", str(picture))
    image = cv2.imread(str(picture))
    original = cv2.imread(str(tmp_path / "photo 0.jpg"))
    assert image.shape[:2] == original.shape[:2]
    assert (image.astype(int) - original.astype(int)).any()  # something was drawn


def test_models_add_installs_a_custom_ultralytics_export_that_jobs_can_use(cli, tmp_path):
    import onnx
    from helpers.runtime import rect_detector

    export = tmp_path / "best.onnx"
    meta = {"task": "detect", "imgsz": "[96, 128]", "names": "{0: 'carton', 1: 'crate'}", "stride": "32"}
    onnx.save(rect_detector(128, 96, metadata=meta), export)
    added = cli("models", "add", str(export), "--name", "custom").output
    assert "installed custom (2 labels, input 128x96)" in added
    assert "custom" in cli("models", "list").output
    job = json.loads(cli("run", images(tmp_path, 1, start=30)[0], "--model", "custom", "--json").stdout)[0]
    assert job["model"] == "custom" and job["result"]["detections"][0]["objectName"] == "carton"
    again = cli("models", "add", str(export), "--name", "custom", ok=False)
    assert again.exit_code == 1 and "--force" in again.output

"""Operating a device: config init/check, doctor, status, the systemd unit, logs without secrets."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers.images import jpeg_bytes
from helpers.sync_server import ReferenceServer, Settings, make_jobs

from edgecv import doctor, service
from edgecv.agent import data_dir_lock
from edgecv.cli import main
from edgecv.config import Config, load_config
from edgecv.logging_setup import REDACTED, SECRETS, configure_logging, register_secrets
from edgecv.status import status_lines, status_snapshot, write_agent_state
from edgecv.store import Store, schema_version
from edgecv.upstream.budget import format_size

REPO = Path(__file__).resolve().parents[1]
ADMIN_COMMANDS = [
    ["doctor"],
    ["status"],
    ["config"],
    ["config", "init"],
    ["config", "check"],
    ["service"],
    ["service", "install"],
    ["service", "uninstall"],
]


def invoke(*args: str, env: dict | None = None):
    return CliRunner(env={"EDGECV_CONFIG": "", **(env or {})}).invoke(
        main, list(args), catch_exceptions=False
    )


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_every_admin_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    ctx_cmd = main
    for name in command:
        ctx_cmd = ctx_cmd.commands[name]  # type: ignore[attr-defined]
    assert ctx_cmd.help and ctx_cmd.help.strip(), f"{' '.join(command)} has no help text"


# -- config init / check -------------------------------------------------------------------------


TABLES = (
    "sync",
    "api",
    "webhooks",
    "retention",
    "privacy",
    "mqtt",
    "folders",
    "planograms",
    "model_pull",
    "hard_images",
)


def test_config_init_writes_a_template_that_validates_and_documents_every_key(tmp_path):
    path = tmp_path / "edgecv.toml"
    result = invoke(
        "config", "init", str(path), "--data-dir", str(tmp_path / "d"), "--inbox", str(tmp_path / "in")
    )
    assert result.exit_code == 0, result.output
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    cfg = load_config(path, environ={})
    assert (cfg.data_dir, cfg.inbox) == (tmp_path / "d", tmp_path / "in")
    assert cfg == dataclasses.replace(
        Config(), data_dir=tmp_path / "d", inbox=tmp_path / "in"
    )  # all defaults
    text = path.read_text()
    sections = {
        "": Config,
        "sync": cfg.sync,
        "api": cfg.api,
        "webhooks": cfg.webhooks,
        "retention": cfg.retention,
        "privacy": cfg.privacy,
        "mqtt": cfg.mqtt,
        "model_pull": cfg.model_pull,
        "hard_images": cfg.hard_images,
    }
    chunks = dict.fromkeys(sections, "")
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1]
        elif current in chunks:
            chunks[current] += line + "\n"
    for section, obj in sections.items():
        for f in dataclasses.fields(obj):
            if f.name in TABLES:  # checked by their header
                continue
            assert f"{f.name} = " in chunks[section], f"[{section or 'top'}] {f.name} is not in the template"
    assert "[folders]" in text and "[planograms]" in text


def test_config_init_refuses_to_overwrite(tmp_path):
    path = tmp_path / "edgecv.toml"
    path.write_text("workers = 2\n")
    result = invoke("config", "init", str(path))
    assert result.exit_code == 1
    assert f"Error: {path} exists; pass --force to overwrite it" in result.output
    assert path.read_text() == "workers = 2\n"
    assert invoke("config", "init", str(path), "--force").exit_code == 0
    assert load_config(path, environ={}).workers == 1


def test_shipped_template_validates_as_is():
    text = (REPO / "edgecv" / "config_template.toml").read_text()
    assert service.config_text() == text
    assert 'data_dir = "/var/lib/edgecv"' in text and 'inbox = "/srv/edgecv/inbox"' in text


@pytest.mark.parametrize(
    "content, expected",
    [
        ("wrokers = 2\n", "unknown key 'wrokers'; known keys: "),
        ("[sync]\nurll = 'http://x'\n", "unknown key sync.'urll'"),
        ("workers = 0\n", "workers: must be at least 1, got 0"),
        ("[sync]\nimage_policy = 'all'\n", "sync.image_policy: expected none, thumbnail or full, got 'all'"),
        ("[api]\nport = 'eighty'\n", "api.port: must be an integer, got 'eighty'"),
        ("workers = \n", "not valid TOML"),
    ],
)
def test_config_check_names_the_key_and_the_problem(tmp_path, content, expected):
    path = tmp_path / "edgecv.toml"
    path.write_text(content)
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}")
    assert expected in result.output


def test_config_check_suggests_the_key_meant(tmp_path):
    path = tmp_path / "edgecv.toml"
    path.write_text("wrokers = 2\n[sync]\n")
    assert "(did you mean 'workers'?)" in invoke("config", "check", str(path)).output
    path.write_text("[sync]\napi_kye = 'x'\n")
    assert "(did you mean sync.'api_key'?)" in invoke("config", "check", str(path)).output


def test_config_check_names_every_model_that_is_not_installed(tmp_path, models_root):
    path = tmp_path / "edgecv.toml"
    path.write_text(
        f'models_dirs = ["{models_root}"]\ndefault_model = "rekt"\n'
        '[folders]\nshelves = "rect"\nfacades = "building-inspection-v9"\n'
    )
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(
        f"Error: {path}: default_model 'rekt', folders.facades 'building-inspection-v9': not installed "
        "(installed: building-inspection-v1, "
    )
    assert ", rect, " in first and first.endswith(
        "fix the name in edgecv.toml, or install the model with `edgecv models add` (did you mean 'rect'?)"
    )
    path.write_text(f'models_dirs = ["{models_root}"]\ndefault_model = "rect"\n[folders]\nshelves = "rect"\n')
    assert invoke("config", "check", str(path)).exit_code == 0


def test_config_check_ok_and_default_path(tmp_path, monkeypatch):
    path = tmp_path / "edgecv.toml"
    service.write_config(path, data_dir=tmp_path / "d", inbox=tmp_path / "in")
    result = invoke("config", "check", env={"EDGECV_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"{path}: ok (data_dir {tmp_path / 'd'}, inbox {tmp_path / 'in'}, sync disabled)\n"
    )
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    missing = invoke("config", "check")
    assert missing.exit_code == 1
    assert "no config file: pass PATH, set $EDGECV_CONFIG, or create ./edgecv.toml" in missing.output


# -- doctor --------------------------------------------------------------------------------------


def _by_name(results):
    return {r.name: r for r in results}


def test_doctor_on_a_healthy_device(config, store):
    make_jobs(store, 2)
    results = doctor.run_checks(config)
    assert not doctor.failed(results), "\n".join(r.line() for r in results)
    names = _by_name(results)
    for name in (
        "python",
        "openvino",
        "onnxruntime",
        "devices",
        "model rect",
        "data dir",
        "disk",
        "job log",
        "job log WAL",
        "inbox",
        "upstream",
        "clock",
    ):
        assert name in names, f"missing check {name}"
    assert "sha256 ok, loads (" in names["model rect"].detail
    assert "integrity ok" in names["job log"].detail
    assert "CPU" in names["devices"].detail


def test_doctor_cli_lines_and_exit_status(config, tmp_path, models_root):
    cfg_file = tmp_path / "edgecv.toml"
    service.write_config(cfg_file, data_dir=config.data_dir, inbox=tmp_path / "missing-inbox")
    env = {"EDGECV_MODELS_DIRS": str(models_root), "EDGECV_DEFAULT_MODEL": "rect"}
    result = invoke("--config", str(cfg_file), "doctor", "--skip", "models", env=env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"FAIL inbox: {tmp_path / 'missing-inbox'} does not exist" in lines
    assert f"     fix: install -d -o edgecv -g edgecv -m 2770 {tmp_path / 'missing-inbox'}" in lines
    assert all(line.startswith(("OK   ", "WARN ", "FAIL ", "     fix: ")) for line in lines)
    (tmp_path / "missing-inbox").mkdir()
    ok = invoke("--config", str(cfg_file), "doctor", "--skip", "models", "--json", env=env)
    assert ok.exit_code == 0, ok.output
    assert {c["status"] for c in json.loads(ok.output)} <= {"OK", "WARN"}


@pytest.mark.process
def test_doctor_keeps_the_model_loaders_info_lines_out_of_its_report(tmp_path, models_root):
    env = {
        **os.environ,
        "EDGECV_CONFIG": "",
        "EDGECV_DATA_DIR": str(tmp_path / "data"),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_DEFAULT_MODEL": "rect",
    }
    command = [sys.executable, "-m", "edgecv", "doctor", "--skip", "upstream"]
    quiet = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "OK   model rect: " in quiet.stdout
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, "-m", "edgecv", "--log-level", "INFO", *command[3:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "INFO edgecv.runtime.detector: opened model rect" in loud.stderr


def test_doctor_reports_a_bad_config_as_a_fail_line(tmp_path):
    cfg_file = tmp_path / "edgecv.toml"
    cfg_file.write_text("workers = 0\n")
    result = invoke("--config", str(cfg_file), "doctor")
    assert result.exit_code == 1
    assert result.output.startswith("FAIL config: ")
    assert "workers: must be at least 1, got 0" in result.output


def test_doctor_finds_a_corrupt_model_and_a_missing_default(config, tmp_path, models_root):
    root = tmp_path / "models"
    shutil.copytree(models_root, root)
    with open(root / "rect" / "model.onnx", "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    cfg = dataclasses.replace(
        config, models_dirs=[root], default_model="shelf-detection-v9", folders={"a": "rect", "b": "rekt"}
    )
    checks = _by_name(doctor.check_models(cfg))
    assert checks["model rect"].status == "FAIL"
    assert "model.onnx is corrupt or was changed" in checks["model rect"].detail
    assert checks["default_model"].status == "FAIL"
    assert checks["default_model"].detail.startswith("'shelf-detection-v9' is not installed (installed: ")
    assert "rect" in checks["default_model"].detail
    assert checks["folders.b"].status == "FAIL" and "'rekt' is not installed" in checks["folders.b"].detail
    assert "folders.a" not in checks


def test_doctor_database_checks(config, store):
    make_jobs(store, 1)
    store.close()
    assert {r.status for r in doctor.check_database(config)} == {"OK"}
    import sqlite3

    conn = sqlite3.connect(config.db_path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema_version() + 1}")
    conn.close()
    checks = _by_name(doctor.check_database(config))
    assert checks["job log schema"].status == "FAIL"
    assert "written by a newer edgecv" in checks["job log schema"].detail
    snapshot_error = invoke("--data-dir", str(config.data_dir), "status")
    assert snapshot_error.exit_code == 1
    assert "was written by a newer edgecv" in snapshot_error.output


def test_doctor_inbox_watch_limit_and_polling(config, monkeypatch, tmp_path):
    for i in range(5):
        (config.inbox / f"aisle-{i}").mkdir()
    limit = tmp_path / "max_user_watches"
    limit.write_text("4\n")
    monkeypatch.setattr(doctor, "MAX_WATCHES_PATH", limit)
    check = doctor.check_inbox(config)[0]
    assert check.status == "FAIL"
    assert "6 folder(s) to watch, inotify max_user_watches 4" in check.detail
    assert "fs.inotify.max_user_watches=24" in check.hint
    limit.write_text("10\n")
    assert doctor.check_inbox(config)[0].status == "WARN"
    assert doctor.check_inbox(dataclasses.replace(config, poll=True))[0].status == "OK"
    assert doctor.check_inbox(dataclasses.replace(config, inbox=None))[0].status == "FAIL"


def test_doctor_disk_against_the_budget(config):
    assert doctor.check_disk(config)[0].status == "OK"
    huge = dataclasses.replace(config, sync=dataclasses.replace(config.sync, disk_budget_mb=10**12))
    check = doctor.check_disk(huge)[0]
    assert check.status == "WARN"
    assert "the disk fills before the budget is reached" in check.detail


def test_doctor_and_sync_status_show_the_disk_budget_in_one_unit(config):
    toml = config.data_dir.parent / "edgecv.toml"
    toml.write_text("[sync]\ndisk_budget_mb = 2048\n")
    args = ["--config", str(toml), "--data-dir", str(config.data_dir)]
    doctor_out = invoke(*args, "doctor", "--skip", "models", "--skip", "upstream").output
    assert " of a 2048.0 MiB budget" in doctor_out
    status_out = invoke(*args, "sync", "--status").output
    disk_line = next(line for line in status_out.splitlines() if line.startswith("disk:"))
    assert disk_line.endswith(" MiB of 2048.0 MiB; 0 images pruned, 0 downscaled"), disk_line
    assert format_size(2048 * 1024 * 1024) == "2048.0 MiB"
    assert format_size(72.5 * 1024**3) == "72.5 GiB"


def test_doctor_clock(config, store):
    assert doctor.check_clock(config)[0].status == "OK"
    old = doctor.check_clock(config, now=datetime(2020, 1, 1, tzinfo=timezone.utc))[0]
    assert old.status == "FAIL" and "before 2024" in old.detail and "timedatectl set-ntp true" in old.hint
    make_jobs(store, 1)
    behind = doctor.check_clock(config, now=datetime(2024, 6, 1, tzinfo=timezone.utc))[0]
    assert behind.status == "FAIL" and "the clock went backwards" in behind.detail


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_sync(config: Config, url: str, key: str | None) -> Config:
    return dataclasses.replace(
        config, sync=dataclasses.replace(config.sync, url=url, api_key=key, timeout_s=3)
    )


@pytest.mark.process
def test_doctor_upstream(config):
    assert doctor.check_upstream(config)[0].detail.startswith("sync disabled")
    with ReferenceServer(settings=Settings(api_keys={"right-key-123"})) as server:
        good = _by_name(doctor.check_upstream(_with_sync(config, server.url, "right-key-123")))
        assert good["upstream auth"].status == "OK" and good["upstream auth"].detail == "API key accepted"
        bad = _by_name(doctor.check_upstream(_with_sync(config, server.url, "wrong-key-456")))
        assert bad["upstream"].status == "OK"
        assert bad["upstream auth"].status == "FAIL"
        assert "HTTP 401: the API key was refused" in bad["upstream auth"].detail
        assert "sync.api_key" in bad["upstream auth"].hint
        none = _by_name(doctor.check_upstream(_with_sync(config, server.url, None)))
        assert "needs an API key and none is set" in none["upstream auth"].detail
    refused = doctor.check_upstream(_with_sync(config, f"http://127.0.0.1:{_closed_port()}", "k"))[0]
    assert refused.status == "FAIL"
    assert "unreachable: ConnectionRefusedError" in refused.detail
    assert "firewall" in refused.hint


def test_doctor_one_crashing_check_does_not_hide_the_others(config, monkeypatch):
    def boom(_cfg):
        raise RuntimeError("probe exploded")

    monkeypatch.setitem(doctor.CHECKS, "disk", boom)
    results = _by_name(doctor.run_checks(config, skip=["models"]))
    assert results["disk"].status == "FAIL"
    assert results["disk"].detail == "the check itself failed: RuntimeError: probe exploded"
    assert "clock" in results


# -- status --------------------------------------------------------------------------------------


def _finish(store: Store, name: str, fail: bool = False) -> str:
    _, job, _ = store.add_observation(
        sha256=name.encode().hex().ljust(64, "0")[:64],
        spool_path=f"spool/{name}",
        original_name=name,
        media_type="image/jpeg",
        size_bytes=10,
        width=4,
        height=4,
        metadata={},
        model="rect",
    )
    if fail is None:
        return job.id
    claimed = store.claim_job("w", 60, job_id=job.id)
    if fail:
        store.fail_job(claimed.id, "w", "image_unreadable", "truncated; resend it")
    else:
        store.complete_job(
            claimed.id, "w", {"detections": [{}, {}], "summary": {}}, inference_ms=3.0, device="CPU"
        )
    return job.id


def test_status_snapshot(config, store):
    done = _finish(store, "a.jpg")
    failed = _finish(store, "b.jpg", fail=True)
    _finish(store, "c.jpg", fail=None)
    snap = status_snapshot(config)
    assert snap["queue"] == {"depth": 1, "processing": 0}
    assert snap["jobs"] == {"queued": 1, "processing": 0, "completed": 1, "failed": 1}
    assert snap["lastCompleted"]["id"] == done and snap["lastCompleted"]["detections"] == 2
    assert snap["lastFailed"] == {
        "id": failed,
        "model": "rect",
        "completedAt": snap["lastFailed"]["completedAt"],
        "error": {"code": "image_unreadable", "message": "truncated; resend it"},
    }
    assert snap["sync"]["state"] == "disabled"
    assert snap["sync"]["backlog"]["pending"] == 2
    assert "rect" in [m["name"] for m in snap["models"]]  # plus whatever models/ ships
    assert snap["agent"] == {"running": False}
    assert snap["database"]["schemaVersion"] == schema_version()
    lines = status_lines(snap)
    assert "queue:      1 queued, 0 processing" in lines
    assert any(line.startswith(f"last fail:  {failed} rect at ") for line in lines)
    assert "sync:       disabled (no sync.url); 2 result(s) kept locally" in lines


def test_status_without_a_job_log_creates_nothing(config):
    snap = status_snapshot(config)
    assert snap["database"]["exists"] is False and snap["jobs"]["queued"] == 0
    assert not config.data_dir.exists()


def test_status_shows_the_running_agent_and_its_devices(config, store):
    class FakeDetector:
        backend, precision, device = "openvino", "fp32", "CPU"
        package = type("P", (), {"version": "1.2.3"})()

    with data_dir_lock(config.data_dir):
        write_agent_state(config, {})
        write_agent_state(config, {"rect": FakeDetector()})
        snap = status_snapshot(config)
        assert snap["agent"]["running"] is True and snap["agent"]["pid"] == os.getpid()
        assert snap["agent"]["modelsLoaded"]["rect"] == {
            "version": "1.2.3",
            "backend": "openvino",
            "precision": "fp32",
            "device": "CPU",
        }
        assert any("loaded on CPU (openvino/fp32)" in line for line in status_lines(snap))
        result = invoke(
            "--data-dir",
            str(config.data_dir),
            "status",
            "--json",
            env={"EDGECV_MODELS_DIRS": str(config.models_dirs[0])},
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["agent"]["running"] is True
        assert doctor.check_agent(config)[0].detail.startswith(f"agent running (pid {os.getpid()}) since ")
    after = status_snapshot(config)
    assert after["agent"]["running"] is False and after["agent"]["stale"] is True
    # the file a killed agent left behind is not taken for a running agent
    assert doctor.check_agent(config)[0].detail == f"no agent running on {config.data_dir}"


# -- systemd service -----------------------------------------------------------------------------


def test_shipped_unit_is_the_rendered_default():
    assert (REPO / "scripts" / "edgecv.service").read_text() == service.render_unit()


def test_service_install_and_uninstall_under_a_root(tmp_path):
    root = tmp_path / "root"
    result = invoke("service", "install", "--root", str(root), "--inbox", "/srv/cams")
    assert result.exit_code == 0, result.output
    unit = (root / "etc/systemd/system/edgecv.service").read_text()
    python = str(Path(sys.executable).absolute())
    assert f"ExecStart={python} -m edgecv agent\n" in unit
    for line in (
        "User=edgecv",
        "Environment=EDGECV_CONFIG=/etc/edgecv/edgecv.toml",
        "StateDirectory=edgecv",
        "ReadWritePaths=/var/lib/edgecv /srv/cams",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ):
        assert f"\n{line}\n" in unit
    cfg = load_config(root / "etc/edgecv/edgecv.toml", environ={})
    assert (cfg.data_dir, cfg.inbox) == (Path("/var/lib/edgecv"), Path("/srv/cams"))
    assert (root / "srv/cams").is_dir()
    assert "systemctl enable --now edgecv" in result.output
    assert "systemctl daemon-reload" in result.output

    again = invoke("service", "install", "--root", str(root))
    assert "kept existing" in again.output
    assert (
        "ReadWritePaths=/var/lib/edgecv /srv/cams" in (root / "etc/systemd/system/edgecv.service").read_text()
    )

    removed = invoke("service", "uninstall", "--root", str(root))
    assert "removed edgecv.service" in removed.output
    assert not (root / "etc/systemd/system/edgecv.service").exists()
    assert (root / "etc/edgecv/edgecv.toml").exists()
    assert invoke("service", "uninstall", "--root", str(root)).output == "edgecv.service is not installed\n"


def test_service_install_warns_about_a_venv_the_service_cannot_see(tmp_path):
    report = service.install_service(tmp_path, python="/home/tech/.venv/bin/python")
    assert any("ProtectHome" in w for w in report.warnings)


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
OLD_SYSTEMD_KEYS = ("Unknown key 'RestartSteps'", "Unknown key 'RestartMaxDelaySec'")  # systemd < 254


@pytest.mark.process
@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    report = service.install_service(tmp_path / "root")
    unit = tmp_path / "edgecv.service"
    shutil.copyfile(report.unit_path, unit)
    proc = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not any(key in line for key in OLD_SYSTEMD_KEYS)
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


# -- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def clean_secrets():
    yield
    SECRETS.clear()


def test_secrets_are_redacted_from_every_log_path(config, capsys, clean_secrets):
    secret_cfg = dataclasses.replace(
        config,
        sync=dataclasses.replace(config.sync, api_key="sk-live-9f8e7d6c5b4a"),
        api=dataclasses.replace(config.api, token="tok-local-1a2b3c4d"),
    )
    register_secrets(secret_cfg)
    handler = configure_logging("DEBUG", "json", force=True)
    try:
        log = logging.getLogger("edgecv.test")
        log.info("key is %s and token %s", "sk-live-9f8e7d6c5b4a", "tok-local-1a2b3c4d")
        log.warning("headers: {'Authorization': 'Bearer abc.def-ghi'}; secret=whsec_c2VjcmV0c2VjcmV0")
        try:
            raise ValueError("rejected key sk-live-9f8e7d6c5b4a")
        except ValueError:
            log.exception("failed with %r", secret_cfg.sync)
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    for secret in ("sk-live-9f8e7d6c5b4a", "tok-local-1a2b3c4d", "abc.def-ghi", "c2VjcmV0c2VjcmV0"):
        assert secret not in err
    records = [json.loads(line) for line in err.splitlines()]
    assert [r["level"] for r in records] == ["INFO", "WARNING", "ERROR"]
    assert records[0]["msg"] == f"key is {REDACTED} and token {REDACTED}"
    assert f"ValueError: rejected key {REDACTED}" in records[2]["exc"]


def test_text_format_is_human_readable(capsys):
    handler = configure_logging("INFO", "text", force=True)
    try:
        logging.getLogger("edgecv.test").info("hello %s", "world")
    finally:
        logging.getLogger().removeHandler(handler)
    assert capsys.readouterr().err.rstrip().endswith(" INFO edgecv.test: hello world")


@pytest.mark.process
def test_a_run_never_logs_the_api_key(tmp_path, models_root):
    """Real processes, both formats: a job, a refused sync and doctor, at DEBUG level."""
    key, token = "sk-live-0123456789abcdef", "local-token-fedcba987654"
    image = tmp_path / "shelf.jpg"
    image.write_bytes(jpeg_bytes())
    cfg_file = tmp_path / "edgecv.toml"
    with ReferenceServer(settings=Settings(api_keys={"another-key-000"})) as server:
        cfg_file.write_text(
            f'data_dir = "{tmp_path / "data"}"\ninbox = "{tmp_path}"\ndefault_model = "rect"\n'
            f'models_dirs = ["{models_root}"]\n[sync]\nurl = "{server.url}"\napi_key = "{key}"\n'
            f'backoff_max_s = 0.5\n[api]\ntoken = "{token}"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECV_")}
        edgecv = [sys.executable, "-m", "edgecv", "--config", str(cfg_file), "--log-level", "DEBUG"]
        outputs = []
        for fmt, args in (
            ("json", ["run", str(image)]),
            ("text", ["sync", "--timeout", "2"]),
            ("json", ["doctor", "--skip", "models"]),
        ):
            proc = subprocess.run(
                [*edgecv, "--log-format", fmt, *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
            )
            outputs.append(proc.stdout + proc.stderr)
            if fmt == "json":
                for line in proc.stderr.splitlines():
                    assert json.loads(line)["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
    assert "completed" in outputs[0]
    assert "API key was refused" in outputs[1] + outputs[2]
    for output in outputs:
        assert key not in output and token not in output


def test_log_format_is_validated():
    result = invoke("--log-format", "xml", "status")
    assert result.exit_code == 2
    assert "Invalid value for '--log-format'" in result.output
    assert isinstance(main.params[-1], click.Option)

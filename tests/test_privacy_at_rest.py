"""Private at rest: after every command nothing edgecv wrote is open to other local users, and looser
modes found in a data dir are tightened (with a log line). ``doctor`` fails what others can read."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.images import distinct_jpeg

from edgecv.cli import main
from edgecv.config import load_config
from edgecv.doctor import check_permissions
from edgecv.store import Store

LOOSE = 0o027  # group write, anything for others


def loose_paths(root: Path, skip: tuple[Path, ...] = ()) -> list[str]:
    """Every path under ``root`` (and root itself) that others may read or enter, or the group may write."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or any(path == s or s in path.parents for s in skip):
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & LOOSE:
            found.append(f"{path.relative_to(root)} {mode:04o}")
    return found


@pytest.fixture
def env(tmp_path, models_root):
    return {
        "EDGECV_DATA_DIR": str(tmp_path / "data"),
        "EDGECV_MODELS_DIRS": str(models_root),
        "EDGECV_DEFAULT_MODEL": "rect",
        "EDGECV_CONFIG": "",
    }


def invoke(env, *args):
    result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def write_images(folder: Path, n: int, start: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"p{i}.jpg"
        path.write_bytes(distinct_jpeg(i))
        path.chmod(0o644)
        paths.append(str(path))
    return paths


def test_run_leaves_nothing_open_to_other_users(env, tmp_path):
    os.umask(0o022)  # a typical login umask
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    invoke(env, "run", *write_images(tmp_path / "in", 2))
    CliRunner(env=env).invoke(main, ["run", str(bad)])  # exits 1: rejected, nothing left behind open
    data = tmp_path / "data"
    assert (data / "edgecv.db").is_file() and any((data / "spool").rglob("*.jpg"))
    assert loose_paths(data) == []
    assert stat.S_IMODE((data / "edgecv.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_agent_leaves_nothing_open_to_other_users(env, tmp_path):
    os.umask(0o022)
    inbox = tmp_path / "inbox"
    write_images(inbox, 2)
    (inbox / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    invoke(env, "agent", "--inbox", str(inbox), "--once")
    data = tmp_path / "data"
    assert any((data / "quarantine").iterdir())
    assert loose_paths(data) == []


@pytest.mark.process
def test_serve_leaves_nothing_open_to_other_users(env, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecv", "serve", "--port", "0"],
        env={**os.environ, **env, "EDGECV_API_TOKEN": ""},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    try:
        for line in proc.stderr:
            if "edgecv API for tenant" in line:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    data = tmp_path / "data"
    assert (data / "edgecv.db").is_file()
    assert loose_paths(data) == []


def test_a_data_dir_left_open_is_tightened_with_a_log_line(env, tmp_path, caplog):
    invoke(env, "run", *write_images(tmp_path / "in", 1))
    data = tmp_path / "data"
    data.chmod(0o755)
    (data / "edgecv.db").chmod(0o644)
    for path in (data / "spool").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o666)
    (data / "spool" / "keep-group.txt").write_text("x")
    (data / "spool" / "keep-group.txt").chmod(0o640)
    assert loose_paths(data)
    with caplog.at_level(logging.WARNING, logger="edgecv.paths"):
        invoke(env, "run", *write_images(tmp_path / "in", 1, start=5))
    assert loose_paths(data) == []
    assert stat.S_IMODE((data / "edgecv.db").stat().st_mode) == 0o640  # group bits kept, others cleared
    assert stat.S_IMODE((data / "spool" / "keep-group.txt").stat().st_mode) == 0o640
    assert any(
        "could be read or changed by other local users; tightened" in r.getMessage() for r in caplog.records
    )


def test_an_inbox_inside_the_data_dir_is_left_to_its_uploaders(tmp_path, models_root):
    data = tmp_path / "data"
    inbox = data / "inbox"
    write_images(inbox, 1)
    inbox.chmod(0o2770)
    cfg = load_config(overrides={"data_dir": data, "inbox": inbox, "models_dirs": [models_root]}, environ={})
    from edgecv.paths import secure_data_dir

    secure_data_dir(cfg.data_dir, skip=[cfg.inbox])
    assert stat.S_IMODE(inbox.stat().st_mode) == 0o2770
    assert loose_paths(data, skip=(inbox,)) == []


def test_the_job_log_is_created_private_without_the_cli(tmp_path):
    os.umask(0o022)
    store = Store(tmp_path / "d" / "edgecv.db")
    store.close()
    assert stat.S_IMODE((tmp_path / "d" / "edgecv.db").stat().st_mode) == 0o600


def test_service_install_leaves_config_and_inbox_closed_to_other_users(tmp_path):
    os.umask(0o022)
    root = tmp_path / "root"
    result = CliRunner().invoke(main, ["service", "install", "--root", str(root), "--inbox", "/srv/cams"])
    assert result.exit_code == 0, result.output
    etc = root / "etc/edgecv"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert stat.S_IMODE((etc / "edgecv.toml").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "srv/cams").stat().st_mode) == 0o2770
    # the unit file itself is 0644 like every systemd unit: it holds no secret (paths and the user name)
    unit = root / "etc/systemd/system/edgecv.service"
    # the inbox's group may write (uploaders are in the service group); others get nothing anywhere
    open_to_others = [p for p in [root, *root.rglob("*")] if p != unit and p.stat().st_mode & 0o007]
    assert open_to_others == []
    assert "chmod 0750 /etc/edgecv" in result.output and "-m 2770 /srv/cams" in result.output


def test_doctor_fails_what_other_users_can_read(tmp_path, models_root):
    data = tmp_path / "data"
    Store(data / "edgecv.db").close()
    toml = tmp_path / "edgecv.toml"
    toml.write_text('[sync]\napi_key = "k"\n')
    toml.chmod(0o644)
    cfg = load_config(toml, overrides={"data_dir": data, "models_dirs": [models_root]}, environ={})
    data.chmod(0o755)
    (data / "edgecv.db").chmod(0o644)
    lines = {c.detail: c for c in check_permissions(cfg)}
    assert [c.status for c in lines.values()] == ["FAIL"] * 3
    assert f"data dir {data} is readable by other local users (mode 0755)" in lines
    assert lines[
        f"job log {data / 'edgecv.db'} is readable by other local users (mode 0644)"
    ].hint.startswith(f"chmod 0600 {data / 'edgecv.db'}")
    assert f"config file {toml} is readable by other local users (mode 0644)" in lines
    data.chmod(0o700)
    (data / "edgecv.db").chmod(0o600)
    toml.chmod(0o600)
    assert [c.status for c in check_permissions(cfg)] == ["OK"]

"""One config from TOML + env + flags, validated once, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecv.config import load_config
from edgecv.errors import ConfigError


def test_precedence_flags_over_env_over_file(tmp_path):
    toml = tmp_path / "edgecv.toml"
    toml.write_text(
        'data_dir = "d"\nworkers = 2\ndevice = "gpu"\n[folders]\n"aisle-3" = "damage-assessment-v1"\n[sync]\nurl = "http://file"\n'
    )
    cfg = load_config(toml, environ={"EDGECV_WORKERS": "3", "EDGECV_SYNC_URL": "http://env"})
    assert cfg.data_dir == tmp_path / "d"  # relative to the file
    assert cfg.workers == 3 and cfg.device == "GPU"
    assert cfg.sync.url == "http://env"
    assert cfg.folders == {"aisle-3": "damage-assessment-v1"}
    cfg = load_config(toml, {"workers": 5, "device": None}, environ={"EDGECV_WORKERS": "3"})
    assert cfg.workers == 5 and cfg.device == "GPU"


def test_config_env_var_names_the_file(tmp_path):
    toml = tmp_path / "x.toml"
    toml.write_text('default_model = "building-inspection-v1"\n')
    assert load_config(environ={"EDGECV_CONFIG": str(toml)}).default_model == "building-inspection-v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = 0\n", "workers: must be at least 1"),
        ('device = "TPU"\n', "device: expected one of CPU, GPU, NPU, AUTO"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("[sync]\nurll = 1\n", "unknown key sync.'urll'"),
        ('workers = "many"\n', "workers: must be an integer, got 'many'"),
        ("workers = [\n", "not valid TOML"),
        ('[folders]\n"../x" = "m"\n', "folders.../x: must be a path relative to the inbox"),
        ('backlog_mode = "fast"\n', "backlog_mode: expected auto, lanes or queue"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    toml = tmp_path / "edgecv.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(toml, environ={})


def test_env_bool_and_list_coercion():
    cfg = load_config(environ={"EDGECV_POLL": "yes", "EDGECV_MODELS_DIRS": "/a,/b"})
    assert cfg.poll is True and cfg.models_dirs == [Path("/a"), Path("/b")]
    with pytest.raises(ConfigError, match="env: poll: must be true or false, got 'maybe'"):
        load_config(environ={"EDGECV_POLL": "maybe"})


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('workers = "two"\n', "workers", "workers: must be an integer, got 'two'"),
        ("workers = 2.5\n", "workers", "workers: must be an integer, got 2.5"),
        ('settle_s = "soon"\n', "settle_s", "settle_s: must be a number, got 'soon'"),
        ('preload = "sometimes"\n', "preload", "preload: must be true or false, got 'sometimes'"),
        ("default_model = [1]\n", "default_model", "default_model: must be a string, got [1]"),
        ("data_dir = 3\n", "data_dir", "data_dir: must be a path, got 3"),
        ("models_dirs = 3\n", "models_dirs", "models_dirs: must be a list, got 3"),
        ("folders = 3\n", "folders", "folders: must be a table, got 3"),
        ("[api]\nport = 'eighty'\n", "api.port", "api.port: must be an integer, got 'eighty'"),
        ("[sync]\ntimeout_s = true\n", "sync.timeout_s", "sync.timeout_s: must be a number, got True"),
    ],
)
def test_every_typed_key_says_what_it_expects(tmp_path, text, key, message):
    toml = tmp_path / "edgecv.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(toml, environ={})
    assert str(err.value) == f"{toml}: {message}"
    assert err.value.key == key and err.value.hint == message.split(": ")[1].split(", got")[0]


def test_env_values_are_typed_too():
    with pytest.raises(ConfigError, match="^env: workers: must be an integer, got 'two'$"):
        load_config(environ={"EDGECV_WORKERS": "two"})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_api_allowed_hosts_from_env_are_normalised_and_checked():
    cfg = load_config(environ={"EDGECV_API_ALLOWED_HOSTS": "Edge-12.local, 192.168.1.20,[fe80::1]"})
    assert cfg.api.allowed_hosts == ["edge-12.local", "192.168.1.20", "fe80::1"]
    assert load_config(environ={}).api.allowed_hosts == []
    for bad in ("http://edge.local", "edge.local:8470", "*.local", "edge.local/x"):
        with pytest.raises(ConfigError, match="api.allowed_hosts: .*no scheme, port, path or wildcard"):
            load_config(environ={"EDGECV_API_ALLOWED_HOSTS": bad})

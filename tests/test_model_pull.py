"""Bundles over HTTP: `edgecv models install URL` with resume, the upstream model catalogue, the pull.

Real signed bundles served by the reference upstream (sync/server.py) on loopback, with its faults
(truncate, lie, status, a stopped server); real SQLite and folders. After every failure the previous
version stays active and nothing half-installed remains.
"""

from __future__ import annotations

import tarfile
import threading
import time

import pytest
from click.testing import CliRunner
from helpers.runtime import acceptance_images, make_package
from helpers.sync_server import API_KEY, TENANT, add_faults, device_config, free_port, start_server

from edgecv.cli import main
from edgecv.errors import InstallInProgress, ModelBundleError, UpstreamUnreachable
from edgecv.model_pull import ModelPuller, version_key
from edgecv.runtime.bundle import generate_keys, pack
from edgecv.runtime.installed import find_package
from edgecv.runtime.lifecycle import downloads_dir, install, install_url, read_state, rollback, versions_dir
from edgecv.store import Store

NAME = "widget"


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys")


@pytest.fixture
def images(tmp_path):
    return acceptance_images(tmp_path / "acceptance-images")


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "upstream.db")
    yield srv
    srv.stop()


@pytest.fixture
def cfg(tmp_path, keys, server):
    cfg = device_config(tmp_path / "data", server.url)
    cfg.trusted_keys = [str(keys[1])]
    cfg.models_dirs = []
    cfg.min_free_mb = 0
    return cfg


def build(tmp_path, key, images, version: str):
    src = make_package(tmp_path / "src" / key.parent.name / version, NAME, version=version)
    out = tmp_path / f"{NAME}-{version}-{key.parent.name}.edgecv"
    pack(src, out, key, images)
    return out


def url_of(server, version: str) -> str:
    return f"{server.url}/v1/tenants/{TENANT}/models/{NAME}/{version}/bundle"


def publish(server, path):
    return server.publish(path, TENANT)


def assert_clean(cfg, active: str | None):
    """``active`` is the active version; no staging folder and no download is left behind."""
    folder = versions_dir(cfg, NAME)
    if folder.exists():
        assert [p.name for p in folder.iterdir() if p.name.startswith(".staging")] == []
    if active is None:
        assert not (cfg.user_models_dir / NAME).exists()
    else:
        assert find_package(cfg, NAME).version == active


def partials(cfg) -> list[str]:
    folder = downloads_dir(cfg)
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_install_url_downloads_verifies_and_installs(tmp_path, cfg, keys, images, server):
    entry = publish(server, build(tmp_path, keys[0], images, "1.0.0"))
    report = install_url(cfg, url_of(server, "1.0.0"), size=entry["size"], sha256=entry["sha256"])
    assert (report.version, report.previous, report.agreement) == ("1.0.0", None, 1.0)
    assert report.download["bytes"] == entry["size"] and report.download["sha256"] == entry["sha256"]
    assert report.download["resumedFrom"] == 0
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []


def test_a_truncated_download_is_resumed_with_range(tmp_path, cfg, keys, images, server):
    entry = publish(server, build(tmp_path, keys[0], images, "1.0.0"))
    cut = entry["size"] // 2
    add_faults(server, {"kind": "truncate", "bytes": cut, "path": "models"})
    report = install_url(cfg, url_of(server, "1.0.0"), size=entry["size"], sha256=entry["sha256"])
    assert report.version == "1.0.0"
    assert server.upstream.requests["models"] == 2  # the cut answer, then the rest by Range
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []


def test_server_down_mid_download_keeps_the_previous_version_and_resumes_later(
    tmp_path, cfg, keys, images, server
):
    install(cfg, build(tmp_path, keys[0], images, "1.0.0"))
    entry = publish(server, build(tmp_path, keys[0], images, "2.0.0"))
    cut = entry["size"] // 3
    # the first answer stops after `cut` bytes, then the server fails, then it is gone
    add_faults(
        server,
        {"kind": "truncate", "bytes": cut, "path": "models"},
        {"kind": "status", "status": 503, "count": 5, "path": "models"},
    )
    url = url_of(server, "2.0.0")
    with pytest.raises(UpstreamUnreachable, match=f"{cut} bytes are kept and the next attempt resumes them"):
        install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])
    assert_clean(cfg, "1.0.0")
    assert len(partials(cfg)) == 2  # <key>.partial + <key>.json
    partial = next(p for p in downloads_dir(cfg).iterdir() if p.suffix == ".partial")
    assert partial.stat().st_size == cut
    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    with pytest.raises(UpstreamUnreachable, match="ConnectionRefusedError"):
        install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])
    assert_clean(cfg, "1.0.0")
    assert partial.stat().st_size == cut
    again = start_server(tmp_path / "upstream.db", port=port)  # back, with the same catalogue
    try:
        report = install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])
    finally:
        again.stop()
    assert (report.version, report.previous, report.download["resumedFrom"]) == ("2.0.0", "1.0.0", cut)
    assert_clean(cfg, "2.0.0")
    assert partials(cfg) == []


def test_a_server_that_lies_about_the_length_is_refused(tmp_path, cfg, keys, images, server):
    install(cfg, build(tmp_path, keys[0], images, "1.0.0"))
    entry = publish(server, build(tmp_path, keys[0], images, "2.0.0"))
    url = url_of(server, "2.0.0")
    add_faults(server, {"kind": "lie", "bytes": 4096, "path": "models"})
    with pytest.raises(
        ModelBundleError, match=rf"says the bundle has {entry['size'] + 4096} bytes, the model "
    ):
        install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []
    # without a catalogue size: the first answer is cut, the resumed one states another total
    add_faults(
        server,
        {"kind": "truncate", "bytes": 1000, "path": "models"},
        {"kind": "lie", "bytes": 10, "path": "models"},
    )
    with pytest.raises(ModelBundleError, match="the stated size changed .* partial download was deleted"):
        install_url(cfg, url)
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []
    assert install_url(cfg, url).version == "2.0.0"  # an honest answer installs


def test_tampered_bytes_and_untrusted_signatures_are_refused(tmp_path, cfg, keys, images, server):
    install(cfg, build(tmp_path, keys[0], images, "1.0.0"))
    bundle = build(tmp_path, keys[0], images, "2.0.0")
    with tarfile.open(bundle) as tar:
        member = tar.getmember("package/model.onnx")
    data = bytearray(bundle.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF  # one bit of the weights, on the way
    bundle.write_bytes(bytes(data))
    publish(server, bundle)
    with pytest.raises(ModelBundleError, match="does not match its sha256 in the signed bundle.json"):
        install_url(cfg, url_of(server, "2.0.0"))
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []
    # the catalogue's sha256 of the whole file catches it before the bundle is opened
    with pytest.raises(ModelBundleError, match="the catalogue says 0{64}; the bytes were changed"):
        install_url(cfg, url_of(server, "2.0.0"), sha256="0" * 64)
    assert partials(cfg) == []
    other = generate_keys(tmp_path / "other")
    publish(server, build(tmp_path, other[0], images, "3.0.0"))
    with pytest.raises(ModelBundleError, match=r"signed by key [0-9a-f]{16}, which is not in trusted_keys"):
        install_url(cfg, url_of(server, "3.0.0"))
    assert_clean(cfg, "1.0.0")
    assert partials(cfg) == []
    with pytest.raises(ModelBundleError, match=r"HTTP 404: model_not_found"):
        install_url(cfg, url_of(server, "9.9.9"))
    with pytest.raises(ModelBundleError, match="is not an http\\(s\\) URL"):
        install_url(cfg, "ftp://example.invalid/x.edgecv")


def test_a_second_install_racing_the_first_is_refused_cleanly(tmp_path, cfg, keys, images, server):
    install(cfg, build(tmp_path, keys[0], images, "1.0.0"))
    entry = publish(server, build(tmp_path, keys[0], images, "2.0.0"))
    url = url_of(server, "2.0.0")
    add_faults(server, {"kind": "delay", "seconds": 1.0, "path": "models"})
    results: dict[str, object] = {}

    def first():
        try:
            results["first"] = install_url(cfg, url, size=entry["size"])
        except Exception as exc:  # recorded for the assertion below
            results["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    while server.upstream.requests.get("models", 0) < 1:  # the first one holds the download now
        time.sleep(0.01)
    with pytest.raises(InstallInProgress, match=f"another install of {url} is running"):
        install_url(cfg, url, size=entry["size"])
    thread.join(timeout=60)
    assert getattr(results["first"], "version", results["first"]) == "2.0.0"
    assert read_state(cfg, NAME) == {"current": "2.0.0", "previous": "1.0.0"}
    assert_clean(cfg, "2.0.0")
    assert partials(cfg) == []


def test_version_order():
    assert version_key("1.10.0") > version_key("1.9.2") > version_key("1.9")
    assert version_key("2.0.0") > version_key("2.0.0-rc1") or version_key("2.0.0-rc1") > version_key("2.0.0")


def test_the_pull_installs_newer_versions_reports_them_and_skips_refused_ones(
    tmp_path, cfg, keys, images, server
):
    first = build(tmp_path, keys[0], images, "1.0.0")
    install(cfg, first)
    cfg.model_pull.models = [NAME]
    publish(server, first)
    publish(server, build(tmp_path, keys[0], images, "1.1.0"))
    store = Store(cfg.db_path)
    puller = ModelPuller(store, cfg)
    try:
        outcome = puller.run_once()
        assert outcome["installed"] == [{"name": NAME, "version": "1.1.0", "previous": "1.0.0"}]
        assert outcome["reported"] is True
        assert_clean(cfg, "1.1.0")
        reported = server.upstream.device_models(TENANT, puller.device_id)
        by_name = {m["name"]: m for m in reported["models"]}
        assert by_name[NAME] == {"name": NAME, "version": "1.1.0", "previous": "1.0.0", "source": "bundle"}
        assert by_name["shelf-detection-v2"]["source"] == "package"  # shipped ones are reported too
        assert puller.run_once()["upToDate"] == [NAME]
        other = generate_keys(tmp_path / "other")
        publish(server, build(tmp_path, other[0], images, "1.2.0"))  # signed by a key not trusted here
        outcome = puller.run_once()
        assert (
            outcome["refused"][0]["version"] == "1.2.0"
            and "not in trusted_keys" in outcome["refused"][0]["error"]
        )
        assert_clean(cfg, "1.1.0")
        before = server.upstream.requests["models"]
        outcome = puller.run_once()  # refused once: not downloaded again (catalogue + report only)
        assert outcome["lines"] == ["widget 1.2.0: refused earlier; not fetched again"]
        assert outcome["upToDate"] == [NAME]
        assert server.upstream.requests["models"] == before + 2
        rollback(cfg, NAME)  # an operator went back to 1.0.0: the pull does not undo that
        before = server.upstream.requests["models"]
        outcome = puller.run_once()
        assert outcome["lines"] == [
            "widget 1.2.0: refused earlier; not fetched again",
            "widget 1.1.0: rolled back from here; not installed again (`edgecv models rollback widget` "
            "returns to it)",
        ]
        assert (
            server.upstream.requests["models"] == before + 2 and read_state(cfg, NAME)["current"] == "1.0.0"
        )
        server.stop()
        puller.transport.close()  # the stopped server's keep-alive handler would still answer
        outcome = puller.run_once()
        assert outcome["reachable"] is False and "not reachable" in outcome["lines"][0]
        assert_clean(cfg, "1.0.0")
    finally:
        puller.transport.close()
        store.close()


def test_the_cli_install_url_and_pull(tmp_path, keys, images, server):
    publish(server, build(tmp_path, keys[0], images, "1.0.0"))
    env = {
        "EDGECV_DATA_DIR": str(tmp_path / "data"),
        "EDGECV_CONFIG": "",
        "EDGECV_TRUSTED_KEYS": str(keys[1]),
        "EDGECV_TENANT_ID": TENANT,
        "EDGECV_SYNC_URL": server.url,
        "EDGECV_SYNC_API_KEY": API_KEY,
        "EDGECV_MODEL_PULL_MODELS": NAME,
    }
    runner = CliRunner(env=env)
    result = runner.invoke(main, ["models", "install", url_of(server, "1.0.0")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "installed widget 1.0.0" in result.output
    publish(server, build(tmp_path, keys[0], images, "1.0.1"))
    result = runner.invoke(main, ["models", "pull"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "widget: installed 1.0.1 (previous: 1.0.0)"
    result = runner.invoke(main, ["models", "install", f"{server.url}/nothing/here"], catch_exceptions=False)
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "HTTP 404" in result.output
    result = runner.invoke(main, ["models", "install", str(tmp_path)], catch_exceptions=False)
    assert (
        result.exit_code == 1
        and result.output.strip()
        == f"Error: {tmp_path} is a folder; give the bundle file (NAME-VERSION.edgecv) or a URL"
    )
    port = free_port()
    result = runner.invoke(
        main, ["models", "install", f"http://127.0.0.1:{port}/x.edgecv"], catch_exceptions=False
    )
    assert result.exit_code == 1 and "Error: " in result.output and "Traceback" not in result.output


def test_the_agent_pulls_when_enabled(tmp_path, config, keys, images, server):
    from helpers.agent import AgentThread, wait_until

    publish(server, build(tmp_path, keys[0], images, "1.0.0"))
    config.trusted_keys = [str(keys[1])]
    config.tenant_id = TENANT
    config.sync.url, config.sync.api_key = server.url, API_KEY
    config.model_pull.enabled = True
    config.model_pull.models = [NAME]
    with AgentThread(config) as running:
        wait_until(lambda: read_state(config, NAME)["current"] == "1.0.0", timeout=60)
        reported = wait_until(
            lambda: server.upstream.device_models(TENANT, running.store.get_setting("device_id") or "-"),
            timeout=60,
        )
    assert {m["name"]: m["version"] for m in reported["models"]}[NAME] == "1.0.0"


FULL_DISK = """
import resource, signal, sys
from edgecv.config import load_config
from edgecv.errors import EdgecvError
from edgecv.runtime.lifecycle import install_url
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
cfg = load_config(overrides={"data_dir": sys.argv[1], "trusted_keys": [sys.argv[2]], "min_free_mb": 0}, environ={})
try:
    install_url(cfg, sys.argv[3])
except EdgecvError as exc:
    print(exc)
"""


def test_no_room_for_the_download_keeps_what_was_written_for_later(tmp_path, cfg, keys, images, server):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk, as in test_model_bundles."""
    import subprocess
    import sys

    install(cfg, build(tmp_path, keys[0], images, "1.0.0"))
    entry = publish(server, build(tmp_path, keys[0], images, "2.0.0"))
    url = url_of(server, "2.0.0")
    cfg.sync.api_key = None  # the subprocess has no sync settings: serve without a key
    server.httpd.settings.api_keys = set()
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(cfg.data_dir), str(keys[1]), url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "cannot write the download into" in out and "free space, then try again" in out
    assert_clean(cfg, "1.0.0")
    partial = next(p for p in downloads_dir(cfg).iterdir() if p.suffix == ".partial")
    written = partial.stat().st_size
    assert 0 < written <= 50_000 < entry["size"]
    report = install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])  # space is back
    assert report.version == "2.0.0" and report.download["resumedFrom"] == written
    assert partials(cfg) == []

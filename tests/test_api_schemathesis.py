"""The contract fuzzer, end to end: schemathesis' own CLI (`st run`) against the running agent's API and
against the reference upstream server (`python -m sync.server`) with `sync/openapi.yaml`.

Every operation, every check (`--checks all`), all four phases (examples, coverage, fuzzing, stateful:
the links in the documents chain upload → observation → job and webhook create → get → delete), a
bounded number of examples and a fixed seed. Any finding fails the test, and so does any warning the
configuration files name (`schemathesis.toml`, `sync/schemathesis.toml`): an operation the fuzzer
cannot reach (every request 404) is a failure, not a note. docs/api.md ("Contract test") says how to
run the same by hand.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from helpers.agent import AgentThread
from helpers.api import live_api

from edgecv.api.document import EXAMPLE_BMP_16
from edgecv.catalog.service import add_sku
from edgecv.ingest import ingest_bytes
from edgecv.store import Store

pytestmark = pytest.mark.schemathesis

ROOT = Path(__file__).resolve().parents[1]
ST = Path(sys.executable).with_name("st")  # the CLI of the schemathesis installed with the test extra
MAX_EXAMPLES = 25  # per operation and phase
SEED = 20261202
TOKEN = "fuzz-token-0123456789abcdef"


def run_schemathesis(
    location: str, *args: str, config_file: Path, report: Path
) -> subprocess.CompletedProcess:
    command = [
        str(ST),
        "--config-file",
        str(config_file),
        "--no-color",
        "run",
        location,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=report.parent)


def summary(result: subprocess.CompletedProcess) -> tuple[int, int]:
    """(operations tested, test cases generated) from the CLI's summary."""
    tested = re.search(r"Tested:\s+(\d+)", result.stdout)
    cases = re.search(r"(\d+) generated", result.stdout)
    assert tested and cases, result.stdout[-3000:]
    return int(tested.group(1)), int(cases.group(1))


def assert_clean(result: subprocess.CompletedProcess, operations: int) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}", output), f"phase {phase} did not run and pass:\n{output[-6000:]}"
    tested, cases = summary(result)
    assert tested == operations, output[-3000:]
    assert cases > 10 * operations  # a bounded run, yet one that generated cases for every operation
    print(f"schemathesis: {tested} operations, {cases} generated cases, no findings")


@pytest.mark.parametrize("token", [None, TOKEN], ids=["loopback-no-token", "with-token"])
def test_agent_api_passes_the_contract_fuzzer(config, tmp_path, token):
    config.api.enabled = True
    config.api.port = 0
    config.api.token = token
    # a SKU for the catalogue operations to find (schemathesis.toml names it): identifiers that a client
    # chooses are supplied from outside the run, as for any fuzzer
    add_sku(config, "example-sku", [("front.bmp", EXAMPLE_BMP_16)], {"name": "Example pack"})
    # and an observation: the stateful phase reaches GET /observations/{id} through links only now and
    # then (with 21 operations and a bounded budget, a seed-dependent share); a known id keeps it honest
    store = Store(config.db_path)
    try:
        seeded = ingest_bytes(store, config, EXAMPLE_BMP_16, name="seed.bmp").observation.id
    finally:
        store.close()
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(
        (ROOT / "schemathesis.toml").read_text()
        + f'\n[[operations]]\ninclude-operation-id = "getObservation"\nparameters = {{ id = "{seeded}" }}\n'
    )
    with AgentThread(config) as running:
        url = running.agent.services[0].url
        auth = ["-H", f"Authorization: Bearer {token}"] if token else []
        result = run_schemathesis(
            f"{url}/openapi.json",
            *auth,
            config_file=settings,
            report=tmp_path / "st.ndjson",
        )
    assert_clean(result, operations=21)


def _example_bundle(tmp_path: Path) -> Path:
    """A signed bundle named example-model 1.0.0 for the model catalogue operations."""
    import cv2
    from helpers.runtime import make_package, red_rectangle_image

    from edgecv.runtime.bundle import generate_keys, pack

    key, _ = generate_keys(tmp_path / "keys")
    ok, png = cv2.imencode(".png", red_rectangle_image(160, 120, (10, 10, 60, 50)))
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "0.png").write_bytes(png.tobytes())
    out = tmp_path / "example-model-1.0.0.edgecv"
    pack(
        make_package(tmp_path / "src", "example-model", version="1.0.0"),
        out,
        key,
        [tmp_path / "img" / "0.png"],
    )
    return out


def test_reference_upstream_passes_the_contract_fuzzer(tmp_path):
    key = "fuzz-key-0123456789"
    bundle = _example_bundle(tmp_path)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.server",
            "--port",
            "0",
            "--db",
            str(tmp_path / "up.db"),
            "--api-key",
            key,
            "--bundle",
            str(bundle),
            "--bundle-tenant",
            "acme",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = server.stdout.readline()
        match = re.match(r"listening on (http://\S+)", line)
        assert match, f"sync.server did not start: {line!r}"
        requests.put(
            f"{match.group(1)}/v1/tenants/acme/devices/dev_example/models",
            json={"models": [{"name": "example-model", "version": "1.0.0"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).raise_for_status()
        result = run_schemathesis(
            str(ROOT / "sync" / "openapi.yaml"),
            "--url",
            match.group(1),
            "-H",
            f"Authorization: Bearer {key}",
            config_file=ROOT / "sync" / "schemathesis.toml",
            report=tmp_path / "st.ndjson",
        )
    finally:
        server.terminate()
        server.wait(10)
    assert_clean(result, operations=12)


def test_the_served_document_describes_this_agent(config, tmp_path):
    """What the fuzzer relies on, stated plainly: tenant example, optional vs required auth, links."""
    store = Store(config.db_path)
    with live_api(config, store) as server:
        doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    store.close()
    upload = doc["paths"]["/v1/tenants/{tenantId}/observations"]["post"]
    assert upload["security"] == [{}, {"HTTPBearer": []}]  # token-less loopback: auth optional
    assert doc["paths"]["/metrics"]["get"]["security"] == [{}, {"HTTPBearer": []}]
    tenant = next(p for p in upload["parameters"] if p["name"] == "tenantId")
    assert tenant["example"] == config.tenant_id
    assert upload["requestBody"]["content"]["multipart/form-data"]["example"]["model"] == "rect"
    assert set(upload["responses"]["201"]["links"]) == {"getObservation", "getObservationImage", "startJob"}
    webhook = doc["paths"]["/v1/tenants/{tenantId}/webhooks"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in webhook.values()} == {"getWebhook", "deleteWebhook"}
    json.dumps(doc)  # plain JSON all the way down

    config.api.token = TOKEN
    store = Store(config.db_path)
    with live_api(config, store) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        doc = requests.get(f"{server.url}/openapi.json", headers=headers, timeout=10).json()
    store.close()
    assert doc["paths"]["/metrics"]["get"]["security"] == [{"HTTPBearer": []}]

"""Property-based fuzzing (hypothesis) of what reaches edgecv from outside: sidecars, config files and
environment, model manifests (model.json), upload metadata and raw multipart bodies.

Each target feeds generated input through the real code path (real files, a real SQLite job log, the
local API over loopback HTTP) and checks the one property every edge must keep: either it works, or it
answers with edgecv's own error (RejectedFile → quarantine, ConfigError, ModelPackageError, a 4xx with
a JSON message). Any other exception, a 500, a traceback in a response, or a response that cannot be
read back is a failure, printed with the smallest input hypothesis finds.

    .venv/bin/python scripts/fuzz.py                      # every target, 20,000 cases each (100,000 in all)
    .venv/bin/python scripts/fuzz.py --cases 500 --target sidecar

The test suite runs the same targets with a few hundred cases each (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecv.api import Metrics, make_server
from edgecv.config import load_config
from edgecv.errors import ConfigError, ModelPackageError, RejectedFile
from edgecv.ingest import find_sidecar, ingest_file, read_sidecar
from edgecv.runtime.package import load_package
from edgecv.store import Store

# -- generated values ----------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# JSON text as people and broken programs write it: valid (NaN and Infinity included, as Python writes
# them), nested deep, cut short, or any text at all
json_texts = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(json.dumps),
    st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    json_values.map(lambda v: json.dumps(v)[:-1]),
    st.text(max_size=200),
)
raw_bytes = st.binary(max_size=300)


def _jpeg(i: int = 0) -> bytes:
    img = np.full((48, 64, 3), (i * 37) % 255, np.uint8)
    cv2.rectangle(img, (10, 10), (40, 30), (0, 0, 255), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()


# -- targets ---------------------------------------------------------------------------------------------


class Target(NamedTuple):
    name: str
    strategy: st.SearchStrategy
    check: Callable[[object], None]


def _strict_json(value: object) -> None:
    """What the API serves must be standard JSON (no NaN, no Infinity)."""
    json.dumps(value, allow_nan=False)


@contextlib.contextmanager
def sidecar_target(root: Path, models_dir: Path) -> Iterator[Target]:
    config = load_config(
        overrides={
            "data_dir": root / "data",
            "inbox": root / "inbox",
            "models_dirs": [models_dir],
            "default_model": "rect",
        },
        environ={},
    )
    config.inbox.mkdir(parents=True)
    store = Store(config.db_path)
    image_bytes = _jpeg()
    counter = [0]

    def check(payload: object) -> None:
        counter[0] += 1
        image = config.inbox / f"img{counter[0]}.jpg"
        sidecar = config.inbox / f"img{counter[0]}.json"
        image.write_bytes(image_bytes)
        if isinstance(payload, bytes):
            sidecar.write_bytes(payload)
        else:
            sidecar.write_text(payload, encoding="utf-8", errors="surrogatepass")
        try:
            metadata = read_sidecar(sidecar)
        except RejectedFile:
            metadata = None
        else:
            _strict_json(metadata)
        result = ingest_file(store, config, image, config.inbox)  # quarantines what it refuses
        if metadata is not None and result is not None:
            _strict_json(store.get_observation(result.observation.id).metadata)
        assert not image.exists() and find_sidecar(image) is None, "files left in the inbox"

    try:
        yield Target("sidecar", st.one_of(json_texts, raw_bytes), check)
    finally:
        store.close()


CONFIG_KEYS = [
    "data_dir",
    "inbox",
    "default_model",
    "device",
    "backend",
    "workers",
    "max_attempts",
    "lease_s",
    "min_free_mb",
    "folders",
    "planograms",
    "sync",
    "api",
    "webhooks",
    "domain_threshold",
]
toml_scalar = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "inf")),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(json.dumps),
    st.lists(st.text(max_size=8).map(json.dumps), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.just("{}"),
    st.just("{ a = 1 }"),
)
toml_texts = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(CONFIG_KEYS + ["port", "url", "token", "x.y"]), toml_scalar), max_size=6
    ).map(lambda kv: "".join(f"{k} = {v}\n" for k, v in kv)),
    st.lists(
        st.tuples(
            st.sampled_from(["sync", "api", "webhooks", "folders", "planograms", "junk"]),
            st.sampled_from(["url", "port", "host", "token", "endpoints", "secret", "a/b", "timeout_s"]),
            toml_scalar,
        ),
        max_size=5,
    ).map(
        lambda rows: "".join(
            f"[{s}]\n{k} = {v}\n" if "/" not in k else f'[{s}]\n"{k}" = {v}\n' for s, k, v in rows
        )
    ),
    st.text(max_size=200),
)
env_names = st.sampled_from(
    [
        "EDGECV_WORKERS",
        "EDGECV_API_PORT",
        "EDGECV_SYNC_URL",
        "EDGECV_LEASE_S",
        "EDGECV_FOLDERS",
        "EDGECV_MIN_FREE_MB",
        "EDGECV_DEVICE",
        "EDGECV_WEBHOOKS_ENDPOINTS",
        "EDGECV_MODELS_DIRS",
    ]
)


@contextlib.contextmanager
def config_target(root: Path, models_dir: Path) -> Iterator[Target]:
    path = root / "edgecv.toml"

    def check(case: tuple[str, dict[str, str]]) -> None:
        text, env = case
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(ConfigError):
            load_config(path, environ=env)

    strategy = st.tuples(
        toml_texts,
        st.dictionaries(env_names, st.text(max_size=20).filter(lambda s: "\x00" not in s), max_size=2),
    )
    yield Target("config", strategy, check)


VALID_MANIFEST = {
    "name": "fz",
    "version": "1",
    "task": "detect",
    "pipeline": "generic",
    "labels": ["a"],
    "input": {"width": 64, "height": 64},
    "weights": [{"backend": "onnx", "precision": "fp32", "files": {"model": "model.onnx"}, "sha256": {}}],
}
MANIFEST_KEYS = [
    *VALID_MANIFEST,
    "default",
    "thresholds",
    "evaluation",
    "pipelineOptions",
    "domain",
    "description",
]


def _mutated_manifest(draw_base: dict, changes: dict) -> dict:
    out = json.loads(json.dumps(draw_base))
    out.update(changes)
    return out


manifests = st.one_of(
    st.dictionaries(st.sampled_from(MANIFEST_KEYS), json_values, max_size=4).map(
        lambda ch: json.dumps(_mutated_manifest(VALID_MANIFEST, ch))
    ),
    st.dictionaries(st.sampled_from(MANIFEST_KEYS), json_values, max_size=8).map(json.dumps),
    json_texts,
)


@contextlib.contextmanager
def manifest_target(root: Path, models_dir: Path) -> Iterator[Target]:
    pkg = root / "fz"
    pkg.mkdir()
    (pkg / "model.onnx").write_bytes(b"not really onnx")

    def check(text: str) -> None:
        (pkg / "model.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(ModelPackageError):
            load_package(pkg, verify=False)

    yield Target("manifest", manifests, check)


@contextlib.contextmanager
def _live_api(root: Path, models_dir: Path):
    config = load_config(
        overrides={"data_dir": root / "api-data", "models_dirs": [models_dir], "default_model": "rect"},
        environ={},
    )
    store = Store(config.db_path)
    server = make_server(config, store, metrics=Metrics(), port=0)
    server.start()
    try:
        yield config, server.url, requests.Session()
    finally:
        server.stop()
        store.close()


def _check_response(resp: requests.Response, session: requests.Session, url: str, tenant: str) -> None:
    assert resp.status_code < 500, f"HTTP {resp.status_code}: {resp.text[:300]}"
    assert "Traceback" not in resp.text, resp.text[:300]
    body = resp.json()
    if resp.status_code >= 400:
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
        return
    again = session.get(f"{url}/v1/tenants/{tenant}/observations/{body['id']}", timeout=30)
    assert again.status_code == 200, (
        f"reading the observation back: HTTP {again.status_code}: {again.text[:300]}"
    )


@contextlib.contextmanager
def metadata_target(root: Path, models_dir: Path) -> Iterator[Target]:
    with _live_api(root, models_dir) as (config, url, session):
        counter = [0]

        def check(metadata: str) -> None:
            counter[0] += 1
            resp = session.post(
                f"{url}/v1/tenants/{config.tenant_id}/observations",
                files={"file": ("x.jpg", _jpeg(counter[0]), "image/jpeg")},
                data={"metadata": metadata},
                timeout=30,
            )
            _check_response(resp, session, url, config.tenant_id)

        yield Target("metadata", json_texts.filter(lambda s: "\x00" not in s and not _surrogates(s)), check)


def _surrogates(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
multipart_parts = st.lists(
    st.tuples(
        st.sampled_from(
            [
                'form-data; name="file"; filename="a.jpg"',
                'form-data; name="metadata"',
                'form-data; name="model"',
                'form-data; name="file"',
                "form-data",
                "attachment",
            ]
        ),
        st.one_of(header_text, st.just("image/jpeg"), st.just("text/plain"), st.none()),
        st.one_of(raw_bytes, st.just(_jpeg()), json_texts.map(lambda s: s.encode("utf-8", "surrogatepass"))),
    ),
    max_size=4,
)
multipart_bodies = st.tuples(
    st.sampled_from(["XyZ", "----b", "a" * 70, "", 'q"uote']),
    multipart_parts,
    st.sampled_from(["\r\n", "\n", ""]),
    st.booleans(),
    raw_bytes,
)


def _multipart(case) -> tuple[str, bytes]:
    boundary, parts, eol, close, junk = case
    nl = eol.encode()
    out = b""
    for disposition, ctype, payload in parts:
        out += b"--" + boundary.encode() + nl + f"Content-Disposition: {disposition}".encode() + nl
        if ctype is not None:
            out += f"Content-Type: {ctype}".encode() + nl
        out += nl + payload + nl
    if close:
        out += b"--" + boundary.encode() + b"--" + nl
    return f"multipart/form-data; boundary={boundary}", out + junk


@contextlib.contextmanager
def multipart_target(root: Path, models_dir: Path) -> Iterator[Target]:
    with _live_api(root, models_dir) as (config, url, session):

        def check(case) -> None:
            ctype, body = _multipart(case)
            resp = session.post(
                f"{url}/v1/tenants/{config.tenant_id}/observations",
                data=body,
                headers={"Content-Type": ctype},
                timeout=30,
            )
            _check_response(resp, session, url, config.tenant_id)

        yield Target("multipart", multipart_bodies, check)


TARGETS = {
    "sidecar": sidecar_target,
    "config": config_target,
    "manifest": manifest_target,
    "metadata": metadata_target,
    "multipart": multipart_target,
}


def run_target(name: str, cases: int, models_dir: Path, *, seed: int | None = None) -> int:
    """Run ``cases`` generated inputs through target ``name``; raises on the first failure."""
    with tempfile.TemporaryDirectory(prefix=f"edgecv-fuzz-{name}-") as tmp:
        with TARGETS[name](Path(tmp), models_dir) as target:
            count = [0]

            @settings(
                max_examples=cases,
                deadline=None,
                database=None,
                derandomize=seed is None,
                suppress_health_check=list(HealthCheck),
                print_blob=True,
            )
            @given(target.strategy)
            def prop(value):
                count[0] += 1
                target.check(value)

            if seed is not None:
                from hypothesis import seed as with_seed

                prop = with_seed(seed)(prop)
            prop()
            return count[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20_000, help="cases per target (default 20,000)")
    parser.add_argument("--target", choices=sorted(TARGETS), action="append", help="repeatable; default all")
    parser.add_argument("--seed", type=int, help="a random seed (default: random)")
    parser.add_argument(
        "--models", type=Path, help="a models folder with a 'rect' package (default: shipped)"
    )
    args = parser.parse_args()
    models = args.models or Path(__file__).resolve().parents[1] / "models"
    seed = args.seed if args.seed is not None else int(time.time())
    total = 0
    for name in args.target or list(TARGETS):
        start = time.perf_counter()
        n = run_target(name, args.cases, models, seed=seed)
        total += n
        print(f"{name:10s} {n:7d} cases  {time.perf_counter() - start:7.1f} s  no failure", flush=True)
    print(f"total      {total:7d} cases (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

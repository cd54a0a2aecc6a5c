#!/usr/bin/env python3
"""Time to pack, verify, unpack and gate a signed bundle of each shipped model, and the tampering cases.

    python scripts/bench_bundle.py [--model shelf-detection-v2] [--images 8] [--backend auto]

For each model: renders ``--images`` synthetic images of its domain (scripts/datagen, 1280x720) as the
acceptance set, packs a signed bundle, installs it into a fresh data dir (signature, sha256 of every
file, package load, the acceptance check on this CPU including INT8 vs FP32) and prints each stage's
seconds; then flips one byte in the middle of every member in turn (and truncates the file) and counts
how many of those bundles an install accepts (target: 0). Then the same bundle over HTTP on loopback
(`edgecv models install URL`, from the reference upstream in sync/): once whole, once cut at half by
the server and resumed with Range. Target from issue 22: install, verify and gate a 15 MB bundle in
<= 10 s. Prints figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # sync/ (the reference upstream)

from generate import render_one  # noqa: E402

from edgecv.config import load_config  # noqa: E402
from edgecv.errors import EdgecvError  # noqa: E402
from edgecv.runtime.bundle import generate_keys, pack  # noqa: E402
from edgecv.runtime.lifecycle import install, install_url  # noqa: E402
from edgecv.runtime.package import bundled_models_dir  # noqa: E402
from edgecv.threads import cpu_flags_text as cpu_flags  # noqa: E402
from sync.server import Fault, ReferenceServer  # noqa: E402

DOMAINS = {"shelf-detection-v2": "shelves", "building-inspection-v1": "facades", "damage-assessment-v1": "damage"}


def tamper_cases(bundle: Path, work: Path) -> list[tuple[str, Path]]:
    """One bundle per member with a byte flipped in its middle, plus the file cut at two thirds."""
    data = bundle.read_bytes()
    cases = []
    with tarfile.open(bundle) as tar:
        members = [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.size]
    for i, (name, offset, size) in enumerate(members):
        changed = bytearray(data)
        changed[offset + size // 2] ^= 0x01
        path = work / f"tampered-{i}.edgecv"
        path.write_bytes(bytes(changed))
        cases.append((f"byte flipped in {name}", path))
    cut = work / "truncated.edgecv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    cases.append(("truncated at 2/3", cut))
    return cases


def bench(name: str, images: int, backend: str, root: Path) -> None:
    work = root / name
    img_dir = work / "images"
    img_dir.mkdir(parents=True)
    for i in range(images):
        stem, jpeg, *_ = render_one(DOMAINS[name], 7, i, 1280, 720)
        (img_dir / f"{stem}.jpg").write_bytes(jpeg)
    key, pub = generate_keys(work / "keys")
    bundle = work / f"{name}.edgecv"
    t0 = time.perf_counter()
    pack(bundled_models_dir() / name, bundle, key, sorted(img_dir.iterdir()))
    packed = time.perf_counter() - t0
    cfg = load_config(
        overrides={"data_dir": work / "data", "trusted_keys": [str(pub)], "backend": backend, "api.enabled": False},
        environ={},
    )
    report = install(cfg, bundle)
    s = report.seconds
    pa = report.precision_agreement
    print(
        f"{name}: bundle {bundle.stat().st_size / 1e6:.1f} MB, {report.images} images; pack {packed:.2f} s; "
        f"install {s['total']:.2f} s = signature {s['verify']:.3f} + unpack/sha256/load {s['unpack']:.2f} "
        f"+ gate {s['gate']:.2f} ({report.backend}/{report.precision}; agreement {report.agreement:.2f}, "
        f"worst class {report.worst_class_agreement:.2f}"
        + (f"; INT8 vs FP32 {pa['int8VsFp32']:.2f}, worst class {pa['worstClass']:.2f}" if pa else "")
        + ")"
    )
    accepted = 0
    cases = tamper_cases(bundle, work)
    for what, path in cases:
        fresh = load_config(
            overrides={"data_dir": work / f"data-{path.stem}", "trusted_keys": [str(pub)], "api.enabled": False},
            environ={},
        )
        try:
            install(fresh, path)
            accepted += 1
            print(f"  ACCEPTED: {what}")
        except EdgecvError:
            pass
    print(f"  tampering: {accepted} of {len(cases)} changed bundles accepted")
    over_http(name, bundle, pub, backend, work)


def over_http(name: str, bundle: Path, pub: Path, backend: str, work: Path) -> None:
    """``install_url`` from the reference upstream on loopback: whole, then cut at half and resumed."""
    with ReferenceServer() as server:
        entry = server.publish(bundle)
        url = f"{server.url}/v1/tenants/local/models/{entry['name']}/{entry['version']}/bundle"
        for label, faults in (("whole", []), ("cut at half, resumed", [Fault("truncate", path="models", bytes=entry["size"] // 2)])):
            server.faults.add(faults)
            cfg = load_config(
                overrides={"data_dir": work / f"data-http-{len(faults)}", "trusted_keys": [str(pub)],
                           "backend": backend, "api.enabled": False},
                environ={},
            )  # fmt: skip
            t0 = time.perf_counter()
            report = install_url(cfg, url, size=entry["size"], sha256=entry["sha256"])
            total = time.perf_counter() - t0
            print(
                f"  over HTTP ({label}): {total:.2f} s = download {report.seconds['download']:.2f} s "
                f"({entry['size'] / 1e6 / max(report.seconds['download'], 1e-9):.0f} MB/s) + install "
                f"{report.seconds['total']:.2f} s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", choices=sorted(DOMAINS), help="default: every shipped model")
    ap.add_argument("--images", type=int, default=8, help="acceptance images per bundle (at most 16)")
    ap.add_argument("--backend", default="auto", choices=["auto", "openvino", "onnx"])
    args = ap.parse_args()
    print(f"CPU flags: {cpu_flags()}")
    with tempfile.TemporaryDirectory(prefix="edgecv-bench-bundle-") as tmp:
        for name in args.model or sorted(DOMAINS):
            bench(name, args.images, args.backend, Path(tmp))


if __name__ == "__main__":
    main()

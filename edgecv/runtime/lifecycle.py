"""Installing a signed model bundle: verify, unpack, gate on this device, switch atomically, roll back.

Layout under the user models dir (``<data dir>/models``, searched before the shipped packages)::

    models/<name>                       symlink -> .versions/<name>/<version>/<name> (the active version)
    models/.versions/<name>/<version>/  <name>/ (the package) and acceptance/ (images, expected.json)
    models/.versions/<name>/state.json  {"current": "<version>", "previous": "<version>" | null}
    models/.install.lock                held (flock) while an install or rollback runs

An install unpacks into a staging folder next to the versions, checks every sha256, loads the package
(manifest + weights), checks it against the bundle's manifest, opens it on this device's backend (which
refuses an input or output shape the manifest does not describe) and runs the acceptance check. Only
then is the staging folder renamed to its version and the symlink replaced (``os.replace``: a reader
sees the old version or the new one, never neither). The last two versions are kept.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.config import Config
from edgecv.detections import Detections, box_iou
from edgecv.errors import AcceptanceFailed, EdgecvError, InstallInProgress, ModelBundleError
from edgecv.imageio import decode_file
from edgecv.paths import ensure_writable_dir
from edgecv.runtime.bundle import EXPECTED, Bundle, extract_bundle, open_bundle, trusted_public_keys
from edgecv.runtime.download import discard, download, download_lock
from edgecv.runtime.package import ModelPackage, load_package

log = logging.getLogger(__name__)

VERSIONS = ".versions"
LOCK = ".install.lock"
STATE = "state.json"


@dataclass
class InstallReport:
    name: str
    version: str
    previous: str | None
    key_id: str
    backend: str = ""
    precision: str = ""
    agreement: float = 0.0
    worst_class_agreement: float = 0.0
    precision_agreement: dict = field(default_factory=dict)
    images: int = 0
    seconds: dict = field(default_factory=dict)
    download: dict = field(default_factory=dict)  # install_url: url, bytes, sha256, resumedFrom


@contextmanager
def install_lock(models_dir: Path):
    """Hold the models dir's install lock, or raise InstallInProgress at once (never wait)."""
    ensure_writable_dir(models_dir, "models dir")
    fd = os.open(models_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallInProgress(
                f"another model install or rollback is running in {models_dir}; wait for it to finish "
                "and try again"
            ) from None
        yield
    finally:
        os.close(fd)


def versions_dir(config: Config, name: str) -> Path:
    return config.user_models_dir / VERSIONS / name


def read_state(config: Config, name: str) -> dict:
    """``{"current", "previous"}``: the version the symlink points at (the truth, whatever a crash left
    in the state file) and the kept previous one recorded beside it."""
    current = None
    try:
        target = Path(os.readlink(config.user_models_dir / name))
        if target.parts[:2] == (VERSIONS, name) and len(target.parts) == 4:
            current = target.parts[2]
    except OSError:
        pass
    try:
        state = json.loads((versions_dir(config, name) / STATE).read_text(encoding="utf-8"))
        previous = state.get("previous") if state.get("current") == current else state.get("current")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous == current or not (versions_dir(config, name) / str(previous) / name).is_dir():
        previous = None
    return {"current": current, "previous": previous}


def _write_state(config: Config, name: str, current: str | None, previous: str | None) -> None:
    folder = versions_dir(config, name)
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps({"current": current, "previous": previous}) + "\n", encoding="utf-8")
    os.replace(tmp, folder / STATE)


def _switch(config: Config, name: str, version: str) -> None:
    """Point ``models/<name>`` at ``version`` in one ``os.replace`` of a symlink."""
    link = config.user_models_dir / name
    tmp = config.user_models_dir / f".{name}.switch"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(VERSIONS) / name / version / name, tmp)
    os.replace(tmp, link)


def _check_slot(config: Config, name: str) -> None:
    for folder in config.models_dirs:
        if (Path(folder) / name).is_dir():
            raise ModelBundleError(
                f"models_dirs folder {folder} holds {name} and is searched before the installed bundles; "
                "an install would not take effect: remove it from there (or from models_dirs) first"
            )
    link = config.user_models_dir / name
    if link.exists() and not link.is_symlink():
        raise ModelBundleError(
            f"{link} is a package folder not installed from a bundle (e.g. `edgecv models add`); move "
            "it out of the models dir first"
        )


def install(config: Config, path: Path) -> InstallReport:
    """``edgecv models install FILE``: the whole install; on any refusal nothing changes."""
    started = time.perf_counter()
    trusted = trusted_public_keys(config.trusted_keys)
    models_dir = config.user_models_dir
    with install_lock(models_dir):
        bundle = open_bundle(Path(path), trusted)
        name, version = bundle.name, bundle.version
        _check_slot(config, name)
        state = read_state(config, name)
        folder = versions_dir(config, name)
        if version in (state["current"], state["previous"]):
            which = "active" if version == state["current"] else "kept as the previous version"
            raise ModelBundleError(
                f"{name} {version} is already installed ({which}); "
                + ("nothing to do" if which == "active" else f"use `edgecv models rollback {name}`")
            )
        folder.mkdir(parents=True, exist_ok=True)
        _prune(config, name, keep={state["current"], state["previous"]}, staging=True)  # a crash's leftovers
        report = InstallReport(name, version, state["current"], bundle.key_id)
        report.seconds["verify"] = time.perf_counter() - started
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            t0 = time.perf_counter()
            extract_bundle(bundle, staging)
            package = load_package(staging / name, verify=True)
            _check_against_bundle(bundle, package)
            report.seconds["unpack"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            acceptance_check(config, package, staging / "acceptance", bundle.manifest["acceptance"], report)
            report.seconds["gate"] = time.perf_counter() - t0
            os.rename(staging, folder / version)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelBundleError(
                f"cannot unpack {bundle.path} into {folder}: {exc.strerror or exc}; free space or fix the "
                "models dir, then install again"
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _switch(config, name, version)
        _write_state(config, name, version, state["current"])
        _prune(config, name, keep={version, state["current"]})
        report.seconds["total"] = time.perf_counter() - started
        log.info("installed %s %s (previous: %s)", name, version, state["current"])
        return report


def downloads_dir(config: Config) -> Path:
    return config.data_dir / "downloads"


def install_url(
    config: Config,
    url: str,
    *,
    size: int | None = None,
    sha256: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> InstallReport:
    """``edgecv models install URL``: download with resume (:mod:`edgecv.runtime.download`), then
    :func:`install` exactly as for a file. A download that stops early keeps its partial file for the
    next attempt (UpstreamUnreachable); a download whose bytes are refused (or a bundle the install
    refuses) is deleted. ``size`` / ``sha256``: what the model catalogue says, checked when given."""
    folder = downloads_dir(config)
    ensure_writable_dir(folder, "downloads dir")
    if headers is None:
        headers = _sync_auth(config, url)
    started = time.perf_counter()
    with download_lock(folder, url):
        got = download(
            url,
            folder,
            size=size,
            sha256=sha256,
            headers=headers,
            timeout_s=timeout_s,
            min_free_bytes=config.min_free_mb * 1024 * 1024,
        )
        fetched = time.perf_counter() - started
        try:
            report = install(config, got.path)
        except InstallInProgress:  # a file install holds the models dir: the complete download is kept
            raise
        except ModelBundleError as exc:  # name the URL, not the download's file name
            discard(folder, url)
            raise type(exc)(str(exc).replace(str(got.path), url)) from None
        except BaseException:
            discard(folder, url)
            raise
        discard(folder, url)
    report.download = {"url": url, "bytes": got.size, "sha256": got.sha256, "resumedFrom": got.resumed_from}
    report.seconds["download"] = fetched
    return report


def _sync_auth(config: Config, url: str) -> dict[str, str]:
    """The sync API key, for a URL on the sync server's host only (never sent anywhere else)."""
    from urllib.parse import urlsplit

    if config.sync.url and config.sync.api_key and urlsplit(url).netloc == urlsplit(config.sync.url).netloc:
        return {"Authorization": f"Bearer {config.sync.api_key}"}
    return {}


def rollback(config: Config, name: str) -> tuple[str, str]:
    """``edgecv models rollback NAME``: switch to the kept previous version; returns (from, to)."""
    with install_lock(config.user_models_dir):
        state = read_state(config, name)
        current, previous = state["current"], state["previous"]
        if current is None:
            raise ModelBundleError(f"{name} was not installed from a bundle here; nothing to roll back")
        if previous is None or not (versions_dir(config, name) / previous / name).is_dir():
            raise ModelBundleError(f"no previous version of {name} is kept here ({current} is the only one)")
        _switch(config, name, previous)
        _write_state(config, name, previous, current)
        log.info("rolled %s back from %s to %s", name, current, previous)
        return current, previous


def _prune(config: Config, name: str, keep: set, *, staging: bool = False) -> None:
    """Delete version folders not in ``keep`` (and, with ``staging``, staging folders: only under the lock,
    where any staging folder is an interrupted install's)."""
    for child in versions_dir(config, name).iterdir():
        if child.is_dir() and child.name not in keep and (staging or not child.name.startswith(".staging-")):
            shutil.rmtree(child, ignore_errors=True)


def _check_against_bundle(bundle: Bundle, package: ModelPackage) -> None:
    model = bundle.manifest["model"]
    size = {"width": package.input.width, "height": package.input.height}
    for what, theirs, ours in (
        ("version", model["version"], package.version),
        ("labels", model.get("labels"), list(package.labels)),
        ("input", model.get("input"), size),
    ):
        if theirs != ours:
            raise ModelBundleError(
                f"{bundle.path}: the package's {what} {ours!r} does not match the bundle manifest's "
                f"{theirs!r}; pack the bundle again from the package"
            )


# -- the acceptance check -------------------------------------------------------------------------------


MIN_CLASS_BOXES = 3  # a class with fewer boxes (both sides together) is too rare to judge on its own


def agreement(expected: list[Detections], got: list[Detections], iou: float = 0.5) -> tuple[float, float]:
    """Detection agreement over a set of images: ``(overall, worst class)``, each 2·matched /
    (expected + got), a match being the same class at IoU ≥ ``iou`` (greedy by confidence, each box
    once). The worst class counts classes with at least ``MIN_CLASS_BOXES`` boxes, so a model that lost
    one class fails even when the others carry the overall figure. 1.0 when there is nothing to compare."""
    matched: dict[int, int] = {}
    total: dict[int, int] = {}
    for a, b in zip(expected, got, strict=True):
        for c in np.concatenate([a.class_id, b.class_id]).tolist():
            total[c] = total.get(c, 0) + 1
        if not len(a) or not len(b):
            continue
        order = (-b.confidence).argsort()
        ious = box_iou(b.xyxy[order][:, None], a.xyxy[None])
        ious = ious * (b.class_id[order][:, None] == a.class_id[None])
        used: set[int] = set()
        for k, row in enumerate(ious):
            for j in row.argsort()[::-1]:
                if row[j] < iou:
                    break
                if j not in used:
                    used.add(j)
                    c = int(b.class_id[order][k])
                    matched[c] = matched.get(c, 0) + 1
                    break
    n = sum(total.values())
    overall = 1.0 if n == 0 else 2.0 * sum(matched.values()) / n
    per_class = [2.0 * matched.get(c, 0) / t for c, t in total.items() if t >= MIN_CLASS_BOXES]
    return overall, min(per_class, default=overall)


def _expected(per_image: list) -> list[Detections]:
    return [
        Detections([d["box"] for d in dets], [d["confidence"] for d in dets], [d["classId"] for d in dets])
        if dets
        else Detections.empty()
        for dets in per_image
    ]


def acceptance_check(
    config: Config, package: ModelPackage, folder: Path, settings: dict, report: InstallReport
) -> None:
    """Run the package on this device over the acceptance images: the weights it will use must agree
    with the same weights' detections in the bundle, and INT8 with FP32 where the package has both.
    Raises AcceptanceFailed."""
    from edgecv.runtime.detector import Detector, resolve_weights

    backend, weights = resolve_weights(package, config.backend, config.precision)
    try:
        data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        images = [decode_file(folder.parent / e["file"]) for e in data["images"]]
        expected = _expected(data["detections"][weights.key])
        if len(expected) != len(images):
            raise ValueError(f"{len(expected)} detection lists for {len(images)} images")
    except KeyError as exc:
        raise ModelBundleError(f"{EXPECTED} has no {exc} entry; pack the bundle again") from None
    except (OSError, ValueError, TypeError, EdgecvError) as exc:
        raise ModelBundleError(f"{EXPECTED} cannot be used: {exc}") from None
    iou = float(settings.get("iou", 0.5))
    class_min = float(settings.get("minClassAgreement", 0.5))

    def run(precision: str) -> tuple[list[Detections], object]:
        detector = Detector.open(package, backend=backend, precision=precision, device=config.device)
        return [detector.detect(image) for image in images], detector

    got, detector = run(weights.precision)
    report.backend, report.precision, report.images = detector.backend, detector.precision, len(images)
    report.agreement, report.worst_class_agreement = agreement(expected, got, iou)
    minimum = float(settings.get("minAgreement", 0.9))
    if report.agreement < minimum or report.worst_class_agreement < class_min:
        raise AcceptanceFailed(
            f"acceptance check failed on this device: {package.name} {package.version} "
            f"({detector.backend}/{detector.precision}) agrees {report.agreement:.2f} with the bundle's "
            f"expected detections on {len(images)} image(s) (worst class "
            f"{report.worst_class_agreement:.2f}), needs {minimum:.2f} (worst class {class_min:.2f}); "
            "not installed"
        )
    have = {w.precision for w in package.weights if w.backend == weights.backend}
    if {"int8", "fp32"} <= have:
        other = "fp32" if weights.precision == "int8" else "int8"
        other_got, _ = run(other)
        int8, fp32 = (got, other_got) if weights.precision == "int8" else (other_got, got)
        value, worst = agreement(fp32, int8, iou)
        report.precision_agreement = {"int8VsFp32": value, "worstClass": worst}
        minimum = float(settings.get("minPrecisionAgreement", 0.8))
        if value < minimum or worst < class_min:
            raise AcceptanceFailed(
                f"acceptance check failed on this device: {package.name} {package.version} INT8 agrees "
                f"{value:.2f} with its FP32 weights ({detector.backend}; worst class {worst:.2f}), needs "
                f"{minimum:.2f} (worst class {class_min:.2f}): the quantized model is broken; not installed"
            )

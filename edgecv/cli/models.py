"""``edgecv models list|show|add|train|eval|keygen|pack|install|rollback|pull``."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

import click

from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import EdgecvError
from edgecv.runtime.installed import find_package, installed_models


@main.group()
def models() -> None:
    """Installed model packages."""


def _backends(pkg) -> str:
    return ", ".join(f"{w.backend}/{w.precision}" for w in pkg.weights)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the packages.")
@pass_app
def list_models(app: AppContext, as_json: bool) -> None:
    """Installed packages with version, backends/precisions and whether their sha256 verify."""
    cfg = app.config()
    rows = []
    for name, pkg in sorted(installed_models(cfg).items()):
        try:
            find_package(cfg, name, verify=True)
            verified = "sha256 ok"
        except EdgecvError as exc:
            verified = f"BROKEN: {exc}"
        rows.append((pkg, verified))
    if as_json:
        click.echo(json.dumps([{**p.to_dict(), "verified": v == "sha256 ok"} for p, v in rows], indent=2))
        return
    if not rows:
        click.echo("no model packages installed")
    for pkg, verified in rows:
        click.echo(f"{pkg.name:<26} {pkg.version:<8} {pkg.pipeline:<9} {_backends(pkg):<45} {verified}")


@models.command("show")
@click.argument("name")
@pass_app
def show_model(app: AppContext, name: str) -> None:
    """The package manifest summary, sha256-verified."""
    try:
        pkg = find_package(app.config(), name, verify=True)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(json.dumps({**pkg.to_dict(), "path": str(pkg.path), "verified": True}, indent=2))


@models.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Model name jobs will use (e.g. custom).")
@click.option(
    "--description",
    default="Custom-trained model",
    show_default=True,
    help="Description stored in the package manifest.",
)
@click.option("--force", is_flag=True, help="Replace an existing package of that name.")
@pass_app
def add_model(app: AppContext, path: Path, name: str, description: str, force: bool) -> None:
    """Install an Ultralytics export as a model package: PATH is an .onnx file (`yolo export format=onnx`)
    or an OpenVINO IR folder (`yolo export format=openvino`: model.xml, .bin and metadata.yaml).

    Class names and input size are read from the export's metadata. A .pt checkpoint must be exported
    first.
    """
    from edgecv.runtime.custom import add_ultralytics_onnx

    cfg = app.config()
    try:
        pkg = add_ultralytics_onnx(path, name, cfg.user_models_dir, description=description, force=force)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(
        f"installed {pkg.name} ({len(pkg.labels)} labels, input {pkg.input.width}x{pkg.input.height}) in {pkg.path}"
    )


def _size(_ctx, _param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    w, _, h = value.lower().partition("x")
    try:
        return int(w), int(h or w)
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 640x384, got {value!r}") from None


@models.command("train")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Your labelled photos: a YOLO folder (data.yaml + images/ + labels/, optional train/val split) "
    "or a COCO folder (annotations.json + images).",
)
@click.option("--name", required=True, help="Name of the new model package (jobs use it as their model).")
@click.option(
    "--from",
    "base",
    default="shelf-detection-v2",
    show_default=True,
    help="Package to fine-tune (shelf-detection-v2, building-inspection-v1, damage-assessment-v1, one "
    "trained here) or scratch. Classes it lacks get a new head.",
)
@click.option("--minutes", type=click.FloatRange(min=0.01), default=30.0, show_default=True,
              help="Training time budget; the learning-rate schedule fits it.")  # fmt: skip
@click.option(
    "--imgsz", callback=_size, help="Network input WxH, multiples of 32 (default: the base model's)."
)
@click.option("--resume", is_flag=True, help="Continue the stopped run of NAME (Ctrl-C keeps a checkpoint).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for training (default: the usable cores; 1 on a CPU shared with other jobs).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an installed package NAME, or drop its stopped run.")
@pass_app
def train_model(
    app: AppContext,
    data_dir: Path,
    name: str,
    base: str,
    minutes: float,
    imgsz: tuple[int, int] | None,
    resume: bool,
    threads: int | None,
    force: bool,
) -> None:
    """Train a detector on your own labelled photos and install it as package NAME.

    The data is checked first (errors stop here with a report; warnings are printed); it is split into
    train/val when it has no split. Training fine-tunes --from for --minutes (an NVIDIA GPU is used when
    torch sees one), showing the validation mAP50 and the time left. Ctrl-C stops with a checkpoint;
    --resume continues. Then the model is exported (ONNX, OpenVINO FP32 and INT8 calibrated on your
    images), evaluated on the validation split, given a model card and installed. Needs PyTorch:
    pip install torch==2.13.0 and pip install 'edgecv[train]'."""
    from edgecv.threads import usable_cores
    from edgecv.training.custom import TrainRequest, train_custom
    from edgecv.training.dataset import check_dataset

    cfg = app.config()
    try:
        check = check_dataset(data_dir)
        for line in check.report():
            click.echo(line, err=line.startswith(("error", "warning")))
        check.raise_if_errors()
        request = TrainRequest(data_dir, name, base, minutes, imgsz, threads or usable_cores(), resume, force)
        with _ctrl_c() as stop:
            result = train_custom(request, cfg, check, progress=_ProgressLine(), stop=stop, stage=click.echo)
    except EdgecvError as exc:
        raise fail(exc) from None
    if result.stopped:
        s = result.summary
        click.echo(
            f"stopped at step {s['step']} ({s['train_minutes']} of {minutes:g} min); checkpoint {result.checkpoint}"
        )
        click.echo(
            f"continue with: edgecv models train --data {data_dir} --name {name} --from {base} --resume"
        )
        raise SystemExit(130)
    r = result.report
    click.echo(
        f"{name}: validation mAP50 {r['int8']['mAP50']:.3f}, mAP50-95 {r['int8']['mAP50_95']:.3f} (INT8); "
        f"FP32 {r['fp32']['mAP50']:.3f} / {r['fp32']['mAP50_95']:.3f}; "
        f"INT8 loss {r['int8LossMAP50_95Points']:.2f} mAP50-95 points"
    )
    for label, ap in r["int8"]["perClass"].items():
        click.echo(f"  {label}: AP50 {ap['AP50']:.3f}, AP50-95 {ap['AP50_95']:.3f}")
    click.echo(
        f"jobs can use it now: edgecv run IMAGE --model {name}; model card: {result.package.path / 'MODEL_CARD.md'}"
    )


class _ProgressLine:
    """One line, redrawn in place on a terminal (a new line every 10 % otherwise): progress, step, loss,
    the latest validation mAP50 and the time left."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.shown = -1.0

    def __call__(self, p: dict) -> None:
        frac = min(1.0, p["elapsed"] / p["budget"])
        if (self.tty and frac - self.shown < 0.002) or (not self.tty and frac - self.shown < 0.1):
            return
        self.shown = frac
        left = max(0, int(p["budget"] - p["elapsed"]))
        val = f"val mAP50 {p['val']['mAP50']:.3f}" if p["val"] else "val mAP50 –"
        bar = "#" * int(frac * 20)
        line = f"[{bar:<20}] {100 * frac:3.0f}% step {p['step']} loss {p['loss']:.2f} {val} ETA {left // 60}:{left % 60:02d}"
        click.echo(f"\r{line}" if self.tty else line, nl=not self.tty)
        if self.tty and frac >= 1.0:
            click.echo()


@contextlib.contextmanager
def _ctrl_c():
    """During training the first Ctrl-C asks the loop to stop after its step and save a checkpoint; a
    second one interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(_sig, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nstopping after this step (Ctrl-C again to abort without a checkpoint)", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@models.command("eval")
@click.argument("name")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A labelled folder: images/ with labels/*.txt (YOLO) or annotations.json (COCO; category names "
    "matched to the model's labels).",
)
@click.option(
    "--backend",
    type=click.Choice(["openvino", "onnx"]),
    default="openvino",
    show_default=True,
    help="Runtime to evaluate on.",
)
@click.option(
    "--precision",
    type=click.Choice(["int8", "fp32"]),
    default=None,
    help="Weights to evaluate (default: the package default).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def eval_model(
    app: AppContext, name: str, data_dir: Path, backend: str, precision: str | None, as_json: bool
) -> None:
    """COCO mAP50 and mAP50-95 of an installed model on a labelled dataset (YOLO or COCO folder).

    Boxes of classes the model does not have are reported and left out; a folder without any usable
    label is an error."""
    from edgecv.evaluation import evaluate_package

    try:
        pkg = find_package(app.config(), name)
        report = evaluate_package(pkg, data_dir, backend=backend, precision=precision)
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{name} ({backend}/{precision or pkg.default_precision}) on {data_dir} ({report['format']}):")
    click.echo(f"  images: {report['images']}, boxes: {report['instances']}")
    click.echo(f"  mAP50: {report['mAP50']:.4f}")
    click.echo(f"  mAP50-95: {report['mAP50_95']:.4f}")
    at = report["atThreshold"]
    click.echo(f"  at conf {at['conf']}: precision {at['precision']:.4f}, recall {at['recall']:.4f}")
    for label, count in report.get("unknownCategories", {}).items():
        click.echo(f"  skipped {count} boxes of {label!r}: not a label of {name}")


@models.command("keygen")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for edgecv-signing.key and edgecv-signing.pub (default: <data dir>/keys).",
)
@click.option("--force", is_flag=True, help="Replace an existing key pair in that folder.")
@pass_app
def keygen(app: AppContext, out_dir: Path | None, force: bool) -> None:
    """Make an Ed25519 key pair for signing model bundles (`edgecv models pack --key`).

    Keep the .key file on the packing machine; list the .pub file in trusted_keys on the devices."""
    from edgecv.runtime.bundle import generate_keys

    out_dir = out_dir or app.config().data_dir / "keys"
    try:
        key, pub = generate_keys(out_dir, force=force)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"signing key: {key} (keep it private)")
    click.echo(f"public key:  {pub} (add it to trusted_keys on the devices)")


@models.command("pack")
@click.argument("name")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Bundle file to write (default: NAME-VERSION.edgecv in the current folder).",
)  # fmt: skip
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Signing key from `edgecv models keygen` (default: <data dir>/keys/edgecv-signing.key).",
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="A folder of a few typical images (at most 16): the acceptance set each device checks.",
)
@pass_app
def pack_model(app: AppContext, name: str, out: Path | None, key: Path | None, images: Path) -> None:
    """Pack an installed model into one signed bundle file with its acceptance set.

    The package's sha256 are verified, the package is run on the images (its default weights) and the
    detections it gives are stored as the expected ones; everything is signed with the key."""
    from edgecv.runtime.bundle import KEY_FILE, image_files, pack

    cfg = app.config()
    try:
        pkg = find_package(cfg, name, verify=True)
        out = out or Path(f"{pkg.name}-{pkg.version}.edgecv")
        manifest = pack(pkg.path, out, key or cfg.data_dir / "keys" / KEY_FILE, image_files(images))
    except EdgecvError as exc:
        raise fail(exc) from None
    size = out.stat().st_size / 1e6
    click.echo(f"packed {pkg.name} {pkg.version} ({len(manifest['files'])} files, {size:.1f} MB) into {out}")


@models.command("install")
@click.argument("source", metavar="FILE|URL")
@click.option("--json", "as_json", is_flag=True, help="Print the install report as JSON.")
@pass_app
def install_model(app: AppContext, source: str, as_json: bool) -> None:
    """Verify a signed bundle, check it on this device and switch to it.

    FILE|URL: a bundle file, or an http(s) URL it is downloaded from (resumed where an earlier attempt
    stopped; the partial file lives in <data dir>/downloads). The signature must come from a key in
    trusted_keys; every file's sha256 is checked; the package must match its manifest and pass the
    acceptance check on this device's backend (detections agree with the bundle's; INT8 with FP32).
    Only then does NAME point at the new version. The previous version is kept for
    `edgecv models rollback NAME`."""
    from dataclasses import asdict

    from edgecv.runtime.lifecycle import install, install_url

    if not source.startswith(("http://", "https://")) and Path(source).is_dir():
        raise click.ClickException(f"{source} is a folder; give the bundle file (NAME-VERSION.edgecv) or a URL")
    try:
        if source.startswith(("http://", "https://")):
            report = install_url(app.config(), source)
        else:
            report = install(app.config(), Path(source))
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    gate = (
        f"agreement {report.agreement:.2f} on {report.images} image(s) ({report.backend}/{report.precision})"
    )
    if report.precision_agreement:
        gate += f", INT8 vs FP32 {report.precision_agreement['int8VsFp32']:.2f}"
    click.echo(f"installed {report.name} {report.version} (signed by {report.key_id}; {gate})")
    click.echo(f"previous version: {report.previous or 'none'} (`edgecv models rollback {report.name}`)")


@models.command("rollback")
@click.argument("name")
@pass_app
def rollback_model(app: AppContext, name: str) -> None:
    """Switch NAME back to the previous installed version (the last two are kept)."""
    from edgecv.runtime.lifecycle import rollback

    try:
        old, new = rollback(app.config(), name)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"{name}: {old} -> {new} (run rollback again to return to {old})")


@models.command("pull")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_app
def pull_models(app: AppContext, as_json: bool) -> None:
    """Once now: install newer versions from the upstream model catalogue and report what runs here.

    Uses [sync] url and api_key; [model_pull] models says which models to follow (default: the ones
    installed here). Each bundle is verified, gated and switched as by `edgecv models install`."""
    from edgecv.model_pull import pull_once

    try:
        outcome = pull_once(app.config())
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
        return
    for line in outcome["lines"]:
        click.echo(line)

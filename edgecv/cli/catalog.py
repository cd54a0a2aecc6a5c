"""``edgecv catalog add|list|show|remove|check|match``: the product catalogue that names shelf products."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecv.catalog import service
from edgecv.cli import AppContext, fail, main, pass_app
from edgecv.errors import EdgecvError


@main.group()
def catalog() -> None:
    """The product catalogue: catalog/<SKU id>/*.jpg|png (+ sku.json). Shelf products are named by matching
    them against its reference images; a running agent picks up changes within seconds."""


def _read(paths: tuple[Path, ...]) -> list[tuple[str, bytes]]:
    out = []
    for p in paths:
        try:
            out.append((p.name, p.read_bytes()))
        except OSError as exc:
            raise click.ClickException(f"cannot read {p}: {exc.strerror}") from None
    return out


@catalog.command("add")
@click.argument("sku")
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Product name shown as objectName (default: the SKU id).")
@click.option(
    "--price", type=float, help="Expected shelf price: tags reading otherwise are reported mispriced."
)
@click.option("--currency", help="Currency of --price, e.g. EUR.")
@click.option("--gtin", help="GTIN/EAN of the product.")
@click.option("--size", "size_", help="Pack size text, e.g. 330ml.")
@pass_app
def add_cmd(app: AppContext, sku: str, images, name, price, currency, gtin, size_) -> None:
    """Add reference IMAGES (pack shots or crops from shelf photos) to SKU (created if new), and/or set its
    details. Every image is checked before anything is written."""
    cfg = app.config()
    if price is not None and price < 0:
        raise click.BadParameter("must not be negative", param_hint="--price")
    meta = {"name": name, "expectedPrice": price, "currency": currency, "gtin": gtin, "size": size_}
    try:
        entry = service.add_sku(cfg, sku, _read(images), {k: v for k, v in meta.items() if v is not None})
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"{entry.id}: {entry.name}, {len(entry.images)} reference image(s) in {entry.folder}")


@catalog.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (version, skus).")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """The SKUs with their names, reference counts and expected prices."""
    cfg = app.config()
    index, skus = service.list_skus(cfg)
    if as_json:
        click.echo(json.dumps({"folder": str(cfg.catalog_dir), **index.describe(), "data": skus}, indent=2))
        return
    if not skus:
        click.echo(
            f"no SKUs in {cfg.catalog_dir} (products keep the detector's labels); `edgecv catalog add`"
        )
        return
    click.echo(f"{len(skus)} SKU(s) in {cfg.catalog_dir}, version {index.version}")
    for s in skus:
        price = s.get("expectedPrice")
        price_text = f"{price} {s.get('currency', '')}".strip() if price is not None else "-"
        click.echo(f"{s['id']:<28} {s['name']:<32} {len(s['images']):>3} image(s)  {price_text}")
    if index.problems:
        click.echo(f"{len(index.problems)} problem(s): run `edgecv catalog check`")


@catalog.command("show")
@click.argument("sku")
@pass_app
def show_cmd(app: AppContext, sku: str) -> None:
    """One SKU's details and reference images, as JSON."""
    try:
        click.echo(json.dumps(service.show_sku(app.config(), sku), indent=2, ensure_ascii=False))
    except EdgecvError as exc:
        raise fail(exc) from None


@catalog.command("remove")
@click.argument("sku")
@pass_app
def remove_cmd(app: AppContext, sku: str) -> None:
    """Remove SKU and its reference images."""
    try:
        service.remove_sku(app.config(), sku)
    except EdgecvError as exc:
        raise fail(exc) from None
    click.echo(f"removed {sku}")


@catalog.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON array.")
@pass_app
def check_cmd(app: AppContext, as_json: bool) -> None:
    """Unusable images, malformed sku.json, duplicates and SKUs that look alike. Exit 1 when any image or
    file cannot be used (warnings alone exit 0)."""
    cfg = app.config()
    index, problems = service.check_catalog(cfg)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2))
    else:
        click.echo(f"{len(index)} usable SKU(s) in {cfg.catalog_dir}, version {index.version}")
        for p in problems:
            click.echo(f"{p.severity.upper():<7} {p}")
        if not problems:
            click.echo("OK      no problems found")
    if any(p.severity == "error" for p in problems):
        raise SystemExit(1)


@catalog.command("match")
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--top", default=5, show_default=True, type=click.IntRange(1, 100), help="Candidates per image."
)
@click.option("--model", help="Detector that finds the product (default: default_model).")
@click.option("--json", "as_json", is_flag=True, help="One JSON entry per image, in argument order.")
@pass_app
def match_cmd(app: AppContext, images, top: int, model: str | None, as_json: bool) -> None:
    """The catalogue SKUs most like the product in each photo (a phone photo of one pack, or a shelf
    photo: its largest product), best first, or "unknown product" when none is alike enough."""
    cfg = app.config()
    try:
        results = service.match_files(cfg, _read(images), top=top, model=model)
    except EdgecvError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if "error" in r:
                click.echo(f"{r['file']}: error: {r['error']['message']}")
                continue
            cands = ", ".join(f"{c['sku']} {c['score']:.2f}" for c in r["candidates"])
            click.echo(
                f"{r['file']}: {r['name']} (score {r['score']:.2f}; {r['source']}) candidates: {cands}"
            )
    if any("error" in r for r in results):
        raise SystemExit(1)

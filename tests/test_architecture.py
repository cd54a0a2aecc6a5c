"""docs/architecture.md stays true: every module has a row, and the import rules hold in the source.

Everything here parses source with ``ast``; nothing is imported or run, so it cannot flake.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edgecv"
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> list[str]:
    """Every module as its path under edgecv/, e.g. ``work/pool.py``."""
    return sorted(p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py"))


def _dotted(rel: str) -> str:
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["edgecv", *parts])


@cache
def _tree(rel: str) -> ast.Module:
    return ast.parse((PKG / rel).read_text(encoding="utf-8"), filename=rel)


def _imports(rel: str) -> set[str]:
    """Absolute names of everything ``rel`` imports: ``import x.y``, ``from x import y`` (as ``x`` and
    ``x.y``), relative imports resolved, and ``importlib.import_module("...")`` with a literal name."""
    here = _dotted(rel).split(".")
    package = here if rel.endswith("__init__.py") else here[:-1]
    names: set[str] = set()
    for node in ast.walk(_tree(rel)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def _hits(names: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == b or n.startswith(b + ".") for b in banned))


def _under(prefix: str) -> list[str]:
    return [m for m in _modules() if m.startswith(prefix)]


# -- (a) the map names every module, and only modules that exist --------------------------------------


def _table_modules() -> set[str]:
    rows = re.findall(r"^\| `([^`]+\.py)` \|", DOC.read_text(encoding="utf-8"), flags=re.M)
    return set(rows)


def test_every_module_has_a_row_in_the_architecture_map():
    missing = sorted(set(_modules()) - _table_modules())
    assert not missing, f"add a row to docs/architecture.md for: {missing}"


def test_the_map_names_no_module_that_does_not_exist():
    stale = sorted(_table_modules() - set(_modules()))
    assert not stale, f"docs/architecture.md has rows for modules that are gone: {stale}"


def test_readme_links_the_map_and_its_layout_names_every_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/architecture.md" in readme
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    names = {m.split("/")[0] + "/" if "/" in m else m for m in _modules()} - {"__init__.py", "__main__.py"}
    assert sorted(n for n in names if not re.search(rf"(?<![\w/]){re.escape(n)}", layout)) == []


# -- (b) the rules -------------------------------------------------------------------------------------

SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA|CREATE TABLE)\b")


@pytest.mark.parametrize("rel", [m for m in _modules() if not m.startswith("store/")])
def test_no_sql_outside_store(rel):
    assert _hits(_imports(rel), ("sqlite3",)) == []
    sql = [
        n.value[:40]
        for n in ast.walk(_tree(rel))
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.match(n.value)
    ]
    assert sql == [], f"{rel} holds SQL text; put it in edgecv/store/"


VISION_MAY_IMPORT = ("edgecv.detections", "edgecv.errors", "edgecv.vision")
NO_IO = (
    "os", "pathlib", "shutil", "tempfile", "io", "socket", "http", "urllib", "requests", "sqlite3",
    "subprocess", "fastapi", "uvicorn", "watchdog", "openvino", "onnxruntime",
)  # fmt: skip
CV2_IO = {"imread", "imwrite", "imdecode", "imencode", "VideoCapture"}


@pytest.mark.parametrize("rel", _under("vision/"))
def test_vision_is_pure(rel):
    names = _imports(rel)
    edgecv = sorted(n for n in names if n.split(".")[0] == "edgecv" and not _hits({n}, VISION_MAY_IMPORT))
    assert edgecv == [], f"{rel}: vision/ may import only {VISION_MAY_IMPORT}"
    assert _hits(names, NO_IO) == []
    calls = [
        ast.unparse(n.func)
        for n in ast.walk(_tree(rel))
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id == "open")
            or (isinstance(n.func, ast.Attribute) and n.func.attr in CV2_IO)
        )
    ]
    assert calls == [], f"{rel} does I/O: {calls}"


# off the job path: spool downscaling for the disk budget, offline evaluation of labelled folders
READ_IMAGES_THEMSELVES = {"imageio.py", "upstream/images.py", "evaluation.py"}


@pytest.mark.parametrize("rel", [m for m in _modules() if m not in READ_IMAGES_THEMSELVES])
def test_one_image_decoder(rel):
    """Images are decoded by edgecv.imageio (and two named modules off the job path)."""
    calls = [
        ast.unparse(n.func)
        for n in ast.walk(_tree(rel))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in ("imread", "imdecode")
    ]
    assert calls == [], f"{rel} decodes images itself; use edgecv.imageio"


@pytest.mark.parametrize("rel", [m for m in _modules() if m != "runtime/decode.py"])
def test_one_model_output_decoder(rel):
    """A model's raw output becomes Detections (box decoding + NMS) in runtime/decode.py only."""
    nms = [
        ast.unparse(n.func)
        for n in ast.walk(_tree(rel))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr.startswith("NMSBoxes")
    ]
    assert nms == []


FORBIDDEN = {
    "runtime/": ("edgecv.store", "edgecv.api", "edgecv.work", "edgecv.upstream", "edgecv.vision",
                 "edgecv.ingest", "edgecv.watcher", "edgecv.cli"),
    "upstream/": ("edgecv.work", "edgecv.runtime", "edgecv.vision", "edgecv.api", "edgecv.cli"),
    "work/": ("edgecv.api", "edgecv.upstream", "edgecv.ingest", "edgecv.watcher", "edgecv.cli"),
    "training/": ("edgecv.store", "edgecv.api", "edgecv.work", "edgecv.upstream", "edgecv.vision",
                  "edgecv.ingest", "edgecv.watcher", "edgecv.cli"),
}  # fmt: skip
STORE_MAY_IMPORT = ("edgecv.errors", "edgecv.ids", "edgecv.paths", "edgecv.records", "edgecv.store")


@pytest.mark.parametrize("rel", [m for m in _modules() if any(m.startswith(p) for p in FORBIDDEN)])
def test_layers_import_downwards_only(rel):
    banned = next(v for p, v in FORBIDDEN.items() if rel.startswith(p))
    assert _hits(_imports(rel), banned) == []


@pytest.mark.parametrize("rel", _under("store/"))
def test_store_imports_only_the_foundation(rel):
    edgecv = {n for n in _imports(rel) if n.split(".")[0] == "edgecv"}
    assert sorted(n for n in edgecv if not _hits({n}, STORE_MAY_IMPORT)) == []


def test_the_sdk_stands_alone():
    edgecv = {n for n in _imports("client.py") if n.split(".")[0] == "edgecv"}
    assert edgecv, "client.py imports edgecv.errors and edgecv.signing"
    assert sorted(n for n in edgecv if not _hits({n}, ("edgecv.errors", "edgecv.signing"))) == []


@pytest.mark.parametrize("rel", [m for m in _modules() if not m.startswith("cli/") and m != "__main__.py"])
def test_only_the_cli_knows_click_and_cli(rel):
    assert _hits(_imports(rel), ("click", "edgecv.cli")) == []


@pytest.mark.parametrize("rel", [m for m in _modules() if not m.startswith(("cli/", "training/"))])
def test_only_the_cli_imports_training(rel):
    """torch is an optional extra: nothing the agent runs may reach edgecv.training."""
    assert _hits(_imports(rel), ("edgecv.training",)) == []


def test_the_checks_see_imports():
    """The parser finds what the rules look for (a rule over nothing would always pass)."""
    assert "sqlite3" in _imports("store/__init__.py")
    assert "edgecv.runtime.detector" in _imports("work/worker.py")
    assert "edgecv.vision.common" in _imports("vision/shelf.py")  # relative or absolute, resolved
    assert "edgecv.runtime.scene" in _imports("runtime/engines.py")
    assert "edgecv.training.custom" in _imports("cli/models.py")

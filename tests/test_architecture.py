"""The module map of docs/architecture.md is the code's: every module is in it, every module
imports, and no module imports one of its own layer or above (imports inside functions and
under TYPE_CHECKING count too); and the stand-in imports nothing of the client, by the same
import parser."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rexec_credential"
DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"

# Lowest first. A module may import only modules of lower layers (and the package's
# __init__, for the version). Commands never import each other.
LAYERS = [
    ["errors"],
    ["tokens", "protocol", "paste", "answer_page"],
    ["hosts", "records"],
    ["accounts"],
    ["state"],
    ["precedence", "jsonfile"],
    ["storage"],
    ["api", "callback", "terminal", "gitsetup", "trace"],
    ["context"],
    ["commands.login", "commands.logout", "commands.whoami", "commands.credential"],
    ["cli"],
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def modules() -> list:
    """Every module of the package except the stand-in (tested on its own below)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if name.startswith("testing") or name.endswith("__init__"):
            continue
        found.append(name)
    return found


def imported(path: Path, root: Path = PACKAGE) -> set:
    """(module, name) for every import of the package in the source at `path`, anywhere in it
    (inside functions and under TYPE_CHECKING too), relative imports made absolute:
    `from .. import tokens` in testing/service.py is ("rexec_credential", "tokens"), and a
    plain `import rexec_credential.trace` is ("rexec_credential.trace", None)."""
    package = ["rexec_credential", *path.parent.relative_to(root).parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.update((module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
    return {
        (m, n) for m, n in found if m == "rexec_credential" or m.startswith("rexec_credential.")
    }


def imports_of(name: str) -> set:
    """The package modules that module `name` imports, anywhere in its source."""
    found = set()
    for module, imported_name in imported(PACKAGE / (name.replace(".", "/") + ".py")):
        relative = module[len("rexec_credential.") :] if "." in module else ""
        if relative and imported_name:
            candidate = f"{relative}.{imported_name}"
        else:  # `from rexec_credential import x`, or a plain `import rexec_credential.x`
            candidate = imported_name or relative
        found.add(candidate if candidate in LAYER else relative)
    return {m for m in found if m}


def test_every_module_is_on_the_map_and_the_map_is_in_the_docs():
    assert sorted(modules()) == sorted(LAYER)
    text = DOC.read_text()
    for name in LAYER:
        assert f"`{name.split('.')[-1]}" in text, f"{name} is not described in {DOC.name}"


def test_the_docs_say_where_each_module_is_tested_and_those_files_exist():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.strip().startswith("| `") and len(cells) == 2:
            rows[cells[0].strip("`")] = cells[1]
    tests = Path(__file__).resolve().parent
    for name in LAYER:
        assert name in rows, f"{DOC.name} does not say where {name} is tested"
        named = re.findall(r"`((?:stress/)?test_\w+\.py|conftest\.py)`", rows[name])
        assert named, f"{name}: no test file named"
        for file in named:
            assert (tests / file).is_file(), f"{name}: {file} does not exist"
        own = tests / f"test_{name.split('.')[-1]}.py"
        if own.is_file() and not name.startswith("commands."):
            assert own.name in named, f"{name}: {own.name} exists but is not named"


@pytest.mark.parametrize("name", sorted(LAYER))
def test_imports_only_lower_layers(name):
    importlib.import_module(f"rexec_credential.{name}")
    for imported in imports_of(name):
        if imported == "__init__" or imported not in LAYER:
            assert imported in ("", "__init__", "commands"), f"{name} imports {imported}"
            continue
        assert LAYER[imported] < LAYER[name], (
            f"{name} (layer {LAYER[name]}) imports {imported} (layer {LAYER[imported]})"
        )


def of_the_client(path: Path, root: Path = PACKAGE) -> list:
    """What the source at `path` imports from the package outside the stand-in, sorted."""
    stand_in = "rexec_credential.testing"
    names = {f"{module}.{name}" if name else module for module, name in imported(path, root)}
    return sorted(n for n in names if n != stand_in and not n.startswith(stand_in + "."))


def test_the_stand_in_imports_nothing_of_the_client():
    """A test cannot pass because client and stand-in share a bug."""
    for path in sorted((PACKAGE / "testing").glob("*.py")):
        if path.name in ("demo.py",):  # the demo runs the installed executables, as a user
            continue
        assert of_the_client(path) == [], path.name


@pytest.mark.parametrize(
    "line, client",
    [
        ("from .. import tokens", ["rexec_credential.tokens"]),
        ("from ..tokens import decode", ["rexec_credential.tokens.decode"]),
        ("from ..commands import login", ["rexec_credential.commands.login"]),
        ("from .. import __version__", ["rexec_credential.__version__"]),
        ("import rexec_credential.api", ["rexec_credential.api"]),
        ("from rexec_credential import state", ["rexec_credential.state"]),
        ("def f():\n    from ..trace import start", ["rexec_credential.trace.start"]),
        ("from . import faults", []),
        ("from .service import StandIn", []),
        ("from rexec_credential.testing import StandIn", []),
        ("import rexec_credential", ["rexec_credential"]),
        (
            "if TYPE_CHECKING:\n    from ..context import Context",
            ["rexec_credential.context.Context"],
        ),
        ("import json", []),
    ],
)
def test_the_stand_in_check_sees_every_form_of_import(tmp_path, line, client):
    """The check above parses imports (relative ones too) rather than matching text."""
    source = tmp_path / "rexec_credential" / "testing" / "service.py"
    source.parent.mkdir(parents=True)
    source.write_text(line + "\n")
    assert of_the_client(source, root=tmp_path / "rexec_credential") == client


def test_the_docs_list_the_layers_in_this_order():
    text = DOC.read_text()
    table = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == len(LAYERS)
    for line, names in zip(table, LAYERS):
        for name in names:
            assert f"`{name.split('.')[-1]}`" in line, (name, line)

"""The module map of docs/architecture.md is the code's: every module is in it, every module
imports, and no module imports one of its own layer or above (imports inside functions and
under TYPE_CHECKING count too)."""

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


def imports_of(name: str) -> set:
    """The package modules that module `name` imports, anywhere in its source."""
    path = PACKAGE / (name.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    package = name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            if node.level:
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
                if not module.startswith("rexec_credential"):
                    continue
                module = module[len("rexec_credential.") :] if "." in module else ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}" if module else alias.name
                found.add(candidate if candidate in LAYER else module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rexec_credential."):
                    found.add(alias.name[len("rexec_credential.") :])
    return {m for m in found if m}


def test_every_module_is_on_the_map_and_the_map_is_in_the_docs():
    assert sorted(modules()) == sorted(LAYER)
    text = DOC.read_text()
    for name in LAYER:
        assert f"`{name.split('.')[-1]}" in text, f"{name} is not described in {DOC.name}"


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


def test_the_stand_in_imports_nothing_of_the_client():
    """A test cannot pass because client and stand-in share a bug."""
    for path in sorted((PACKAGE / "testing").glob("*.py")):
        if path.name in ("demo.py",):  # the demo runs the installed executables, as a user
            continue
        source = path.read_text()
        assert not re.search(
            r"from \.\.\w|import rexec_credential\.(?!testing)|"
            r"from rexec_credential(?!\.testing)",
            source,
        ), path.name


def test_the_docs_list_the_layers_in_this_order():
    text = DOC.read_text()
    table = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == len(LAYERS)
    for line, names in zip(table, LAYERS):
        for name in names:
            assert f"`{name.split('.')[-1]}`" in line, (name, line)

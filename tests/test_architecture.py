"""Imports point one way, down the data flow (ARCHITECTURE.md): a package never imports one above it.

Every module under src/slicebudget is parsed (ast, so imports inside functions count too) and each
``slicebudget.<package>`` it imports is checked against FLOW. Packages on one level may import each
other, but the package graph as a whole must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import slicebudget

# Lowest first. A new package must be placed here before anything may import it.
FLOW = [
    {"errors", "volume", "metrics", "io"},
    {"data"},
    {"selection", "models", "training"},
    {"propagation", "inference"},
    {"study"},
    {"planning"},
    {"design"},
    {"report"},
    {"bench"},
    {"cli"},
]
LEVEL = {package: level for level, packages in enumerate(FLOW) for package in packages}
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui")
ROOT = Path(slicebudget.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from slicebudget import study` imports the package `study`
            if name == "slicebudget":
                found += [(node.lineno, f"slicebudget.{alias.name}") for alias in node.names]
    return found


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "slicebudget" else None


def _package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> 'file:line' of each import, across src/slicebudget."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        own = _package_of(_module_name(path))
        for line, name in _imports(path):
            other = _package_of(name)
            if own is not None and other is not None and other != own:
                edges.setdefault((own, other), []).append(f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def test_every_package_has_a_place_in_the_flow():
    packages = {_package_of(_module_name(p)) for p in ROOT.rglob("*.py")} - {None}
    assert packages - set(LEVEL) == set(), "add the new package to FLOW (and ARCHITECTURE.md)"


def test_no_module_imports_a_package_above_its_own():
    upward = [f"{where}: {own} (level {LEVEL[own]}) imports {other} (level {LEVEL[other]})"
              for (own, other), places in _package_edges().items() if LEVEL[other] > LEVEL[own]
              for where in places]
    assert upward == []


def test_packages_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for own, other in _package_edges():
        graph.setdefault(own, set()).add(other)
    done: set[str] = set()

    def visit(package: str, path: list[str]) -> None:
        if package in path:
            pytest.fail("package import cycle: " + " -> ".join([*path[path.index(package):], package]))
        if package in done:
            return
        for other in sorted(graph.get(package, ())):
            visit(other, [*path, package])
        done.add(package)

    for package in sorted(graph):
        visit(package, [])


def test_the_core_library_never_imports_a_gui():
    hits = [f"{path.relative_to(ROOT.parent)}:{line} imports {name}"
            for path in ROOT.rglob("*.py") for line, name in _imports(path) if name.split(".")[0] in GUI]
    assert hits == []


def test_the_checker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    # What a broken checker would miss: an upward import hidden inside a function, or written relatively.
    package = tmp_path / "slicebudget" / "training"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "fit.py").write_text("def f():\n    from ..study import runner\n    import slicebudget.report\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "slicebudget")
    names = [name for _, name in _imports(package / "fit.py")]
    assert names == ["slicebudget.study", "slicebudget.report"]

"""The import graph of `app/`, read from the source (no import runs): the core and everything
it imports know no web framework, and no import cycle crosses a package boundary (the 13-file
cycle closed by `app.errors -> app.context` is gone). Imports under `TYPE_CHECKING` count:
a cycle that only type checkers follow still ties the modules together."""

from __future__ import annotations

import ast
from pathlib import Path

from scripts.import_cycles import strongly_connected

APP = Path(__file__).resolve().parents[2] / "app"
WEB_FRAMEWORKS = ("fastapi", "starlette")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in APP.rglob("*.py"):
        if "generated" in path.parts:
            continue
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path) -> list[str]:
    """Every module named by an import statement of the module (at any depth)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> app modules it imports, module -> outside packages it imports)."""
    modules = _modules()
    inside: dict[str, set[str]] = {name: set() for name in modules}
    outside: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in _imports(name, path):
            if not imported.startswith("app"):
                outside[name].add(imported.split(".")[0])
                continue
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                inside[name].add(imported)
    return inside, outside


# Read at collection, before any test runs: after the whole unit tier had run in the same
# process, CPython 3.11's `ast.parse` once raised SystemError ("AST constructor recursion
# depth mismatch"), state left by an earlier test, not a property of the sources.
GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (the project's one Tarjan)."""
    return strongly_connected(graph, graph.__getitem__)


def test_the_core_and_everything_below_it_import_no_web_framework() -> None:
    inside, outside = GRAPH
    below, todo = set(), ["app.core"]
    while todo:
        module = todo.pop()
        if module not in below:
            below.add(module)
            todo.extend(inside[module])
    assert "app.repository" in below and "app.batching" in below  # the walk does reach down
    offenders = {m: sorted(outside[m] & set(WEB_FRAMEWORKS)) for m in sorted(below)}
    assert {m: found for m, found in offenders.items() if found} == {}


def test_no_import_cycle_crosses_a_package_boundary() -> None:
    inside, _ = GRAPH

    def package(module: str) -> str:
        return module if module.count(".") < 2 else module.rsplit(".", 1)[0]

    # A package's own modules importing names its __init__ re-exports is left to the
    # package (import-linter's contracts); a cycle through two packages is a layering bug.
    crossing = [
        cycle for cycle in _cycles(inside) if len({package(module) for module in cycle}) > 1
    ]
    assert crossing == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a.x": {"a.y"}, "a.y": {"b.z"}, "b.z": {"a.x"}, "c": set()}
    assert _cycles(graph) == [["a.x", "a.y", "b.z"]]

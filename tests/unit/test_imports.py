"""The import contracts in pyproject.toml hold (import-linter, in-process), and no module of
`app/` or `training/` is in an import cycle (scripts/import_cycles.py on grimp's graph,
import-linter's own parser: function-local and TYPE_CHECKING imports count).

The contracts are the one statement of the layering: `core-no-web` forbids the core and
everything it imports, directly or not, any web framework; `no-sibling-cycles` forbids cycles
between sibling packages at every depth. The module-level check below is stricter than the
latter (a cycle inside one package fails it too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.application import use_cases
from importlinter.configuration import configure

from scripts.import_cycles import import_cycles, strongly_connected
from tests.conftest import ROOT

# A contract the code breaks today, checked with the real ones: the check can fail.
CANARY_NAME = "canary: routes may not use the protocols"
CANARY: dict[str, Any] = {
    "id": "canary",
    "name": CANARY_NAME,
    "type": "forbidden",
    "source_modules": ["app.api"],
    "forbidden_modules": ["app.protocols"],
}


@pytest.fixture(scope="module")
def checks() -> dict[str, Any]:
    configure()  # what `lint-imports` does first: the file readers and the graph builder
    use_cases._register_built_in_contract_types()  # ditto (create_report leaves it out)
    options = use_cases.read_user_options(str(ROOT / "pyproject.toml"))
    options.contracts_options = [*options.contracts_options, CANARY]
    report = use_cases.create_report(options, cache_dir=None)
    return {contract.name: check for contract, check in report.get_contracts_and_checks()}


def test_every_contract_in_pyproject_holds(checks: dict[str, Any]) -> None:
    real = {name: check for name, check in checks.items() if name != CANARY_NAME}
    assert len(real) >= 5
    assert [name for name, check in real.items() if not check.kept] == []


def test_a_broken_contract_is_reported_broken(checks: dict[str, Any]) -> None:
    assert checks[CANARY_NAME].kept is False


@pytest.mark.parametrize(
    ("edges", "cycles"),
    [
        ({"a": "b", "b": "c"}, []),
        ({"a": "b", "b": "a"}, [["a", "b"]]),
        ({"a": "b", "b": "c", "c": "a", "d": "a"}, [["a", "b", "c"]]),
        ({"a": "b", "b": "a", "c": "d", "d": "ce"}, [["c", "d"], ["a", "b"]]),
        ({"a": "bc", "b": "d", "c": "d", "d": "a"}, [["a", "b", "c", "d"]]),
    ],
)
def test_strongly_connected_components_are_the_cycles(
    edges: dict[str, str], cycles: list[list[str]]
) -> None:
    nodes = set(edges) | {target for targets in edges.values() for target in targets}
    found = strongly_connected(nodes, lambda node: set(edges.get(node, "")))
    assert sorted(found) == sorted(cycles)


def test_no_module_of_app_or_training_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph("app", "training", cache_dir=None)
    assert "app.core" in graph.modules and "training.ood" in graph.modules  # it read them
    assert import_cycles(graph, ["app", "training"]) == []


def test_a_cycle_hidden_in_a_function_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function-local import is how a cycle hides from the interpreter (training's
    common -> profile -> binary_mlp -> common was one); the graph still has it."""
    package = tmp_path / "hidden_cycle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from hidden_cycle.b import x\n")
    (package / "b.py").write_text("def x():\n    from hidden_cycle import a\n")
    (package / "c.py").write_text("import hidden_cycle.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("hidden_cycle", cache_dir=None)
    assert import_cycles(graph, ["hidden_cycle"]) == [["hidden_cycle.a", "hidden_cycle.b"]]


def test_a_long_chain_needs_no_recursion() -> None:
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)}
    chain["m5000"] = {"m0"}
    (cycle,) = strongly_connected(chain, lambda node: chain[node])
    assert len(cycle) == 5001


def test_import_cycles_stay_inside_the_packages_asked_for() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.a"),  # a cycle inside pkg
        ("pkg.c", "other.x"),
        ("other.x", "pkg.c"),  # a cycle through another package: not pkg's alone
    ]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph, ["pkg"]) == [["pkg.a", "pkg.b"]]
    assert import_cycles(graph, ["pkg", "other"]) == [["other.x", "pkg.c"], ["pkg.a", "pkg.b"]]

"""The runtime table: one plug-in per framework, one loader, a set-up hook run once; and no
framework switch anywhere outside `app/runtimes/` (a scan of the source)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from app.runtimes import (
    RUNTIMES,
    Model,
    NoInputGradients,
    Runtime,
    UnknownFramework,
    library_version_problem,
    load_model,
    prepare_runtimes,
    runtime_for,
    runtime_of,
)
from app.schemas.card import ModelCard
from tests.conftest import ROOT


class FakeModel(Model):
    """Answers uniform probabilities; records that it was loaded."""

    loaded = False

    def load(self) -> None:
        self.loaded = True

    def predict(self, batch: np.ndarray) -> np.ndarray:
        n = len(self.card.labels)
        return np.full((len(batch), n), 1.0 / n)


class FakeRuntime(Runtime):
    framework = "fake"
    library = None

    def __init__(self) -> None:
        super().__init__()
        self.setups: list[int] = []
        self.created: list[tuple[int, Sequence[int] | None]] = []
        self.fail_setup = False

    def setup(self, inference_threads: int) -> None:
        if self.fail_setup:
            raise RuntimeError("no backend")
        self.setups.append(inference_threads)

    def create(
        self, card: ModelCard, folder: Path, *, max_batch_size: int, buckets: Sequence[int] | None
    ) -> Model:
        self.created.append((max_batch_size, buckets))
        return FakeModel(card, folder)

    def owns(self, model: Model) -> bool:
        return isinstance(model, FakeModel)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    runtime = FakeRuntime()
    monkeypatch.setitem(RUNTIMES, "fake", runtime)
    return runtime


def _card(framework: str) -> ModelCard:
    """A valid card (no artifact on disk) naming `framework`: the schema does not list the
    frameworks, the table is what decides."""
    card = ModelCard.model_validate(
        {
            "name": "toy",
            "version": 1,
            "description": "a toy",
            "task": "binary-classification",
            "hyperparameters": {},
            "framework": framework,
            "input": {
                "kind": "tabular",
                "features": [{"name": "a"}, {"name": "b"}],
            },
            "labels": ["no", "yes"],
            "model_file": "model.joblib",
            "artifacts": {"model.joblib": "0" * 64},
            "library_versions": {"scikit-learn": "0.1"},
            "created_at": "2026-01-01T00:00:00Z",
            "examples": [{"instance": {"a": 1.0, "b": 2.0}, "label": "no"}],
        }
    )
    assert card.framework == framework
    return card


def test_the_table_holds_the_real_frameworks_under_their_card_names() -> None:
    assert set(RUNTIMES) >= {"sklearn", "keras"}
    for framework, runtime in RUNTIMES.items():
        assert runtime.framework == framework


def test_load_model_dispatches_on_the_card_framework_and_loads(
    fake: FakeRuntime, tmp_path: Path
) -> None:
    model = load_model(_card("fake"), tmp_path, max_batch_size=32, buckets=(1, 8))
    assert isinstance(model, FakeModel) and model.loaded
    assert model.folder == tmp_path
    assert fake.created == [(32, (1, 8))]
    assert runtime_of(model) is fake
    assert model.predict(np.zeros((3, 2))).shape == (3, 2)


def test_an_unknown_framework_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownFramework, match=r"'onnx'.*keras, sklearn"):
        load_model(_card("onnx"), tmp_path)
    with pytest.raises(UnknownFramework):
        runtime_for("onnx")


def test_set_up_passes_over_a_framework_no_runtime_serves(fake: FakeRuntime) -> None:
    """One version naming an unknown framework fails to load on its own (`load_model`); the
    set-up of the others still runs."""
    prepare_runtimes(["onnx", "fake"], 3)
    assert fake.setups == [3]


def test_a_model_is_only_claimed_by_the_runtime_that_built_it(
    fake: FakeRuntime, tmp_path: Path
) -> None:
    # A fake model whose card says sklearn: the sklearn runtime did not build it.
    stray = FakeModel(_card("sklearn"), tmp_path)
    with pytest.raises(UnknownFramework, match="not built by the sklearn runtime"):
        runtime_of(stray)


def test_the_set_up_hook_runs_once_per_process(fake: FakeRuntime) -> None:
    assert not fake.prepared
    prepare_runtimes(["fake", "fake"], 4)
    prepare_runtimes({"fake"}, 8)
    fake.prepare(2)
    assert fake.setups == [4] and fake.prepared


def test_a_failed_set_up_is_tried_again(fake: FakeRuntime) -> None:
    fake.fail_setup = True
    with pytest.raises(RuntimeError, match="no backend"):
        prepare_runtimes(["fake"], 4)
    assert not fake.prepared
    fake.fail_setup = False
    prepare_runtimes(["fake"], 4)
    assert fake.setups == [4]


def test_loading_does_not_set_the_runtime_up(fake: FakeRuntime, tmp_path: Path) -> None:
    """Set-up is the lifecycle's explicit step (training keeps its own backend set-up)."""
    load_model(_card("fake"), tmp_path)
    assert fake.setups == []


def test_capabilities_default_to_none_or_a_clear_refusal(fake: FakeRuntime, tmp_path: Path) -> None:
    model = load_model(_card("fake"), tmp_path)
    assert model.estimator is None and model.input_mean() is None
    with pytest.raises(NoInputGradients, match="toy: its fake runtime has no input gradients"):
        model.input_gradient()
    assert fake.clear_caches() is False


def test_library_versions_are_checked_against_the_runtime_library(fake: FakeRuntime) -> None:
    # The card records scikit-learn 0.1: the sklearn runtime refuses it, a runtime without a
    # versioned library does not check.
    problem = library_version_problem(_card("sklearn"))
    assert problem is not None and "scikit-learn 0.1" in problem
    assert library_version_problem(_card("fake")) is None


# ---------------------------------------------------------------- no switch outside runtimes

# Modules that hold one framework's code: only app/runtimes/ may import them.
FRAMEWORK_MODULES = ("app.runtimes.keras", "app.runtimes.sklearn", "app.runtimes.keras_gradients")
# Deep-learning libraries: the server reaches them through its runtimes only.
FRAMEWORK_LIBRARIES = ("keras", "tensorflow", "jax", "torch")
# The importer's per-framework parts are plug-ins in one table
# (`training.importing.frameworks.IMPORTERS`), chosen by the object or the file's suffix; it
# loads the result through `load_model` like everyone else. The card schema (app/schemas) is
# scanned too: its `framework` is a plain string, not a list of the frameworks.
ALLOWED = ("app/runtimes/",)
# The card names of the frameworks: two or more of them in one literal is a second list.
FRAMEWORK_NAMES = frozenset({"sklearn", "keras"})


def framework_switches(source: str) -> list[tuple[int, str]]:
    """(line, what) for each place `source` switches on a framework: compares or indexes by
    a `framework` value, matches on one, imports a framework's runtime module, or (in app/)
    imports a deep-learning library."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)

    def names_framework(node: ast.AST) -> bool:
        return any(
            (isinstance(n, ast.Attribute) and n.attr == "framework")
            or (isinstance(n, ast.Name) and n.id == "framework")
            for n in ast.walk(node)
        )

    def lists_frameworks(node: ast.AST) -> bool:
        # `Literal["sklearn", "keras"]` is found as its tuple.
        elements = (
            node.keys
            if isinstance(node, ast.Dict)
            else node.elts
            if isinstance(node, ast.Tuple | ast.List | ast.Set)
            else []
        )
        named = {e.value for e in elements if isinstance(e, ast.Constant)}
        return len(named & FRAMEWORK_NAMES) >= 2

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict | ast.Tuple | ast.List | ast.Set) and lists_frameworks(node):
            found.append((node.lineno, "lists the frameworks"))
        elif isinstance(node, ast.Compare) and names_framework(node):
            found.append((node.lineno, "compares a framework"))
        elif isinstance(node, ast.Subscript) and names_framework(node.slice):
            found.append((node.lineno, "looks a framework up in its own table"))
        elif isinstance(node, ast.Match) and names_framework(node.subject):
            found.append((node.lineno, "matches on a framework"))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
            if isinstance(node, ast.ImportFrom) and node.module == "app.runtimes":
                modules = [f"app.runtimes.{alias.name}" for alias in node.names]
            for module in modules:
                if module in FRAMEWORK_MODULES:
                    found.append((node.lineno, f"imports {module}"))
    return found


def library_imports(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
            )
            for module in modules:
                if module.split(".")[0] in FRAMEWORK_LIBRARIES:
                    found.append((node.lineno, f"imports {module}"))
    return found


def _sources() -> Iterator[tuple[str, str]]:
    for top in ("app", "training"):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(ALLOWED):
                yield relative, path.read_text("utf-8")


def test_no_framework_switch_outside_the_runtimes() -> None:
    problems = []
    for relative, source in _sources():
        hits = framework_switches(source)
        if relative.startswith("app/"):
            hits += library_imports(source)
        problems += [f"{relative}:{line}: {what}" for line, what in hits]
    assert problems == [], "framework knowledge outside app/runtimes/:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        'if card.framework == "keras":\n    pass\n',
        'x = "keras" if card.framework == "keras" else "sklearn"\n',
        "x = BUCKETS[card.framework]\n",
        'match model.card.framework:\n    case "keras":\n        pass\n',
        "from app.runtimes.keras import KerasModel\n",
        "from app.runtimes import sklearn\n",
        "def f(framework):\n    return framework in ('keras',)\n",
        'framework: Literal["sklearn", "keras"]\n',
        'KNOWN = ("keras", "sklearn")\n',
        'BUCKETS = {"sklearn": 1, "keras": 8}\n',
    ],
)
def test_the_scan_catches_each_kind_of_switch(source: str) -> None:
    assert framework_switches(source) != []


def test_the_scan_leaves_plain_uses_alone() -> None:
    source = (
        "from app.runtimes import load_model, prepare_runtimes\n"
        "model = load_model(card, folder)\n"
        "prepare_runtimes({e.card.framework for e in entries}, 2)\n"
        'card = Card(framework="keras")\n'
    )
    assert framework_switches(source) == []
    assert library_imports("import numpy\nfrom sklearn.pipeline import Pipeline\n") == []
    assert library_imports("import jax.numpy as jnp\n") != []

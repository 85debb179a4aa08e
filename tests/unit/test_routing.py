"""Routing among a model's versions through the registry and `select`: the traffic split (a
canary gets its share only once ready), labels, the shadow copy, and the registry's order
(computed when the set of versions changes, not per read). Fake versions, nothing loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.context import RequestContext
from app.core import InferenceCore
from app.errors import NotFound
from app.metrics import Metrics
from app.repository import ModelConfig, ModelEntry, ModelRegistry, ModelState
from tests.conftest import make_settings
from tests.unit.fake_runtime import served_version
from tests.unit.fake_version import core_of


def _entry(version: int, state: ModelState = ModelState.READY, name: str = "toy") -> ModelEntry:
    served = served_version(version, name)
    entry = ModelEntry(name, version, served.folder, served.card, carded=served)
    if state is ModelState.READY:
        entry.ready(served)
    else:
        entry.state = state
    return entry


def _registry(config: dict[str, Any], *entries: ModelEntry) -> ModelRegistry:
    registry = ModelRegistry(list(entries))
    registry.models["toy"].config = ModelConfig.model_validate(config)
    registry.refresh("toy")
    return registry


def _routed(core: InferenceCore, name: str = "toy") -> tuple[int, str, int | None]:
    """(version, the label that chose it, the shadow's version) of one routed request."""
    context = RequestContext(arrived=0.0)
    version = core.select(name, context=context)
    context.release()
    return version.version, context.label, context.shadow.version if context.shadow else None


def _core(registry: ModelRegistry, tmp_path: Path) -> InferenceCore:
    return core_of(make_settings(tmp_path), registry, Metrics())


CANARY = {"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 3, "canary": 1}}


def test_a_canary_gets_its_share_only_once_ready(tmp_path: Path) -> None:
    canary = _entry(2, ModelState.LOADING)
    registry = _registry(CANARY, _entry(1), canary)
    core = _core(registry, tmp_path)
    assert {_routed(core) for _ in range(8)} == {(1, "stable", None)}
    canary.ready(served_version(2))
    registry.refresh("toy")
    picks = [_routed(core) for _ in range(8)]
    assert picks.count((2, "canary", None)) == 2 and picks.count((1, "stable", None)) == 6


def test_labels_pick_their_version_and_an_unknown_label_lists_them(tmp_path: Path) -> None:
    core = _core(_registry(CANARY, _entry(1), _entry(2)), tmp_path)
    assert core.select("toy", label="canary").version == 2
    with pytest.raises(NotFound, match="no label 'beta'; labels: canary, stable"):
        core.select("toy", label="beta")


def test_only_routed_requests_are_copied_to_the_shadow(tmp_path: Path) -> None:
    core = _core(_registry({"shadow": 2, "traffic": {"1": 1}}, _entry(1), _entry(2)), tmp_path)
    assert _routed(core) == (1, "", 2)
    pinned = RequestContext(arrived=0.0)
    assert core.select("toy", 1, pinned).version == 1 and pinned.shadow is None
    pinned.release()


def test_a_shadow_that_is_not_ready_or_is_the_primary_gets_no_copy(tmp_path: Path) -> None:
    loading = _registry({"shadow": 2}, _entry(1), _entry(2, ModelState.LOADING))
    assert _routed(_core(loading, tmp_path)) == (1, "", None)
    itself = _registry({"shadow": 2}, _entry(1), _entry(2))  # the newest serves: 2
    assert _routed(_core(itself, tmp_path)) == (2, "", None)


def test_the_order_is_kept_until_the_versions_change() -> None:
    registry = ModelRegistry([_entry(2), _entry(10), _entry(1, name="b")])
    order = registry.entries
    assert [(e.name, e.version) for e in order] == [("b", 1), ("toy", 2), ("toy", 10)]
    assert registry.entries is order and registry.names == ["b", "toy"]
    registry.add(_entry(1, name="a"))
    assert [(e.name, e.version) for e in registry] == [("a", 1), ("b", 1), ("toy", 2), ("toy", 10)]
    registry.remove(registry.find("b", 1))
    assert registry.names == ["a", "toy"] and len(registry.entries) == 3

"""The lifecycle against a fake runtime (tests/unit/fake_runtime.py): loading, promoting a new
version, retiring the old one once its requests finish, unloading and loading a model again,
and the frozen version `select` hands out. No framework, no model from disk, no process."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.context import RequestContext
from app.core import InferenceCore
from app.errors import NotFound, Unavailable
from app.metrics import Metrics
from app.repository import ModelRegistry, ModelState, ServedVersion, VersionPolicy
from app.repository.lifecycle import Lifecycle
from tests.conftest import make_settings
from tests.unit.fake_runtime import FakeRuntime, register_fake_runtime, write_version
from tests.unit.fake_version import core_of, lifecycle_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclasses.dataclass
class Server:
    registry: ModelRegistry
    core: InferenceCore
    lifecycle: Lifecycle


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    """A repository with toy version 1, loaded by the lifecycle on the fake runtime."""
    register_fake_runtime(monkeypatch)
    models = tmp_path / "models"
    write_version(models, "toy", 1)
    settings = make_settings(models, model_poll_s=0)
    registry = ModelRegistry.scan(models, VersionPolicy())
    metrics = Metrics()
    core = core_of(settings, registry, metrics)
    lifecycle = lifecycle_of(settings, registry, metrics, core.serve)
    await lifecycle.start()
    await lifecycle.wait_loaded()
    try:
        yield Server(registry, core, lifecycle)
    finally:
        lifecycle.stop_loading()
        await core.stop(1.0)


def _context() -> RequestContext:
    return RequestContext(arrived=0.0)


async def _predict(server: Server, version: ServedVersion, x: float = 1.0) -> np.ndarray:
    """One row through the core and the version's batcher."""
    context = RequestContext(arrived=time.perf_counter())
    return await server.core.infer(version, [version.kind.to_row([x])], context)


async def _stopped(server: Server, version: ServedVersion) -> bool:
    """Whether the version's batcher is stopped (it refuses rows)."""
    try:
        await _predict(server, version)
    except Unavailable:
        return True
    return False


async def test_a_version_loads_on_the_fake_runtime_and_serves(server: Server) -> None:
    entry = server.registry.find("toy", 1)
    assert entry.state is ModelState.READY and entry.reason is None
    version = server.core.select("toy")
    assert isinstance(version.model, FakeRuntime) and FakeRuntime.loaded == [version.model]
    assert entry.served is version and entry.load_seconds is not None
    assert np.allclose(await _predict(server, version), [[0.9, 0.1]], atol=1e-3)


async def test_select_returns_a_frozen_fully_loaded_version(server: Server) -> None:
    version = server.core.select("toy", 1)
    assert isinstance(version, ServedVersion)
    assert all(getattr(version, f.name) is not None for f in dataclasses.fields(version))
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.model = FakeRuntime(version.card, version.folder)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.batcher = None  # type: ignore[misc, assignment]


async def test_select_leases_the_version_until_the_request_ends(server: Server) -> None:
    context = _context()
    version = server.core.select("toy", context=context)
    assert version.leases.count == 1 and context.entry is version
    context.release()
    assert version.leases.count == 0


async def test_a_new_version_is_promoted_and_the_old_one_retired(server: Server) -> None:
    old = server.core.select("toy")
    write_version(server.registry.find("toy", 1).folder.parent.parent, "toy", 2)
    admitted = await server.lifecycle.rescan()
    assert [(e.name, e.version) for e in admitted] == [("toy", 2)]
    await server.lifecycle.wait_loads("toy")
    # The newest version serves; the policy (latest 1) retires version 1 once 2 is ready.
    new = server.core.select("toy")
    assert new.version == 2 and np.allclose(await _predict(server, new), [[0.8, 0.2]], atol=1e-3)
    await server.lifecycle._wait_retired("toy")
    assert list(server.registry.versions("toy")) == [2]
    assert await _stopped(server, old)
    with pytest.raises(NotFound, match="no version 1 served"):
        server.core.select("toy", 1)


async def test_a_retired_version_finishes_its_requests_first(server: Server) -> None:
    context = _context()
    old = server.core.select("toy", context=context)  # a request in flight holds version 1
    write_version(server.registry.find("toy", 1).folder.parent.parent, "toy", 2)
    await server.lifecycle.rescan()
    await server.lifecycle.wait_loads("toy")
    entry = server.registry.find("toy", 1)
    assert entry.state is ModelState.UNLOADING
    assert np.allclose(await _predict(server, old), [[0.9, 0.1]], atol=1e-3)  # it still answers
    context.release()
    await server.lifecycle._wait_retired("toy")
    assert entry.served is None and entry.carded is None and await _stopped(server, old)


async def test_unload_then_load_again(server: Server) -> None:
    old = server.core.select("toy")
    await server.lifecycle.unload("toy")
    assert await _stopped(server, old)
    with pytest.raises(NotFound, match="is unloaded; load it with POST"):
        server.core.select("toy")
    await server.lifecycle.load_model("toy")
    again = server.core.select("toy")
    assert again is not old and again.version == 1
    assert np.allclose(await _predict(server, again), [[0.9, 0.1]], atol=1e-3)
    assert len(FakeRuntime.loaded) == 2


async def test_a_runtime_that_fails_to_load_fails_its_version_only(server: Server) -> None:
    FakeRuntime.fail = True
    write_version(server.registry.find("toy", 1).folder.parent.parent, "toy", 2)
    await server.lifecycle.rescan()
    await server.lifecycle.wait_loads("toy")
    failed = server.registry.find("toy", 2)
    assert failed.state is ModelState.FAILED and failed.served is None
    # The framework's words (a path) stay in the log; the reason names the files.
    assert failed.reason == (
        "loading failed: sklearn could not load the model from model.bin; the server log "
        "has the details"
    )
    assert server.core.select("toy").version == 1  # the serving version keeps serving


async def test_a_changed_artifact_fails_the_sha256_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_fake_runtime(monkeypatch)
    models = tmp_path / "models"
    folder = write_version(models, "toy", 1)
    (folder / "model.bin").write_bytes(b"not what the card recorded")
    settings = make_settings(models, model_poll_s=0)
    registry = ModelRegistry.scan(models, VersionPolicy())
    metrics = Metrics()
    lifecycle = lifecycle_of(
        settings, registry, metrics, core_of(settings, registry, metrics).serve
    )
    await lifecycle.start()
    await lifecycle.wait_loaded()
    entry = registry.find("toy", 1)
    assert entry.state is ModelState.FAILED and FakeRuntime.loaded == []
    assert (entry.reason or "").startswith("artifact check failed")


async def test_a_canary_split_routes_over_the_ready_versions(server: Server) -> None:
    models = server.registry.find("toy", 1).folder.parent.parent
    write_version(models, "toy", 2)
    config: dict[str, Any] = {
        "version_policy": {"all": True},
        "labels": {"stable": 1, "canary": 2},
        "traffic": {"stable": 3, "canary": 1},
    }
    (models / "toy" / "config.json").write_text(json.dumps(config))
    await server.lifecycle.rescan()
    await server.lifecycle.wait_loads("toy")
    picks = []
    for _ in range(8):
        context = _context()
        picks.append((server.core.select("toy", context=context).version, context.label))
        context.release()
    assert picks.count((2, "canary")) == 2 and picks.count((1, "stable")) == 6
    assert server.core.select("toy", label="canary").version == 2

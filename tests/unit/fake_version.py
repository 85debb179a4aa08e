"""A served version with a fake runtime, for tests of the core and the protocols.

No model from disk: a card built in code (two tabular features `a`, `b`; labels `no`, `yes`)
and a runtime that answers `sigmoid(a + b)` for `yes`, records every batch it computes and
gives NaN for a row whose `a` is `POISON` (an input the model "cannot compute"). The one
place that builds a version by hand, so a change of the version type changes only this file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.context import RequestContext
from app.core import InferenceCore
from app.kinds import make_adapter
from app.metrics import Metrics
from app.repository import ModelEntry, ModelRegistry, ServedVersion
from app.repository.lifecycle import Lifecycle, Serve
from app.runtimes import Model
from app.schemas.card import CardExample, Feature, ModelCard, TabularInput
from tests.conftest import make_settings

NAME = "fake"
LABELS = ["no", "yes"]
POISON = 999.0


class FakeRuntime(Model):
    """`P(yes) = sigmoid(a + b)`; NaN for a poisoned row; records each batch and its thread."""

    def __init__(self, model_card: ModelCard, folder: Path) -> None:
        super().__init__(model_card, folder)
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Nothing to read: the fake computes its answer."""

    def predict(self, features: Any) -> np.ndarray:
        values = np.asarray(features, dtype=np.float64)
        with self._lock:
            self.batches.append(len(values))
            self.threads.add(threading.current_thread().name)
        yes = 1.0 / (1.0 + np.exp(-values.sum(axis=1)))
        yes[values[:, 0] == POISON] = np.nan
        return np.stack([1.0 - yes, yes], axis=1)


def expected(rows: list[list[float]]) -> np.ndarray:
    """What the fake runtime answers for plain rows `[a, b]`."""
    yes = 1.0 / (1.0 + np.exp(-np.asarray(rows, dtype=np.float64).sum(axis=1)))
    return np.stack([1.0 - yes, yes], axis=1)


def card() -> ModelCard:
    return ModelCard(
        name=NAME,
        version=1,
        description="a fake binary classifier",
        framework="sklearn",
        task="binary-classification",
        input=TabularInput(features=[Feature(name="a"), Feature(name="b")]),
        labels=LABELS,
        model_file="model.skops",
        artifacts={"model.skops": "0" * 64},
        hyperparameters={},
        library_versions={},
        created_at=datetime.now(UTC),
        examples=[CardExample(instance=[1.0, 2.0], label="yes")],
    )


@dataclass
class Served:
    """A core serving one fake version."""

    core: InferenceCore
    entry: ServedVersion
    runtime: FakeRuntime


def core_of(settings: Any, registry: ModelRegistry, metrics: Metrics) -> InferenceCore:
    """A core given the settings groups it reads, as `PredictionService` wires it."""
    return InferenceCore(
        registry,
        metrics,
        serving=settings.serving,
        limits=settings.limits,
        batching=settings.batching,
        explain=settings.explain,
    )


def lifecycle_of(
    settings: Any, registry: ModelRegistry, metrics: Metrics, serve: Serve
) -> Lifecycle:
    """A lifecycle given the settings groups it reads, as `PredictionService` wires it."""
    return Lifecycle(
        registry,
        metrics,
        serve,
        repository=settings.repository,
        limits=settings.limits,
        batching=settings.batching,
        serving=settings.serving,
        explain=settings.explain,
    )


def serve(folder: Path, **settings: Any) -> Served:
    """A core over a registry holding one ready fake version (call on the event loop; stop
    it with `await served.core.stop(1)`)."""
    model_card = card()
    runtime = FakeRuntime(model_card, folder)
    kind = make_adapter(model_card, folder, load=False)
    record = ModelEntry(NAME, 1, folder, model_card)
    carded = record.admit(model_card, kind)
    registry = ModelRegistry([record])
    core = core_of(make_settings(folder, **settings), registry, Metrics())
    batcher = core.serve(carded, runtime)
    served = ServedVersion.of(carded, runtime, batcher, record.leases)
    record.ready(served)
    registry.refresh(NAME)
    return Served(core, served, runtime)


def context(**fields: Any) -> RequestContext:
    """A request that has just arrived."""
    return RequestContext(arrived=time.perf_counter(), **fields)

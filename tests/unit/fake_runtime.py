"""A fake runtime and the model versions it serves, for the repository's unit tests: a real
card and a real (tiny) artifact file whose sha256 the card records, but no framework: the
runtime's probabilities are a function of the one feature, so tests can tell versions apart.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from app.adapters import make_adapter
from app.batching import Batcher
from app.metrics import ServingStats
from app.repository import CardedVersion, Leases, ServedVersion
from app.runtimes import RUNTIMES
from app.runtimes.base import Model, Runtime
from app.schemas.card import CARD_FILENAME, ModelCard, sha256_file
from app.tasks import task_of

ARTIFACT = "model.bin"

CARD: dict[str, Any] = {
    "name": "toy",
    "version": 1,
    "description": "a toy served by the fake runtime",
    "framework": "sklearn",
    "task": "binary-classification",
    "input": {"kind": "tabular", "features": [{"name": "x", "unit": "cm"}]},
    "labels": ["no", "yes"],
    "model_file": ARTIFACT,
    "artifacts": {ARTIFACT: "0" * 64},
    "training_data": {
        "source": "made up",
        "sha256": "1" * 64,
        "train_size": 8,
        "validation_size": 0,
        "test_size": 4,
    },
    "hyperparameters": {},
    "metrics": {
        "evaluated_on": "test",
        "test_size": 4,
        "accuracy": 0.75,
        "precision_macro": 0.75,
        "recall_macro": 0.75,
        "f1_macro": 0.75,
        "roc_auc": 0.8,
        "confusion_matrix": [[2, 0], [1, 1]],
    },
    "library_versions": {"python": "3.11"},
    "seed": 42,
    "created_at": "2026-11-22T00:00:00Z",
    "training_seconds": 1.0,
    "examples": [{"instance": [1.0], "label": "yes"}],
}


class FakeRuntime(Model):
    """P(yes) = the version number / 10 for every row: which version answered is visible in
    the probabilities. `fail` (a class attribute, set per test) makes `load` raise."""

    loaded: ClassVar[list[FakeRuntime]] = []
    fail: ClassVar[bool] = False

    def load(self) -> None:
        if FakeRuntime.fail:
            raise RuntimeError("/secret/path/model.bin: the framework's own words")
        (self.folder / ARTIFACT).read_bytes()
        FakeRuntime.loaded.append(self)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        positive = self.card.version / 10
        return np.tile([1.0 - positive, positive], (len(batch), 1))


class FakeRuntimeTable(Runtime):
    """The runtime-table entry that builds FakeRuntime models (under the card's framework)."""

    framework = "sklearn"

    def create(self, card: ModelCard, folder: Path, *, max_batch_size: int, buckets: Any) -> Model:
        return FakeRuntime(card, folder)

    def owns(self, model: Model) -> bool:
        return isinstance(model, FakeRuntime)


def register_fake_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the card's framework (sklearn) with the fake runtime for one test."""
    monkeypatch.setitem(RUNTIMES, "sklearn", FakeRuntimeTable())
    monkeypatch.setattr(FakeRuntime, "loaded", [])
    monkeypatch.setattr(FakeRuntime, "fail", False)


def card_of(name: str = "toy", version: int = 1, artifact_sha256: str = "0" * 64) -> ModelCard:
    """The fake card, for `name` version `version`."""
    data = copy.deepcopy(CARD)
    data.update(name=name, version=version, artifacts={ARTIFACT: artifact_sha256})
    return ModelCard.model_validate(data)


def write_version(models_dir: Path, name: str = "toy", version: int = 1) -> Path:
    """`models_dir/name/version/` with the artifact and a card that records its sha256."""
    folder = models_dir / name / str(version)
    folder.mkdir(parents=True)
    (folder / ARTIFACT).write_bytes(f"{name} {version}".encode())
    card = card_of(name, version, sha256_file(folder / ARTIFACT))
    (folder / CARD_FILENAME).write_text(json.dumps(card.model_dump(mode="json")))
    return folder


def served_version(version: int, name: str = "toy") -> ServedVersion:
    """A served version that was never loaded (its batcher not started): for routing."""
    card = card_of(name, version)
    folder = Path(".")
    kind = make_adapter(card, folder, load=False)
    carded = CardedVersion(name, version, folder, card, kind, task_of(card), ServingStats())
    batcher = Batcher(f"{name}/{version}", lambda rows: [])
    return ServedVersion.of(carded, FakeRuntime(card, folder), batcher, Leases())

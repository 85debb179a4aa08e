"""The prediction store and its writer, for the unit and integration monitoring tests: a fresh
store per test, the committed iris-knn card as the served version, writers that never flush on
their own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.kinds import make_adapter
from app.metrics import ServingStats
from app.monitoring.database import database_url
from app.monitoring.store import Store
from app.monitoring.writer import Writer
from app.monitoring.writer_queue import Record
from app.repository import CardedVersion
from app.schemas.card import ModelCard
from app.tasks import task_of
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(database_url(None, tmp_path / "store"))
    store.migrate()
    store.migrate()  # idempotent: a restart migrates again
    return store


IRIS_FOLDER = COMMITTED_MODELS / "iris-knn" / COMMITTED_VERSION


@pytest.fixture(scope="module")
def iris() -> CardedVersion:
    return _carded("iris-knn", int(COMMITTED_VERSION), IRIS_FOLDER, ModelCard.read(IRIS_FOLDER))


def _carded(name: str, version: int, folder: Path, card: ModelCard) -> CardedVersion:
    """A version as the writer gets it (its input kind made from the card, not loaded)."""
    kind = make_adapter(card, folder, load=False)
    return CardedVersion(name, version, folder, card, kind, task_of(card), ServingStats())


def _record(entry: CardedVersion, request_id: str, rows: int) -> Record:
    return Record(
        request_id=request_id,
        entry=entry,
        caller="",
        route="v1",
        created_at=time.time(),
        rows=[np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32)] * rows,
        # A tie between the first two labels: the first wins, as in the response.
        probabilities=np.array([[0.4, 0.4, 0.2]] * rows),
    )


def _writer(store: Store, **overrides: Any) -> Writer:
    options: dict[str, Any] = {
        "max_rows": 100,
        "batch_rows": 100,
        "flush_interval_s": 60,
        "on_drop": print,
    }
    options.update(overrides)
    return Writer(store.url, **options)

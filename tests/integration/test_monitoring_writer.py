"""The prediction store's writer process (one child per writer) and text statistics from the
committed vocabulary. The writer's queue and the store itself are in
tests/unit/test_monitoring.py."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.monitoring.store import Store
from app.repository import CardedVersion
from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION
from tests.monitoring_fixtures import _carded, _record, _writer


def test_text_statistics_count_tokens_and_unknown_words() -> None:
    from app.monitoring.profile import StatisticsComputer

    folder = COMMITTED_MODELS / "imdb-sentiment" / COMMITTED_VERSION
    computer = StatisticsComputer(ModelCard.read(folder), folder)
    stats = computer.compute(["a great film", "zzqqxx wwvvyy great"])
    assert stats[0].tolist() == [3.0, 0.0]
    assert stats[1, 0] == 3.0 and stats[1, 1] == pytest.approx(2 / 3)


def test_feedback_wait_flushes_at_once(store: Store, iris: CardedVersion) -> None:
    writer = _writer(store)
    writer.start()
    try:
        writer.submit(*_record(iris, "now", 2))
        started = time.perf_counter()
        # The writer would wait 60 s for more rows; a feedback wait makes it write now.
        assert writer.wait_written("now", timeout_s=60)
        assert time.perf_counter() - started < 50
        rows = store.prediction("iris-knn", "now", "")
        assert [label for _, _, label in rows] == ["setosa", "setosa"]
    finally:
        writer.stop()


def test_the_writer_process_stores_what_the_store_records(
    store: Store, iris: CardedVersion
) -> None:
    writer = _writer(store)
    writer.start()
    try:
        writer.submit(*_record(iris, "full", 1))
        assert writer.wait_written("full", timeout_s=60)
    finally:
        writer.stop()
    with store.engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT route, row_index, features, stats, probabilities, predicted "
            "FROM prediction_rows WHERE request_id = 'full'"
        ).one()
    assert row[0] == "v1" and row[1] == 0 and row[5] == "setosa"
    assert np.frombuffer(row[2], dtype=np.float32).tolist() == pytest.approx([5.1, 3.5, 1.4, 0.2])
    # Statistics exactly as the profile measures them (float64 of the served float32 row).
    expected = np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32).astype(np.float64)
    assert np.frombuffer(row[3], dtype=np.float64).tolist() == expected.tolist()
    assert np.frombuffer(row[4], dtype=np.float32).tolist() == pytest.approx([0.4, 0.4, 0.2])


def test_writer_stop_writes_what_is_queued(store: Store, iris: CardedVersion) -> None:
    writer = _writer(store)
    writer.start()
    writer.submit(*_record(iris, "last", 1))
    writer.stop(timeout_s=60)
    assert store.prediction("iris-knn", "last", "")


def test_a_dead_writer_process_drops_counts_and_is_replaced(
    store: Store, iris: CardedVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.monitoring.writer.RESTART_BACKOFF_S", 0.0)
    dropped: list[int] = []
    writer = _writer(store, on_drop=dropped.append)
    writer.start()
    try:
        writer.submit(*_record(iris, "first", 1))
        assert writer.wait_written("first", timeout_s=60)
        child = writer._child
        assert child is not None
        child.process.kill()
        child.process.wait()
        writer.submit(*_record(iris, "lost", 2))
        assert writer.wait_written("lost", timeout_s=60)
        writer.submit(*_record(iris, "after", 1))
        assert writer.wait_written("after", timeout_s=60)
    finally:
        writer.stop()
    # The batch sent to the dead process was lost and counted, or (when the death was
    # seen before sending) written by its replacement; the next one is written either way.
    assert store.prediction("iris-knn", "after", "")
    assert dropped == [] if store.prediction("iris-knn", "lost", "") else dropped == [2]


def test_a_version_whose_statistics_fail_loses_only_its_rows(
    store: Store, iris: CardedVersion, tmp_path: Path
) -> None:
    folder = COMMITTED_MODELS / "imdb-sentiment" / COMMITTED_VERSION
    # The card, but a folder without its vocabulary: text statistics cannot be computed.
    broken = _carded("imdb-sentiment", 2, tmp_path, ModelCard.read(folder))
    dropped: list[int] = []
    writer = _writer(store, on_drop=dropped.append)
    writer.start()
    try:
        writer.submit(
            "text", broken, "", "v1", time.time(), ["a fine film"], np.array([[0.2, 0.8]])
        )
        writer.submit(*_record(iris, "tabular", 1))
        assert writer.wait_written("tabular", timeout_s=60)
    finally:
        writer.stop()
    assert dropped == [1]
    assert store.prediction("iris-knn", "tabular", "") and not store.prediction(
        "imdb-sentiment", "text", ""
    )


def test_an_oversize_input_is_stored_without_its_compact_form() -> None:
    from app.monitoring.profile import StatisticsComputer
    from app.monitoring.writer_process import Group, to_rows

    folder = COMMITTED_MODELS / "imdb-sentiment" / COMMITTED_VERSION
    card = ModelCard.read(folder)
    computer = StatisticsComputer(card, folder)
    group = Group(
        "imdb-sentiment",
        1,
        ["r"],
        ["key"],
        ["v1"],
        [1.0],
        [2],
        ["a fine film", "great " * 5000],
        np.array([[0.2, 0.8], [0.1, 0.9]]),
    )
    rows, lost, _, omitted = to_rows([group], {("imdb-sentiment", 1): computer}, 1024)
    assert (lost, omitted) == (0, 1)
    assert rows[0][7] is not None and rows[1][7] is None  # features column
    assert rows[1][1] == "key"  # the caller column

"""Monitoring internals: drift statistics, the Wilson interval, input statistics, the store,
the writer's bounds and the payload log's events."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.monitoring.database import database_url
from app.monitoring.payload_log import PayloadLogger
from app.monitoring.profile import (
    CategoricalReference,
    continuous_reference,
    image_statistics,
)
from app.monitoring.stats import categorical_drift, continuous_drift, psi, wilson_interval
from app.monitoring.store import Store
from app.repository import CardedVersion
from app.schemas.card import ModelCard
from app.tasks import CLASSIFICATION, REGRESSION
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION
from tests.monitoring_fixtures import _record, _writer

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- statistics
def test_wilson_interval_known_values() -> None:
    # Wilson 95% for 8/10: (0.4902, 0.9433) (Newcombe 1998, method 3).
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # More evidence, a narrower interval around the same proportion.
    wide, narrow = wilson_interval(90, 100), wilson_interval(900, 1000)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_psi_is_zero_for_equal_shares_and_large_for_a_shift() -> None:
    shares = np.full(10, 0.1)
    assert psi(shares, shares) == pytest.approx(0.0)
    shifted = np.array([0, 0, 0, 0, 0, 0.1, 0.1, 0.2, 0.3, 0.3])
    assert psi(shifted, shares) > 1.0


def test_continuous_drift_flags_a_shift_and_not_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    reference = continuous_reference(rng.normal(0, 1, 5000))
    same = continuous_drift("x", rng.normal(0, 1, 200), reference, alpha=0.001, psi_threshold=0.25)
    assert not same.flag and same.p_value > 0.001 and same.window_rows == 200
    moved = continuous_drift(
        "x", rng.normal(1.5, 1, 200), reference, alpha=0.001, psi_threshold=0.25
    )
    assert moved.flag and moved.p_value < 1e-10 and moved.score > 0.25
    assert moved.test == "ks"


def test_drift_flag_needs_both_significance_and_size() -> None:
    rng = np.random.default_rng(1)
    reference = continuous_reference(rng.normal(0, 1, 5000))
    # A tiny shift over a huge window: significant, but PSI says it is harmless.
    small = continuous_drift(
        "x", rng.normal(0.1, 1, 50_000), reference, alpha=0.001, psi_threshold=0.25
    )
    assert small.p_value < 0.001 and not small.flag


def test_categorical_drift_uses_chi_squared() -> None:
    reference = CategoricalReference(categories=["a", "b"], shares=[0.5, 0.5])
    even = categorical_drift("label", ["a", "b"] * 100, reference, alpha=0.001, psi_threshold=0.25)
    assert even.p_value == pytest.approx(1.0) and not even.flag
    skewed = categorical_drift(
        "label", ["a"] * 190 + ["b"] * 10, reference, alpha=0.001, psi_threshold=0.25
    )
    assert skewed.flag and skewed.test == "chi-squared"


def test_image_statistics() -> None:
    blank = np.zeros((1, 28, 28))
    assert image_statistics(blank, 255).tolist() == [[0.0, 0.0, 0.0]]
    dot = np.zeros((1, 28, 28))
    dot[0, 14, 14] = 255
    ink, mean, spread = image_statistics(dot, 255)[0]
    assert ink == pytest.approx(1 / 784) and mean == pytest.approx(1 / 784)
    assert spread == pytest.approx(0.0)
    ring = np.zeros((1, 28, 28))
    ring[0, 4, 14] = ring[0, 24, 14] = 255  # two dots 10 pixels from their centre
    assert image_statistics(ring, 255)[0, 2] == pytest.approx(10.0)


def test_card_must_list_its_profile(tmp_path: Path) -> None:
    folder = COMMITTED_MODELS / "iris-knn" / COMMITTED_VERSION
    card = json.loads((folder / "card.json").read_text())
    card["profile_file"] = "missing.json"
    with pytest.raises(ValueError, match="profile_file"):
        ModelCard.model_validate(card)


# ---------------------------------------------------------------------- store
def _row(
    request_id: str,
    index: int,
    predicted: str = "a",
    created_at: float = 1000.0,
    caller: str = "",
    features: bytes = b"\x00",
) -> tuple[Any, ...]:
    # INSERT_COLUMNS order.
    stats = np.array([1.0]).tobytes()
    probabilities = np.array([0.9, 0.1], dtype=np.float32).tobytes()
    return (
        request_id,
        caller,
        "m",
        1,
        "v1",
        index,
        created_at,
        features,
        stats,
        probabilities,
        predicted,
    )


def test_store_feedback_round_trip_and_idempotence(store: Store) -> None:
    store.insert_rows([_row("r1", 0, "a"), _row("r1", 1, "b"), _row("r2", 0, "a")])
    rows = store.prediction("m", "r1", "")
    assert [(version, label) for _, version, label in rows] == [(1, "a"), (1, "b")]
    assert store.prediction("m", "unknown", "") == []
    assert store.prediction("other-model", "r1", "") == []
    store.set_feedback({rows[0][0]: "a", rows[1][0]: "a"})
    assert store.counts("m", 1) == (3, 2, 1)
    first = store.recent_feedback("m", 1, 10)
    store.set_feedback({rows[0][0]: "a", rows[1][0]: "a"})  # the same again
    assert store.counts("m", 1) == (3, 2, 1)
    assert store.recent_feedback("m", 1, 10) == first
    assert store.confusion("m", 1) == {("a", "a"): 1, ("a", "b"): 1}


def test_a_regressor_s_true_values_do_not_grow_the_tallies(store: Store) -> None:
    # A regressor's rows carry no predicted label; each truth is a distinct value (JSON).
    store.insert_rows([_row("r", i, predicted="", created_at=1.0) for i in range(5)])
    rows = store.prediction("m", "r", "")
    store.set_feedback({row[0]: json.dumps([float(i) + 0.5]) for i, row in enumerate(rows[:4])})
    store.set_feedback({rows[0][0]: "[9.0]"})  # a corrected value moves no tally
    assert store.counts("m", 1) == (5, 4, 0)
    assert store.confusion("m", 1) == {("*", ""): 4}
    assert [json.loads(t) for _, t in store.recent_truths("m", 1, 10)][-1] == [9.0]
    with store.engine.connect() as connection:
        tallies = connection.exec_driver_sql("SELECT COUNT(*) FROM prediction_tallies").scalar()
    assert tallies == 2  # ("", "") and ("*", ""), not one per true value
    assert store.prune(max_age_s=None, max_rows=1) == 4
    assert store.counts("m", 1) == (1, 0, 0)


def test_store_newest_prediction_wins_for_a_reused_request_id(store: Store) -> None:
    store.insert_rows([_row("dup", 0, "a", created_at=1.0)])
    store.insert_rows([_row("dup", 0, "b", created_at=2.0), _row("dup", 1, "b", created_at=2.0)])
    assert [label for _, _, label in store.prediction("m", "dup", "")] == ["b", "b"]


def test_request_ids_are_per_caller_and_an_admin_sees_every_caller(store: Store) -> None:
    # Two callers use the same request id: each names its own prediction only.
    store.insert_rows([_row("same", 0, "a", created_at=1.0, caller="key-a")])
    store.insert_rows([_row("same", 0, "b", created_at=2.0, caller="key-b")])
    assert [label for _, _, label in store.prediction("m", "same", "key-a")] == ["a"]
    assert [label for _, _, label in store.prediction("m", "same", "key-b")] == ["b"]
    assert store.prediction("m", "same", "key-c") == []
    assert [label for _, _, label in store.prediction("m", "same", None)] == ["b"]  # admin
    assert store.counts("m", 1, "key-a") == (1, 0, 0)
    assert store.counts("m", 1) == (2, 0, 0)


def test_store_retention_by_age_and_rows(store: Store) -> None:
    now = time.time()
    store.insert_rows([_row(f"old{i}", 0, created_at=now - 3600) for i in range(3)])
    store.insert_rows([_row(f"new{i}", 0, created_at=now) for i in range(5)])
    assert store.prune(max_age_s=60, max_rows=None) == 3
    assert store.prune(max_age_s=None, max_rows=2) == 3
    assert store.counts("m", 1)[0] == 2
    assert store.prediction("m", "new4", "") and not store.prediction("m", "new0", "")


# ---------------------------------------------------------------------- writer
def test_writer_drops_and_counts_when_full_and_never_blocks(
    store: Store, iris: CardedVersion
) -> None:
    dropped: list[int] = []
    # Never started: nothing drains the queue.
    writer = _writer(store, max_rows=5, on_drop=dropped.append)
    assert writer.submit(*_record(iris, "a", 3))
    assert writer.submit(*_record(iris, "b", 2))
    started = time.perf_counter()
    assert not writer.submit(*_record(iris, "c", 1))
    assert time.perf_counter() - started < 0.1
    assert dropped == [1] and writer.queued_rows == 5


def test_writer_queue_is_bounded_in_bytes_too(store: Store, iris: CardedVersion) -> None:
    from app.preprocessing.text import EncodedText

    dropped: list[int] = []
    writer = _writer(store, max_rows=100_000, on_drop=dropped.append, max_queue_bytes=1 << 20)
    review = EncodedText("word " * 10_000, np.array([1]))  # 50,000 characters
    accepted = sum(
        writer.submit("r", iris, "", "v1", time.time(), [review] * 10, np.ones((10, 3)))
        for _ in range(10)
    )
    assert accepted == 2  # 2 x 500,000 characters fit in 1 MiB, the third does not
    assert sum(dropped) == 80


def test_feedback_does_not_wait_for_a_stuck_writer(store: Store, iris: CardedVersion) -> None:
    writer = _writer(store)  # not started: its batch never commits
    writer.submit(*_record(iris, "queued", 1))
    # A batch that has been in flight for a minute: the database is stuck.
    writer._writing_since = time.monotonic() - 60
    started = time.perf_counter()
    assert not writer.wait_written("queued", timeout_s=30)
    assert time.perf_counter() - started < 5


def test_queued_rows_are_copied_exactly_whatever_their_route(iris: CardedVersion) -> None:
    from app.monitoring.writer_queue import _Pending
    from app.preprocessing.text import EncodedText

    pending = _Pending(iris, capacity=1)  # grows as rows arrive
    single = np.array([[0.1, 0.2, 0.7]])
    pending.add("a", "", "v1", 1.0, [np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32)], single)
    wide = [np.array([4.4, 3.0, 1.3, 0.2]), np.array([6.7, 3.0, 5.2, 2.3])]  # float64 rows
    pending.add("b", "", "v2", 2.0, wide, np.array([[0.8, 0.1, 0.1], [0.0, 0.1, 0.9]]))
    group = pending.group()
    assert group.rows.dtype == np.float64 and group.rows.shape == (3, 4)
    narrow = np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32)
    assert group.rows[0].tolist() == narrow.astype(np.float64).tolist()
    assert group.rows[1:].tolist() == [row.tolist() for row in wide]  # not rounded to float32
    assert group.probabilities.tolist() == [[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.0, 0.1, 0.9]]
    assert (group.request_ids, group.routes, group.counts) == (["a", "b"], ["v1", "v2"], [1, 2])
    # A row of another shape: every row kept, in order, as objects.
    pending.add("c", "", "v1", 3.0, [np.array([1.0, 2.0])], np.array([[1.0, 0.0, 0.0]]))
    rows = pending.group().rows
    assert isinstance(rows, list) and len(rows) == 4 and rows[3].tolist() == [1.0, 2.0]
    assert rows[2].tolist() == wide[1].tolist()
    # A request whose rows differ in shape among themselves: kept as objects too.
    mixed = _Pending(iris, capacity=4)
    ragged = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0])]
    mixed.add("m", "", "v1", 1.0, ragged, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    kept = mixed.group().rows
    assert isinstance(kept, list) and [row.tolist() for row in kept] == [r.tolist() for r in ragged]
    texts = _Pending(iris, capacity=4)
    texts.add("t", "", "v1", 1.0, [EncodedText("a fine film", np.array([2]))], single)
    assert texts.group().rows == ["a fine film"]


# ---------------------------------------------------------------------- payload log
def _classes(*labels: str) -> Any:
    """The classification encoder of a card with these labels (what the monitor passes)."""
    return functools.partial(CLASSIFICATION.encode_v1, SimpleNamespace(labels=list(labels)))  # type: ignore[arg-type]


def test_payload_log_file_holds_cloud_events(tmp_path: Path) -> None:
    path = tmp_path / "events" / "payloads.jsonl"
    logger = PayloadLogger(str(path), max_events=10, on_drop=print)
    logger.start()
    logger.submit(
        "req-1",
        "iris-knn",
        1,
        [np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32)],
        _classes("setosa", "versicolor"),
        np.array([[0.75, 0.25]]),
    )
    logger.stop()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["type"] for e in events] == [
        "io.synergy.inference.request",
        "io.synergy.inference.response",
    ]
    for event in events:
        assert event["specversion"] == "1.0" and event["requestid"] == "req-1"
        assert event["source"] == "/synergy-serve/models/iris-knn/versions/1"
    # CloudEvents: source + id unique per event, whatever X-Request-ID the client reused.
    assert len({e["id"] for e in events}) == 2
    assert np.allclose(events[0]["data"]["instances"], [[5.1, 3.5, 1.4, 0.2]])
    assert events[1]["data"]["predictions"] == [
        {"label": "setosa", "probabilities": {"setosa": 0.75, "versicolor": 0.25}, "warnings": []}
    ]


def test_payload_log_writes_a_regressor_s_values_not_labels(tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    logger = PayloadLogger(str(path), max_events=10, on_drop=print)
    logger.start()
    card = SimpleNamespace(labels=["price"])
    encode = functools.partial(REGRESSION.encode_v1, card)  # type: ignore[arg-type]
    logger.submit("req-1", "houses", 1, [np.ones(3)], encode, np.array([[251.5], [7.0]]))
    logger.stop()
    response = [json.loads(line) for line in path.read_text().splitlines()][1]
    assert response["data"]["predictions"] == [
        {"value": 251.5, "warnings": []},
        {"value": 7.0, "warnings": []},
    ]


def test_payload_log_drops_when_full() -> None:
    dropped: list[int] = []
    logger = PayloadLogger("stdout", max_events=1, on_drop=dropped.append)  # not started
    logger.submit("a", "m", 1, [[1]], _classes("x"), np.ones((1, 1)))
    logger.submit("b", "m", 1, [[1], [2]], _classes("x"), np.ones((2, 1)))
    assert dropped == [2]


def test_payload_log_queue_is_bounded_in_bytes_and_drops_are_counted() -> None:
    dropped: list[int] = []
    logger = PayloadLogger(
        "stdout", max_events=10_000, max_bytes=1024 * 1024, on_drop=dropped.append
    )  # not started: nothing drains the queue
    image = np.zeros((28, 28), dtype=np.float32)  # 3 KB a row
    for index in range(1000):
        logger.submit(f"r{index}", "m", 1, [image] * 10, _classes("x"), np.ones((10, 1)))
    assert logger.held_bytes <= 1024 * 1024
    assert sum(dropped) > 0 and len(logger._queue) < 1000


def test_payload_log_ids_are_unique_per_event_even_for_a_reused_request_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    logger = PayloadLogger(str(path), max_events=100, on_drop=print)
    logger.start()
    for _ in range(3):
        logger.submit("same-id", "m", 1, [np.ones(2)], _classes("x"), np.ones((1, 1)))
    logger.stop()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) == 6 and {e["requestid"] for e in events} == {"same-id"}
    assert len({(e["source"], e["id"]) for e in events}) == 6


def test_payload_log_caps_each_event_and_rotates_its_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    logger = PayloadLogger(
        str(path),
        max_events=1000,
        on_drop=print,
        max_event_bytes=4096,
        max_file_bytes=64 * 1024,
        backup_files=2,
    )
    logger.start()
    huge = np.zeros((300, 300), dtype=np.float32)  # ~300 KB of JSON as numbers
    small = np.ones(4, dtype=np.float32)
    logger.submit("huge", "m", 1, [huge], _classes("x"), np.ones((1, 1)))
    for index in range(400):
        logger.submit(f"s{index}", "m", 1, [small], _classes("x"), np.ones((1, 1)))
    logger.stop(timeout_s=30)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(f.stat().st_size <= 64 * 1024 for f in files)
    lines = [line for f in files for line in f.read_bytes().splitlines()]
    assert all(len(line) <= 4096 for line in lines)
    everything = [json.loads(line) for line in lines]
    assert not any(e["requestid"] == "huge" for e in everything)  # rotated away: oldest


def test_payload_log_event_over_the_cap_keeps_its_envelope(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    logger = PayloadLogger(str(path), max_events=10, on_drop=print, max_event_bytes=2048)
    logger.start()
    logger.submit(
        "big", "m", 1, [np.zeros((100, 100), dtype=np.float32)], _classes("x"), np.ones((1, 1))
    )
    logger.stop()
    request = json.loads(path.read_text().splitlines()[0])
    assert request["data"]["instances"] is None
    assert "SYNERGY_PAYLOAD_LOG_MAX_EVENT_BYTES" in request["data"]["instances_omitted"]


# ---------------------------------------------------------------------- bytes, full disk, file
def test_the_byte_budget_deletes_the_oldest_rows(store: Store) -> None:
    big = b"\x01" * 20_000
    for batch in range(10):
        store.insert_rows([_row(f"r{batch}-{i}", 0, features=big) for i in range(20)])
    assert store.used_bytes() > 3 * 1024 * 1024
    deleted = store.prune_bytes(2 * 1024 * 1024)
    assert deleted > 0
    assert store.used_bytes() <= 2 * 1024 * 1024
    assert store.prediction("m", "r9-19", "") and not store.prediction("m", "r0-0", "")
    assert store.prune_bytes(2 * 1024 * 1024) == 0  # within the budget: nothing more


def test_a_full_disk_makes_room_by_deleting_the_oldest_rows(tmp_path: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from app.monitoring.database import is_disk_full

    store = Store(database_url(None, tmp_path / "store"))
    store.migrate()
    store.ensure_reserve()
    assert store.reserve is not None and store.reserve.exists()

    # SQLite's own "database or disk is full" (SQLITE_FULL): the page limit stands in for
    # the volume's size.
    @event.listens_for(store.engine, "connect")
    def _limit(connection: Any, _: Any) -> None:
        connection.execute("PRAGMA max_page_count=400")

    store.engine.dispose()
    big = b"\x02" * 4000
    failure: OperationalError | None = None
    for batch in range(1000):
        try:
            store.insert_rows([_row(f"f{batch}-{i}", 0, features=big) for i in range(10)])
        except OperationalError as exc:
            failure = exc
            break
    assert failure is not None and is_disk_full(failure)
    assert store.make_room(share=0.2) > 0
    assert store.reserve.exists()  # freed for the delete, then taken again
    store.insert_rows([_row("after-full", 0, features=big)])
    assert store.prediction("m", "after-full", "")


def test_a_deleted_sqlite_file_is_detected_and_replaced(store: Store) -> None:
    store.insert_rows([_row("before", 0)])
    assert not store.file_replaced()
    assert store.path is not None
    store.path.unlink()
    assert store.file_replaced()
    store.reopen()
    assert not store.file_replaced()
    assert store.prediction("m", "before", "") == []  # gone, and the store says so


def _brute_force(store: Store, caller: str | None) -> tuple[tuple[int, int, int], Any]:
    """counts() and confusion() recomputed from the rows themselves."""
    where = "" if caller is None else f" AND caller = '{caller}'"
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT true_label, predicted FROM prediction_rows WHERE model = 'm' AND version = 1"
            + where
        ).all()
    labelled = [(t, p) for t, p in rows if t is not None]
    confusion: dict[tuple[str, str], int] = {}
    for key in labelled:
        confusion[key] = confusion.get(key, 0) + 1
    return (len(rows), len(labelled), sum(t == p for t, p in labelled)), confusion


def test_the_tallies_always_equal_counting_the_rows(store: Store) -> None:
    import random

    rng = random.Random(24)
    made = 0
    for step in range(60):
        action = rng.choice(["insert", "insert", "feedback", "prune", "budget"])
        if action == "insert":
            store.insert_rows(
                [
                    _row(
                        f"r{made + i}",
                        0,
                        rng.choice("ab"),
                        created_at=time.time() - rng.choice([0, 7200]),
                        caller=rng.choice(["k1", "k2"]),
                        features=b"\x03" * rng.randint(1, 3000),
                    )
                    for i in range(rng.randint(1, 30))
                ]
            )
            made += 30
        elif action == "feedback":
            with store.engine.connect() as connection:
                ids = [r[0] for r in connection.exec_driver_sql("SELECT id FROM prediction_rows")]
            if ids:
                chosen = rng.sample(ids, min(len(ids), 10))
                store.set_feedback({i: rng.choice("ab") for i in chosen})
        elif action == "prune":
            store.prune(
                max_age_s=3600 if rng.random() < 0.3 else None, max_rows=rng.randint(5, 200)
            )
        else:
            store.prune_bytes(1024 * 1024)
        for caller in (None, "k1", "k2"):
            expected_counts, expected_confusion = _brute_force(store, caller)
            assert store.counts("m", 1, caller) == expected_counts, (step, action, caller)
            assert store.confusion("m", 1, caller) == expected_confusion, (step, action)


def test_the_migration_backfills_the_tallies_of_stored_rows(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from app.monitoring.database import MIGRATIONS

    store = Store(database_url(None, tmp_path / "old"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        # Rows as a server before the tallies wrote them (no tallies kept).
        connection.exec_driver_sql(
            "INSERT INTO prediction_rows (request_id, caller, model, version, route, row_index, "
            "created_at, features, stats, probabilities, predicted, true_label) VALUES "
            "('x', '', 'm', 1, 'v1', 0, 1.0, NULL, x'00', x'00', 'a', 'a'), "
            "('y', '', 'm', 1, 'v1', 0, 1.0, NULL, x'00', x'00', 'b', NULL)"
        )
    store.migrate()
    assert store.counts("m", 1) == (2, 1, 1)
    assert store.confusion("m", 1) == {("a", "a"): 1}

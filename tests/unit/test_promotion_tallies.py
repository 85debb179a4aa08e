"""The comparisons' running tallies (app.monitoring.tallies) equal a recomputation from
scratch, whatever the order of predictions, shadow answers and late or corrected feedback,
for labels and for values; and a poll reads only what is new."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.monitoring.comparers import LABELS, VALUES
from app.monitoring.database import database_url
from app.monitoring.evidence import Evidence, shadow_feedback_query
from app.monitoring.store import Store
from app.monitoring.tallies import Tallies

MODEL = "m"
CLASSES = ["a", "b", "c"]


def _store(folder: Path) -> Store:
    store = Store(database_url(None, folder))
    store.migrate()
    return store


def _predicted_row(
    request: str, version: int, output: float, label: str, created_at: float
) -> tuple[Any, ...]:
    # INSERT_COLUMNS order.
    return (
        request,
        "",
        MODEL,
        version,
        f"v{version}",
        0,
        created_at,
        b"\x00",
        np.array([1.0]).tobytes(),
        np.array([output], dtype=np.float32).tobytes(),
        label,
    )


class World:
    """A store fed by random operations, and the truth kept next to it in plain Python."""

    def __init__(self, store: Store, values: bool) -> None:
        self.store, self.values = store, values
        self.evidence = Evidence(store)
        self.requests = 0
        self.row_ids: list[int] = []

    def answer(self, draw: float) -> tuple[float, str, str]:
        """(stored output, label, shadow's compared text) for a draw in [0, 1)."""
        value = round(100 * draw, 3)
        label = CLASSES[int(draw * 3)]
        return value, ("" if self.values else label), (repr(value) if self.values else label)

    def predict(self, version: int, draw: float, shadow_draw: float | None) -> None:
        request = f"r{self.requests}"
        self.requests += 1
        value, label, compared = self.answer(draw)
        # Rows stored long ago are final at once; recent ones are read again a poll later.
        created_at = 1000.0 if self.requests % 3 == 0 else time.time()
        self.store.insert_rows([_predicted_row(request, version, value, label, created_at)])
        if shadow_draw is not None:
            _, _, shadow = self.answer(shadow_draw)
            self.evidence.insert_shadow_rows(
                [
                    (
                        MODEL,
                        request,
                        0,
                        1,
                        2,
                        compared,
                        shadow if shadow_draw >= 0.05 else None,
                        created_at,
                    )
                ]
            )

    def feedback(self, pick: float, draw: float) -> None:
        rows = self._ids()
        if not rows:
            return
        row_id = rows[int(pick * len(rows))]
        value, label, _ = self.answer(draw)
        truth = json.dumps([value]) if self.values else (CLASSES[int(draw * 3)])
        self.store.set_feedback({row_id: truth})
        del label

    def _ids(self) -> list[int]:
        with self.store.engine.connect() as connection:
            return [
                r[0]
                for r in connection.exec_driver_sql("SELECT id FROM prediction_rows ORDER BY id")
            ]


operation = st.one_of(
    st.tuples(
        st.just("predict"),
        st.sampled_from([1, 2]),
        st.floats(0, 0.999),
        st.one_of(st.none(), st.floats(0, 0.999)),
    ),
    st.tuples(st.just("feedback"), st.floats(0, 0.999), st.floats(0, 0.999), st.none()),
    st.tuples(st.just("poll"), st.none(), st.none(), st.none()),
)


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _counts(tallies: Tallies, comparer: Any) -> tuple[Any, Any, Any]:
    shadow = tallies.shadow(comparer, MODEL, 2, 1, 5.0 if comparer is VALUES else None)
    candidate, baseline = tallies.canary(comparer, MODEL, 2, 1)
    return shadow, candidate, baseline


def _same(incremental: Any, scratch: Any) -> None:
    for a, b in zip(incremental, scratch, strict=True):
        left, right = vars(a), vars(b)
        assert left.keys() == right.keys()
        for key, value in left.items():
            if isinstance(value, float):
                assert value == pytest.approx(right[key], rel=1e-9, abs=1e-6), key
            else:
                assert value == right[key], key


@settings(max_examples=30, deadline=None)
@given(values=st.booleans(), operations=st.lists(operation, min_size=1, max_size=40))
def test_incremental_tallies_equal_a_recomputation_from_scratch(
    values: bool, operations: list[tuple[Any, ...]]
) -> None:
    comparer = VALUES if values else LABELS
    with tempfile.TemporaryDirectory() as name:
        store = _store(Path(name))
        world = World(store, values)
        kept = Tallies(world.evidence, batch_rows=3)  # small batches: several reads a poll
        for kind, first, second, third in [*operations, ("poll", None, None, None)]:
            if kind == "predict":
                world.predict(first, second, third)
            elif kind == "feedback":
                world.feedback(first, second)
            else:
                incremental = _counts(kept, comparer)
                scratch = _counts(Tallies(world.evidence, batch_rows=1000), comparer)
                _same(incremental, scratch)
        store.engine.dispose()


def test_the_label_tallies_match_counting_by_hand(folder: Path) -> None:
    store = _store(folder)
    world = World(store, values=False)
    tallies = Tallies(world.evidence, batch_rows=100)
    rng = np.random.default_rng(3)
    for _ in range(60):
        world.predict(int(rng.integers(1, 3)), float(rng.random()), float(rng.random()))
    for _ in range(50):  # late feedback, some rows twice (a correction)
        world.feedback(float(rng.random()), float(rng.random()))
    shadow, candidate, baseline = _counts(tallies, LABELS)
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT version, predicted, true_label, request_id FROM prediction_rows ORDER BY id"
        ).all()
        pairs = connection.exec_driver_sql(
            "SELECT request_id, primary_predicted, shadow_predicted FROM shadow_pairs"
        ).all()
    first_v2 = min(i for i, r in enumerate(rows) if r[0] == 2)
    for counts, version in ((candidate, 2), (baseline, 1)):
        mine = [r for r in rows[first_v2:] if r[0] == version]
        assert counts.rows == len(mine)
        assert counts.feedback_rows == sum(r[2] is not None for r in mine)
        assert counts.correct == sum(r[2] == r[1] for r in mine)
    truth = {r[3]: r[2] for r in rows if r[0] == 1}
    answered = [p for p in pairs if p[2] is not None]
    assert shadow.rows == len(answered)
    assert shadow.candidate_failed == len(pairs) - len(answered)
    assert shadow.agreed == sum(p[1] == p[2] for p in answered)
    judged = [(p[1] == truth[p[0]], p[2] == truth[p[0]]) for p in answered if truth.get(p[0])]
    assert shadow.baseline_only == sum(b and not c for b, c in judged)
    assert shadow.candidate_only == sum(c and not b for b, c in judged)
    assert shadow.feedback_rows == len(judged)


class CountingEvidence(Evidence):
    """Evidence that counts the rows its reads return."""

    read = 0

    def rows_after(self, *args: Any) -> Any:
        found = super().rows_after(*args)
        self.read += len(found)
        return found

    def feedback_after(self, *args: Any) -> Any:
        found = super().feedback_after(*args)
        self.read += len(found)
        return found


def test_a_poll_reads_what_is_new_not_the_history(folder: Path) -> None:
    store = _store(folder)
    world = World(store, values=True)
    world.predict(2, 0.5, None)
    for i in range(300):
        world.predict(1 + i % 2, (i % 97) / 100, None)
    evidence = CountingEvidence(store)
    tallies = Tallies(evidence, batch_rows=1000)
    tallies.canary(VALUES, MODEL, 2, 1)
    assert evidence.read >= 300  # the first poll builds the tally from the history
    tallies.canary(VALUES, MODEL, 2, 1)  # reads again the previous poll's recent rows
    evidence.read = 0
    for i in range(4):
        world.predict(1 + i % 2, 0.1, None)
    tallies.canary(VALUES, MODEL, 2, 1)
    assert evidence.read == 4  # the 4 new rows, not the 301 stored before them
    rows = world._ids()
    store.set_feedback({rows[0]: "[1.0]", rows[-1]: "[2.0]"})
    evidence.read = 0
    candidate, _ = tallies.canary(VALUES, MODEL, 2, 1)
    assert evidence.read <= 4 + 2  # again the previous poll's rows and the new feedback
    # Version 2's first row (50.0, truth 1.0) and its newest (10.0, truth 2.0).
    assert candidate.feedback_rows == 2 and candidate.abs_sum == pytest.approx(49.0 + 8.0)


def test_a_shadow_pair_stored_after_its_feedback_is_counted(folder: Path) -> None:
    # The shadow's pairs are stored at each poll, so feedback may come before its pair.
    store = _store(folder)
    world = World(store, values=False)
    tallies = Tallies(world.evidence, batch_rows=100, poll_s=10.0)
    world.predict(1, 0.1, None)  # the baseline answers "a"
    store.set_feedback({world._ids()[0]: "a"})
    assert _counts(tallies, LABELS)[0].feedback_rows == 0
    world.evidence.insert_shadow_rows([(MODEL, "r0", 0, 1, 2, "a", "b", time.time())])
    shadow = _counts(tallies, LABELS)[0]
    assert (shadow.rows, shadow.feedback_rows, shadow.baseline_only) == (1, 1, 1)


def test_a_feedback_row_finds_its_shadow_pair_by_the_pairs_key(folder: Path) -> None:
    # A scan of the version's pairs per feedback row made each poll cost the history.
    store = _store(folder)
    query = shadow_feedback_query(MODEL, 2, 1, 0.0).compile(
        store.engine, compile_kwargs={"literal_binds": True}
    )
    with store.engine.connect() as connection:
        plan = " | ".join(
            str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
        )
    assert "SEARCH shadow_pairs USING INDEX ix_shadow_pairs_request" in plan, plan
    assert "ix_prediction_rows_feedback_at" in plan, plan

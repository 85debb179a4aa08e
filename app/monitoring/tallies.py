"""Running tallies of the comparisons: each poll reads only what is new in the store.

One tally per (model, candidate, baseline), kept by each replica in memory from the store's
rows (so replicas sharing PostgreSQL each keep their own, from the same rows):
- rows: read by id after a watermark. PostgreSQL may commit ids out of order (two replicas'
  writers), so each poll reads again from the watermark of the poll before (`SeenIds`) and
  skips the ids it counted: a row committed up to one poll late is still counted, once.
  Rows stored more than `SETTLED_S` before a poll are final at once (an id is taken when its
  row is inserted, and an insert commits within seconds), so the first poll, which reads
  the history, does not keep the history's ids.
- feedback: read by feedback time after a watermark less an overlap: `FEEDBACK_OVERLAP_S`
  (clock skew between replicas, commits out of order) plus two poll intervals, so that a
  shadow pair stored after its feedback (the pairs are stored at each poll) is joined to it
  by a later read. Each row's contribution (a vector of sums) is
  kept by row id (`Contributions`), so reading a row again, or a corrected truth, replaces
  its contribution instead of adding it: the tallies equal a recomputation from scratch.
Memory: the contributions older than the overlap are forgotten beyond
`REMEMBERED_FEEDBACK` rows per tally (then only a truth corrected after that is counted
twice), at most `MAX_TALLIES` tallies (the least recently used is dropped and rebuilt from
the store when asked again). A row deleted by retention stays counted.

All methods block (database I/O): the promoter calls them from its one worker thread.
"""

from __future__ import annotations

import collections
import copy
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from app.monitoring.comparison import ShadowCounts, VersionCounts
from app.monitoring.evidence import Evidence

FEEDBACK_OVERLAP_S = 60.0
SETTLED_S = 60.0
REMEMBERED_FEEDBACK = 100_000
MAX_TALLIES = 16

Vector = tuple[float, ...]
C = TypeVar("C")
V = TypeVar("V", bound=VersionCounts)


class SeenIds:
    """Which row ids after `low` were counted; `low` moves to the poll before's newest id."""

    def __init__(self, low: int) -> None:
        self.low = low
        self._newest_before = low
        self._seen: set[int] = set()

    def fresh(self, row_id: int) -> bool:
        """Whether `row_id` is not counted yet (and mark it counted)."""
        if row_id <= self.low or row_id in self._seen:
            return False
        self._seen.add(row_id)
        return True

    def end_poll(self, newest: int, settled: int) -> None:
        """The ids up to the previous poll's newest had a poll's time to commit, and those up
        to `settled` (stored long before): final."""
        self.low = max(self.low, self._newest_before, settled)
        self._newest_before = max(self._newest_before, newest)
        self._seen = {i for i in self._seen if i > self.low}


class Contributions:
    """The sum of per-row vectors, each row's replaceable (see the module docstring)."""

    def __init__(self, width: int) -> None:
        self.total = [0.0] * width
        self._rows: collections.OrderedDict[int, tuple[Vector, float]] = collections.OrderedDict()

    def put(self, key: int, vector: Vector, at: float, keep_after: float) -> None:
        """Row `key` now contributes `vector` (its feedback given at time `at`)."""
        old = self._rows.pop(key, None)
        if old is not None:
            for i, value in enumerate(old[0]):
                self.total[i] -= value
        for i, value in enumerate(vector):
            self.total[i] += value
        self._rows[key] = (vector, at)
        while len(self._rows) > REMEMBERED_FEEDBACK:
            _, (_, oldest_at) = next(iter(self._rows.items()))
            if oldest_at >= keep_after:
                break
            self._rows.popitem(last=False)


class Comparer(Protocol[C, V]):
    """What a task's comparison counts (`app.monitoring.comparers`)."""

    shadow_width: int
    version_width: int

    def shadow_counts(self, tolerance: float | None) -> C: ...

    def shadow_row(self, counts: C, primary: str, shadow: str | None) -> None: ...

    def shadow_feedback(self, primary: str, shadow: str | None, truth: str) -> Vector | None: ...

    def shadow_total(self, counts: C, total: list[float]) -> None: ...

    def version_counts(self) -> V: ...

    def version_feedback(self, predicted: str, outputs: bytes, truth: str) -> Vector | None: ...

    def version_total(self, counts: V, total: list[float]) -> None: ...


class _Tally(Generic[C]):
    def __init__(self, counts: C, low: int, width: int) -> None:
        self.counts = counts
        self.ids = SeenIds(low)
        self.feedback = Contributions(width)
        self.feedback_after = float("-inf")  # newest feedback time read


Row = tuple[Any, ...]  # (id, stored at, ..., truth, feedback time)


def _advance(
    tally: _Tally[Any],
    read_rows: Callable[[int], list[Row]],
    read_feedback: Callable[[float], list[Row]],
    count_row: Callable[[Row], None],
    vector_of: Callable[[Row], Vector | None],
    batch: int,
    overlap_s: float,
) -> None:
    """One poll of a tally: the new rows (in batches of `batch`), then the feedback given
    since the newest read less `overlap_s`."""
    cursor, newest = tally.ids.low, tally.ids.low
    settled, settled_before = tally.ids.low, time.time() - SETTLED_S
    keep_after = tally.feedback_after - overlap_s

    def feedback(rows: Iterable[Row]) -> None:
        for row in rows:
            vector = vector_of(row) if row[-2] is not None else None
            if vector is not None:
                at = float(row[-1] or 0.0)
                tally.feedback.put(int(row[0]), vector, at, keep_after)
                tally.feedback_after = max(tally.feedback_after, at)

    while True:
        rows = read_rows(cursor)
        for row in rows:
            if tally.ids.fresh(int(row[0])):
                count_row(row)
            if row[1] < settled_before:
                settled = max(settled, int(row[0]))
        feedback(rows)
        if rows:
            cursor = newest = max(newest, int(rows[-1][0]))
        if len(rows) < batch:
            break
    tally.ids.end_poll(newest, settled)
    feedback(read_feedback(keep_after))


class Tallies:
    """The tallies of one replica (see the module docstring)."""

    def __init__(self, evidence: Evidence, batch_rows: int, poll_s: float = 0.0) -> None:
        self.evidence = evidence
        self.batch_rows = batch_rows
        self.overlap_s = FEEDBACK_OVERLAP_S + 2 * poll_s
        self._tallies: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()

    def _get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        tally = self._tallies.pop(key, None)
        if tally is None:
            tally = make()
        self._tallies[key] = tally
        while len(self._tallies) > MAX_TALLIES:
            self._tallies.popitem(last=False)
        return tally

    def shadow(
        self,
        comparer: Comparer[C, Any],
        model: str,
        candidate: int,
        baseline: int,
        tolerance: float | None,
    ) -> C:
        """The shadow's counts, brought up to date (a copy: the tally stays this class's)."""
        key = ("shadow", id(comparer), model, candidate, baseline, tolerance)
        tally: _Tally[C] = self._get(
            key, lambda: _Tally(comparer.shadow_counts(tolerance), 0, comparer.shadow_width)
        )
        ev, batch = self.evidence, self.batch_rows
        _advance(
            tally,
            lambda after: ev.shadow_pairs_after(model, candidate, baseline, after, batch),
            lambda after: ev.shadow_feedback_after(model, candidate, baseline, after),
            lambda row: comparer.shadow_row(tally.counts, row[2], row[3]),
            lambda row: comparer.shadow_feedback(row[2], row[3], row[4]),
            batch,
            self.overlap_s,
        )
        counts = copy.deepcopy(tally.counts)
        comparer.shadow_total(counts, tally.feedback.total)
        return counts

    def canary(
        self, comparer: Comparer[Any, V], model: str, candidate: int, baseline: int
    ) -> tuple[V, V]:
        """(candidate's, baseline's) counts from the candidate's first stored row on."""
        key = ("canary", id(comparer), model, candidate, baseline)
        since = self._get(key, lambda: [None])
        if since[0] is None:
            since[0] = self.evidence.first_row_id(model, candidate)
            if since[0] is None:
                return comparer.version_counts(), comparer.version_counts()
        start: int = since[0]
        out = []
        for version in (candidate, baseline):
            tally: _Tally[V] = self._get(
                (*key, version),
                lambda: _Tally(comparer.version_counts(), start - 1, comparer.version_width),
            )
            self._version(comparer, tally, model, version, start)
            counts = copy.deepcopy(tally.counts)
            comparer.version_total(counts, tally.feedback.total)
            out.append(counts)
        return out[0], out[1]

    def _version(
        self, comparer: Comparer[Any, V], tally: _Tally[V], model: str, version: int, since: int
    ) -> None:
        ev, batch = self.evidence, self.batch_rows

        def count(row: Row) -> None:
            tally.counts.rows += 1

        _advance(
            tally,
            lambda after: ev.rows_after(model, version, after, batch),
            lambda after: ev.feedback_after(model, version, since, after),
            count,
            lambda row: comparer.version_feedback(row[2], row[3], row[4]),
            batch,
            self.overlap_s,
        )


__all__ = ["Comparer", "Contributions", "SeenIds", "ShadowCounts", "Tallies", "VersionCounts"]

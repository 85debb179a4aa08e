"""Off the hot path: a bounded queue of predictions and one thread that writes them in batches.

`submit` is what a request pays: a lock, a length check and an append (no I/O, no
serialisation). When the queue holds `max_rows` rows, the record is dropped and counted
(`synergy_monitoring_dropped_rows_total{sink="store"}`): a slow or unreachable database never
makes a prediction wait or fail. The thread wakes every `flush_interval_s` (or when a batch is
full, or when feedback asks for a request's rows), computes the rows' statistics and compact
form, and inserts them in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from app.monitoring.profile import StatisticsComputer
from app.monitoring.store import Store

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One prediction request: what the request path hands to the writer (a tuple: built on
    the event loop for every request, it must cost next to nothing)."""

    request_id: str
    model: str
    version: int
    route: str
    created_at: float
    rows: list[Any]
    predictions: list[dict[str, Any]]
    computer: Callable[[], StatisticsComputer]


class Writer:
    """The bounded queue and its writer thread (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        max_rows: int,
        batch_rows: int,
        flush_interval_s: float,
        on_drop: Callable[[int], None],
        on_tick: Callable[[], None] | None = None,
        tick_interval_s: float = 60.0,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.on_drop = on_drop
        self.on_tick = on_tick
        self.tick_interval_s = tick_interval_s
        self._queue: deque[Record] = deque()
        self._queued_rows = 0
        self._pending: dict[str, int] = {}  # request id -> records queued or being written
        self._condition = threading.Condition()
        self._flush_now = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written_rows = 0

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="monitoring-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (up to timeout_s), then end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def submit(self, record: Record) -> bool:
        """Queue a record; False (and counted as dropped) when the queue is full."""
        n = len(record.rows)
        with self._condition:
            if self._stopping or self._queued_rows + n > self.max_rows:
                dropped = True
            else:
                dropped = False
                self._queue.append(record)
                self._queued_rows += n
                self._pending[record.request_id] = self._pending.get(record.request_id, 0) + 1
                if self._queued_rows >= self.batch_rows:
                    self._condition.notify_all()
        if dropped:
            self.on_drop(n)
        return not dropped

    def wait_written(self, request_id: str, timeout_s: float) -> bool:
        """Block until this request id has no record queued or being written (flushing now
        rather than at the next interval); False on timeout. Called by feedback, on a worker
        thread, so that feedback sent right after its prediction finds the rows."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while request_id in self._pending:
                self._flush_now = True
                self._condition.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True

    def _take(self) -> list[Record]:
        with self._condition:
            deadline = time.monotonic() + self.flush_interval_s
            while not (self._stopping or self._flush_now or self._queued_rows >= self.batch_rows):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            self._flush_now = False
            taken: list[Record] = []
            rows = 0
            while self._queue and rows < self.batch_rows:
                record = self._queue.popleft()
                rows += len(record.rows)
                taken.append(record)
            self._queued_rows -= rows
            return taken

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_interval_s
        while True:
            records = self._take()
            if records:
                try:
                    self.store.insert_rows(_to_rows(records))
                    self.written_rows += sum(len(r.rows) for r in records)
                except Exception:  # a database error must not end the writer
                    log.exception("writing %d predictions to the store failed", len(records))
                    self.on_drop(sum(len(r.rows) for r in records))
                with self._condition:
                    for record in records:
                        left = self._pending[record.request_id] - 1
                        if left:
                            self._pending[record.request_id] = left
                        else:
                            del self._pending[record.request_id]
                    self._condition.notify_all()
            with self._condition:
                if self._stopping and not self._queue:
                    return
            if self.on_tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.tick_interval_s
                try:
                    self.on_tick()
                except Exception:  # housekeeping retries at the next tick
                    log.exception("monitoring housekeeping failed")


def _to_rows(records: list[Record]) -> list[tuple[Any, ...]]:
    """Records -> store rows (see `Store.insert_rows`): the statistics and compact forms are
    computed once per model version over all its rows of the batch (vectorised)."""
    groups: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        groups.setdefault((record.model, record.version), []).append(record)
    rows: list[tuple[Any, ...]] = []
    for group in groups.values():
        computer = group[0].computer()
        inputs = [row for record in group for row in record.rows]
        measured, features = computer.measure(inputs)
        stats = np.asarray(measured, dtype=np.float64)
        probabilities = np.array(
            [
                list(prediction["probabilities"].values())
                for record in group
                for prediction in record.predictions
            ],
            dtype=np.float32,
        )
        position = 0
        for record in group:
            for index, prediction in enumerate(record.predictions):
                rows.append(
                    (
                        record.request_id,
                        record.model,
                        record.version,
                        record.route,
                        index,
                        record.created_at,
                        features[position],
                        stats[position].tobytes(),
                        probabilities[position].tobytes(),
                        prediction["label"],
                    )
                )
                position += 1
    return rows

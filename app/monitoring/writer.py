"""Off the hot path: a bounded queue of predictions, shipped in batches to a writer process.

`submit` is what a request pays: a lock, a length check, and copies of its rows and
probabilities into its model version's arrays (no statistics, no serialisation). When the
queue holds `max_rows` rows, the request's rows are dropped and counted
(`synergy_monitoring_dropped_rows_total{sink="store"}`): a slow or unreachable database never
makes a prediction wait or fail.

A thread of this process (the shipper) wakes every `flush_interval_s` (or when a batch is
full, or when feedback asks for its rows), takes those arrays and sends them to a child
process (`app.monitoring.writer_process`, started on the
first batch) over a pipe. The child computes the statistics and compact forms and inserts
the rows in one transaction, then answers. The child holds its own GIL: the per-row work of
writing (tokenising reviews, measuring images, the driver's parameter binding and inserts)
used to run on a thread that took the GIL from the event loop serving requests, 15-25% of
a cheap model's throughput (bench/RESULTS.md, issue 15).

If the child dies or cannot start, its batch is dropped and counted, and a new child is
started at the next batch (not sooner than `RESTART_BACKOFF_S` after a failed one). The child
ends when its pipe closes (this process stopped, or was killed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from app.monitoring.writer_process import WriterProcess
from app.monitoring.writer_queue import _Pending, _rows_bytes

if TYPE_CHECKING:
    from app.repository import CardedVersion

log = logging.getLogger(__name__)

# A child that failed (would not start, died, or timed out) is not restarted sooner than this:
# batches in between are dropped and counted rather than paying a start-up each.
RESTART_BACKOFF_S = 5.0
# The child's answer to one batch (inserts wait up to 30 s for SQLite's lock; see the store).
BATCH_TIMEOUT_S = 120.0
# A batch in flight longer than this means a stuck database (a lock held elsewhere, a hung
# disk): feedback then stops waiting for the writer at once (503) instead of each request
# waiting its whole timeout.
STUCK_S = 5.0


class Writer:
    """The bounded queue, its shipper thread and the writer process (see the module
    docstring). `database_url` is the store's SQLAlchemy URL (migrated already)."""

    def __init__(
        self,
        database_url: str,
        *,
        max_rows: int,
        batch_rows: int,
        flush_interval_s: float,
        on_drop: Callable[[int], None],
        on_tick: Callable[[], None] | None = None,
        tick_interval_s: float = 60.0,
        max_bytes: int | None = None,
        max_row_bytes: int | None = None,
        on_omit: Callable[[int], None] | None = None,
        on_prune: Callable[[int], None] | None = None,
        max_queue_bytes: int | None = None,
    ) -> None:
        self.database_url = database_url
        # The queue's memory bound (None: rows only): what the queued rows hold.
        self.max_queue_bytes = max_queue_bytes
        # What the writer process enforces per batch (see `child_main`).
        self.limits = {"max_bytes": max_bytes, "max_row_bytes": max_row_bytes}
        self.on_omit = on_omit
        self.on_prune = on_prune
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.on_drop = on_drop
        self.on_tick = on_tick
        self.tick_interval_s = tick_interval_s
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._queued_rows = 0
        self._queued_bytes = 0
        self._queued_records = 0
        # Requests accepted and requests handled (written, or dropped on an error): a batch
        # takes everything queued, so every request accepted before a moment is handled once
        # `_handled` reaches `_accepted`.
        self._accepted = 0
        self._handled = 0
        self._condition = threading.Condition(threading.Lock())
        self._flush_now = False
        self._batch_due = False  # the shipper was woken for a full batch it has not taken
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._child: WriterProcess | None = None
        self._child_failed_at = -float("inf")
        self._versions_sent: set[tuple[str, int]] = set()
        self.written_rows = 0
        # time.monotonic() when the batch being written was taken (None: none is): a batch
        # that has taken long means a stuck database, and feedback stops waiting for it.
        self._writing_since: float | None = None

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="monitoring-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (up to timeout_s), then end the thread and the process."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        child = self._child
        if child is not None:
            child.close(timeout_s)
            self._child = None

    def submit(
        self,
        request_id: str,
        entry: CardedVersion,
        caller: str,
        route: str,
        created_at: float,
        rows: Sequence[Any],
        probabilities: np.ndarray,
    ) -> bool:
        """Queue one request's rows (copied) and `(N, C)` probabilities; False (and counted
        as dropped) when the queue is full."""
        n = len(rows)
        size = _rows_bytes(rows) if self.max_queue_bytes is not None else 0
        with self._condition:
            if (
                self._stopping
                or self._queued_rows + n > self.max_rows
                or (
                    self.max_queue_bytes is not None
                    and self._queued_bytes + size > self.max_queue_bytes
                )
            ):
                dropped = True
            else:
                dropped = False
                key = (entry.name, entry.version)
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = _Pending(entry, self.batch_rows)
                pending.add(request_id, caller, route, created_at, rows, probabilities)
                self._queued_rows += n
                self._queued_bytes += size
                self._queued_records += 1
                self._accepted += 1
                if self._queued_rows >= self.batch_rows and not self._batch_due:
                    # Once per batch: while the shipper is busy writing the last one, the
                    # queue stays full and every request would wake it again.
                    self._batch_due = True
                    self._condition.notify_all()
        if dropped:
            self.on_drop(n)
        return not dropped

    def wait_written(self, request_id: str, timeout_s: float) -> bool:
        """Block until every request accepted so far (so this one, whose prediction was
        answered before its feedback was sent) is written, flushing now rather than at the
        next interval; False on timeout. Called by feedback, on a worker thread."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            target = self._accepted
            since = self._writing_since
            if (
                self._handled < target
                and since is not None
                and time.monotonic() - since > min(STUCK_S, timeout_s)
            ):
                # A batch stuck since before this call: waiting would only hold the caller.
                # (A batch that starts while this call waits - its own - is waited for, up to
                # timeout_s: a busy machine is slow, not stuck.)
                return False
            while self._handled < target:
                self._flush_now = True
                self._condition.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True

    def _take(self) -> tuple[list[_Pending], int, int]:
        """Wait for a batch; take everything queued: (per version, rows, requests)."""
        with self._condition:
            deadline = time.monotonic() + self.flush_interval_s
            while not (self._stopping or self._flush_now or self._queued_rows >= self.batch_rows):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            self._flush_now = self._batch_due = False
            taken = list(self._pending.values())
            rows, records = self._queued_rows, self._queued_records
            self._pending = {}
            self._queued_rows = self._queued_records = self._queued_bytes = 0
            return taken, rows, records

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_interval_s
        # Start the writer process now, not with the first batch: the first feedback then
        # does not wait for its start-up (imports take seconds on a busy machine).
        try:
            self._child = WriterProcess.start(self.database_url, self.limits)
        except Exception as exc:  # noqa: BLE001 - retried with the first batch
            log.error("the store's writer process did not start: %s", exc)
        while True:
            taken, rows, records = self._take()
            if taken:
                self._writing_since = time.monotonic()
                try:
                    self.written_rows += rows - self._write(taken)
                except Exception as exc:  # noqa: BLE001 - counted; the thread must go on
                    log.error("writing %d predicted rows to the store failed: %s", rows, exc)
                    self.on_drop(rows)
                with self._condition:
                    self._writing_since = None
                    self._handled += records
                    self._condition.notify_all()
            with self._condition:
                if self._stopping and not self._pending:
                    return
            if self.on_tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.tick_interval_s
                try:
                    self.on_tick()
                except Exception:  # housekeeping retries at the next tick
                    log.exception("monitoring housekeeping failed")

    def _write(self, taken: list[_Pending]) -> int:
        """Send one batch to the child and wait for its commit; returns the rows it could not
        store (counted as dropped already). Raises when nothing was stored."""
        child = self._child
        if child is None or not child.alive():
            if time.monotonic() - self._child_failed_at < RESTART_BACKOFF_S:
                raise RuntimeError("the writer process failed moments ago; retrying shortly")
            if child is not None:
                child.close(0)
            self._child = None
            self._versions_sent.clear()
            try:
                child = WriterProcess.start(self.database_url, self.limits)
            except Exception:
                self._child_failed_at = time.monotonic()
                raise
            self._child = child
        messages: list[tuple[Any, ...]] = []
        groups = [pending.group() for pending in taken]
        for pending in taken:
            entry = pending.entry
            key = (entry.name, entry.version)
            if key not in self._versions_sent:
                messages.append(("version", *key, entry.card.model_dump_json(), str(entry.folder)))
        messages.append(("batch", groups))
        try:
            answer = child.ask(messages, BATCH_TIMEOUT_S)
        except Exception:
            self._child_failed_at = time.monotonic()
            child.close(0)
            self._child = None
            raise
        self._versions_sent.update((g.model, g.version) for g in groups)
        if answer[0] != "ok":
            raise RuntimeError(answer[1])
        lost: int = answer[1]
        problem: str | None = answer[2]
        omitted, pruned = answer[3], answer[4]
        if omitted and self.on_omit is not None:
            self.on_omit(omitted)
        if pruned and self.on_prune is not None:
            self.on_prune(pruned)
        if lost:
            log.error("%d predicted rows could not be stored: %s", lost, problem)
            self.on_drop(lost)
        return lost

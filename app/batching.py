"""Adaptive micro-batching: many concurrent requests, one model call per batch.

One `Batcher` per loaded model version. Requests put their rows in a bounded queue and await a
future; one worker thread per model takes rows off the queue, calls the model once per batch,
and hands every request exactly its own results back, in order, on the event loop.

When a batch goes:
- as soon as `max_batch_size` rows are waiting;
- or `max_batch_wait_ms` after the first of the waiting rows was queued;
- or at once, when the worker was idle and a request arrives: batching must not add latency
  to a quiet server. Under load the worker is busy while rows pile up, so batches form by
  themselves without waiting.

Requests larger than `max_batch_size` rows are split across batches and reassembled; small
requests are merged. A full queue rejects at once (503 + Retry-After), never blocks. A model
error fails the requests of that batch only; the worker carries on. The batch function may
also return a ServingError in place of one row's result: then only that row's request fails.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.errors import DeadlineExceeded, ModelFailed, ServingError, Unavailable

log = logging.getLogger(__name__)

BatchFunction = Callable[[list[Any]], Sequence[Any]]


class BatchObserver(Protocol):
    """Receives the batcher's measurements (Prometheus in the service, nothing in tests)."""

    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None: ...

    def rows_started(self, queue_wait_s: Sequence[float]) -> None: ...


class _NullObserver:
    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None:
        pass

    def rows_started(self, queue_wait_s: Sequence[float]) -> None:
        pass


@dataclass(eq=False)
class _Request:
    rows: Sequence[Any]
    future: asyncio.Future[list[Any]]
    enqueued_at: float
    deadline: float = math.inf
    arrived_idle: bool = False  # the worker was not computing when this request came
    results: list[Any] = field(default_factory=list)
    remaining: int = 0
    cancelled: bool = False  # set on the event loop when the caller gave up (deadline)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)
        self.remaining = len(self.rows)


@dataclass(eq=False)
class _Segment:
    """A contiguous run of one request's rows: requests are split and merged by segments."""

    request: _Request
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


class Batcher:
    """Queue + worker thread for one model. Use `start()`, `await predict(rows)`, `stop()`.

    `predict` is called from one event loop (the server's).
    """

    def __init__(
        self,
        name: str,
        batch_function: BatchFunction,
        *,
        max_batch_size: int = 64,
        max_batch_wait_ms: float = 2.0,
        max_queue_rows: int = 1024,
        retry_after_s: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue_rows < max_batch_size:
            raise ValueError("need 1 <= max_batch_size <= max_queue_rows")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_batch_wait_s = max_batch_wait_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self._batch_function = batch_function
        self._retry_after_s = retry_after_s
        self._observer: BatchObserver = observer or _NullObserver()
        self._queue: collections.deque[_Segment] = collections.deque()
        self._queued_rows = 0
        # Requests that arrived during the current event-loop iteration: handed to the worker
        # together at the next iteration (one lock, one wake-up) instead of one by one.
        self._arrivals: list[_Segment] = []
        self._arrival_rows = 0
        self._hand_over_scheduled = False
        self._running_rows = 0
        self._busy = False
        self._condition = threading.Condition()
        self._accepting = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Requests with a deadline, checked by one sweeper task instead of a timer each.
        self._waiting: list[_Request] = []
        self._next_sweep = math.inf
        self._wake_sweeper: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- state, for metrics
    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch (not counting the batch being computed)."""
        return self._queued_rows + self._arrival_rows

    @property
    def in_flight_rows(self) -> int:
        """Rows queued or being computed."""
        return self.queued_rows + self._running_rows

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the worker thread and the deadline sweeper (call on the event loop that
        will call `predict`); requests are accepted from now on."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake_sweeper = asyncio.Event()
        self._sweeper = self._loop.create_task(
            self._sweep_deadlines(), name=f"deadlines-{self.name}"
        )
        self._accepting = True
        self._thread = threading.Thread(target=self._work, name=f"batcher-{self.name}", daemon=True)
        self._thread.start()

    def stop_accepting(self) -> None:
        """New requests get 503 from now on; queued ones still complete."""
        with self._condition:
            self._accepting = False

    async def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop: let queued rows finish for up to `drain_timeout_s`, fail the rest, join.

        No caller hangs: whatever is still queued when the drain time is over gets 503.
        """
        self.stop_accepting()
        self._hand_over()
        deadline = time.monotonic() + drain_timeout_s
        while self.in_flight_rows and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        with self._condition:
            self._stopping = True
            abandoned = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
            self._condition.notify_all()
        error = Unavailable(f"model {self.name} is shutting down; retry on another replica")
        for segment in abandoned:
            if not segment.request.future.done():
                segment.request.future.set_exception(error)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    # ----------------------------------------------------------------- request side
    async def predict(self, rows: Sequence[Any], timeout_s: float | None = None) -> list[Any]:
        """Queue `rows`, wait for the batch(es) that carry them, return their results in order.

        Raises Unavailable (queue full or stopping), DeadlineExceeded (no result within
        `timeout_s`), ModelFailed. A request larger than the whole queue is admitted when the
        queue is empty, so any request the API accepts can be served.
        """
        if not rows:
            return []
        if not self._accepting:
            raise Unavailable(f"model {self.name} is not accepting requests (shutting down)")
        queued = self.queued_rows  # the worker only ever lowers it: a stale read is safe
        if queued and queued + len(rows) > self.max_queue_rows:
            raise Unavailable(
                f"model {self.name} is overloaded ({queued} rows queued, limit "
                f"{self.max_queue_rows}); retry after {self._retry_after_s} s",
                retry_after_s=self._retry_after_s,
            )
        loop = self._loop
        assert loop is not None, "start() first"
        now = time.perf_counter()
        request = _Request(rows, loop.create_future(), now)
        if timeout_s is not None:
            request.deadline = now + timeout_s
            self._waiting.append(request)
            if request.deadline < self._next_sweep:
                self._wake_sweeper.set()  # type: ignore[union-attr]
        self._arrivals.append(_Segment(request, 0, len(rows)))
        self._arrival_rows += len(rows)
        if not self._hand_over_scheduled:
            self._hand_over_scheduled = True
            loop.call_soon(self._hand_over)
        try:
            return await request.future
        except asyncio.CancelledError:
            request.cancelled = True  # client went away: do not compute its rows
            raise

    async def _sweep_deadlines(self) -> None:
        """Fail requests whose deadline passed with 504; wake at the earliest deadline."""
        assert self._wake_sweeper is not None
        while True:
            self._wake_sweeper.clear()
            now = time.perf_counter()
            earliest = math.inf
            still_waiting = []
            for request in self._waiting:
                if request.future.done():
                    continue
                if request.deadline <= now:
                    request.cancelled = True
                    request.future.set_exception(
                        DeadlineExceeded(
                            f"no prediction from model {self.name} within the request deadline "
                            f"({(request.deadline - request.enqueued_at) * 1000:.0f} ms); the "
                            "server is overloaded, retry later"
                        )
                    )
                else:
                    still_waiting.append(request)
                    earliest = min(earliest, request.deadline)
            self._waiting = still_waiting
            self._next_sweep = earliest
            try:
                async with asyncio.timeout(None if earliest == math.inf else earliest - now):
                    await self._wake_sweeper.wait()
            except TimeoutError:
                pass

    def _hand_over(self) -> None:
        """Move this loop iteration's arrivals to the worker's queue and wake it, once.

        Runs at the next loop iteration, so it adds no waiting; under load it turns one
        thread wake-up (and GIL hand-off) per request into one per iteration.
        """
        self._hand_over_scheduled = False
        if not self._arrivals:
            return
        arrivals, rows = self._arrivals, self._arrival_rows
        self._arrivals, self._arrival_rows = [], 0
        with self._condition:
            idle = not self._busy
            for segment in arrivals:
                segment.request.arrived_idle = idle
            self._queue.extend(arrivals)
            self._queued_rows += rows
            self._condition.notify()

    # ----------------------------------------------------------------- worker side
    def _take_batch(self) -> list[_Segment] | None:
        """Block until a batch is due (see module docstring); None when stopping."""
        with self._condition:
            while not self._queue:
                if self._stopping:
                    return None
                self._condition.wait()
            if not self._queue[0].request.arrived_idle:
                # Rows piled up while we computed: top the batch up until it is full or the
                # oldest row has waited max_batch_wait_ms. (Whether the worker was idle is
                # recorded when a request arrives: checking the queue here would be a race.)
                deadline = self._queue[0].request.enqueued_at + self.max_batch_wait_s
                while self._queued_rows < self.max_batch_size and not self._stopping:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
            batch: list[_Segment] = []
            room = self.max_batch_size
            while self._queue and room:
                segment = self._queue[0]
                if segment.request.cancelled:
                    self._queue.popleft()
                    self._queued_rows -= segment.size
                    continue
                if segment.size <= room:
                    self._queue.popleft()
                    batch.append(segment)
                    room -= segment.size
                else:  # split: the head of this request goes now, the rest stays first in line
                    batch.append(_Segment(segment.request, segment.start, segment.start + room))
                    segment.start += room
                    room = 0
            taken = self.max_batch_size - room
            self._queued_rows -= taken
            self._running_rows = taken
            self._busy = bool(batch)  # empty when every queued request was abandoned
            return batch

    def _work(self) -> None:
        while (batch := self._take_batch()) is not None:
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Segment]) -> None:
        started = time.perf_counter()
        rows: list[Any] = []
        for segment in batch:
            rows.extend(segment.request.rows[segment.start : segment.stop])
        self._observer.rows_started([started - s.request.enqueued_at for s in batch])
        outcome: Sequence[Any] | ServingError
        try:
            outcome = self._batch_function(rows)
            if len(outcome) != len(rows):
                raise RuntimeError(f"returned {len(outcome)} results for {len(rows)} rows")
        except Exception:
            log.exception("model %s failed on a batch of %d rows", self.name, len(rows))
            # The exception's text stays in the log: it can hold paths and library internals.
            outcome = ModelFailed(
                f"model {self.name} failed on this batch (the server logged the details); "
                "the server is fine, the request can be retried"
            )
        self._observer.batch_done(
            len(rows), time.perf_counter() - started, isinstance(outcome, ServingError)
        )
        # Idle again before the results go out: a caller that gets its answer and sends the
        # next request at once must find the worker idle, not wait for a batch window.
        with self._condition:
            self._running_rows = 0
            self._busy = False
        # One hop back to the event loop per batch, not one per request.
        placed, offset = [], 0
        for segment in batch:
            placed.append((segment, offset))
            offset += segment.size
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(self._deliver, placed, outcome)

    @staticmethod
    def _deliver(placed: list[tuple[_Segment, int]], outcome: Sequence[Any] | ServingError) -> None:
        for segment, offset in placed:
            request = segment.request
            if isinstance(outcome, ServingError):
                if not request.future.done():
                    request.future.set_exception(outcome)
                continue
            results = outcome[offset : offset + segment.size]
            row_error = next((r for r in results if isinstance(r, ServingError)), None)
            if row_error is not None:  # a result can be an error for that row alone
                if not request.future.done():
                    request.future.set_exception(row_error)
                continue
            request.results[segment.start : segment.stop] = results
            request.remaining -= segment.size
            if request.remaining == 0 and not request.future.done():
                request.future.set_result(request.results)

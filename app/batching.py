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
requests are merged. When more rows wait than fit in a batch, each waiting request gets a fair
share of the batch (water-filling: small requests whole, the rest split evenly among the large
ones) and requests that still have rows go to the back of the line, so a single row is never
stuck behind a 1,000-row request.

Admission follows what a client would actually wait: the rows ahead of it (with that fair
interleaving) over the model's measured throughput. A request whose expected wait is too long
(see `Batcher.predict`) is refused at once with 503 and a Retry-After from that wait, never
blocks; `max_queue_rows` only caps the memory queued rows take. A model error fails the
requests of that batch only; the worker carries on. The batch function may also return a
ServingError in place of one row's result: then only that row's request fails (and the error
says which row).
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
# A request may wait for others' rows up to this many times its own compute time (when that
# is longer than max_queue_wait_ms): two or three bulk clients share the model, a fourth waits.
BULK_SHARE = 2.0
# Weight of the newest batch in the throughput estimate: about the last 20 batches count.
EWMA_WEIGHT = 0.1


class BatchObserver(Protocol):
    """Receives the batcher's measurements (Prometheus in the service, nothing in tests)."""

    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None: ...

    def rows_started(
        self,
        queue_wait_s: Sequence[float],
        shadow_wait_s: Sequence[float] = (),
        shadow_rows: int = 0,
    ) -> None:
        """A batch starts: its own request segments waited `queue_wait_s` seconds each, its
        shadow copies' segments (`shadow_rows` rows in all) `shadow_wait_s`."""


class _NullObserver:
    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None:
        pass

    def rows_started(
        self,
        queue_wait_s: Sequence[float],
        shadow_wait_s: Sequence[float] = (),
        shadow_rows: int = 0,
    ) -> None:
        pass


@dataclass(eq=False)
class _Request:
    rows: Sequence[Any]
    future: asyncio.Future[list[Any]]
    enqueued_at: float
    deadline: float = math.inf
    arrived_idle: bool = False  # the worker was not computing when this request came
    results: list[Any] = field(default_factory=list)
    remaining: int = 0  # rows whose results have not come back (event loop only)
    taken: int = 0  # rows handed to batches so far (under the lock)
    cancelled: bool = False  # the caller gave up, or the request failed (under the lock)
    shadow: bool = False  # a shadow copy: counted apart from the version's own requests

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)
        self.remaining = len(self.rows)

    @property
    def untaken(self) -> int:
        return len(self.rows) - self.taken


@dataclass(eq=False)
class _Segment:
    """A contiguous run of one request's rows: requests are split and merged by segments."""

    request: _Request
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def fair_shares(wanted: Sequence[int], room: int) -> list[int]:
    """Split `room` rows among requests wanting `wanted` rows, max-min fairly (water-filling):
    each gets an equal share, and what the small ones leave goes to the larger ones. With more
    requests than room, the first `room` get one row each.

    >>> fair_shares([1000, 1, 1000, 3], 64)
    [30, 1, 30, 3]
    """
    shares = [0] * len(wanted)
    active = [index for index, want in enumerate(wanted) if want > 0]
    while room and active:
        share = max(1, room // len(active))
        still = []
        for index in active:
            give = min(wanted[index] - shares[index], share, room)
            shares[index] += give
            room -= give
            if shares[index] < wanted[index]:
                still.append(index)
            if not room:
                break
        active = still
    return shares


class Batcher:
    """Queue + worker thread for one model. Use `start()`, `await predict(rows)`, `stop()`.

    `predict` is called from one event loop (the server's). The queue, the running batch and
    the throughput estimate are shared with the worker thread and touched under the lock only.
    """

    def __init__(
        self,
        name: str,
        batch_function: BatchFunction,
        *,
        max_batch_size: int = 64,
        max_batch_wait_ms: float = 2.0,
        max_queue_rows: int = 4096,
        max_queue_wait_ms: float = 50.0,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue_rows < max_batch_size:
            raise ValueError("need 1 <= max_batch_size <= max_queue_rows")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_batch_wait_s = max_batch_wait_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self.max_queue_wait_s = max_queue_wait_ms / 1000.0
        self._batch_function = batch_function
        # For the batch function, during its call on the worker thread: which rows of the
        # batch are the version's own (True) rather than shadow copies; None when all are.
        self.own_rows: list[bool] | None = None
        self._observer: BatchObserver = observer or _NullObserver()
        # Requests with rows not yet in a batch, in turn order (under the lock).
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued_rows = 0
        # Requests that arrived during the current event-loop iteration: handed to the worker
        # together at the next iteration (one lock, one wake-up) instead of one by one.
        self._arrivals: list[_Request] = []
        self._arrival_rows = 0
        self._hand_over_scheduled = False
        self._running_rows = 0
        self._busy = False
        # Throughput while draining a backlog, rows per second of model time: EWMAs of rows
        # and seconds of full batches (a backlog is always computed in full batches; small
        # ones cost more per row and would make a burst look like an overload). None until
        # the first full batch: until then nothing ever queued deep.
        self._ewma_rows = 0.0
        self._ewma_s = 0.0
        self._condition = threading.Condition()
        self._accepting = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Requests in flight that have a deadline (event loop only): each leaves the moment
        # it completes, so a finished request's rows are freed at once.
        self._waiting: dict[_Request, None] = {}
        self._next_sweep = math.inf
        self._wake_sweeper: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- state, for metrics
    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch (not counting the batch being computed)."""
        with self._condition:
            return self._queued_rows + self._arrival_rows

    @property
    def in_flight_rows(self) -> int:
        """Rows queued or being computed."""
        with self._condition:
            return self._queued_rows + self._arrival_rows + self._running_rows

    @property
    def throughput_rows_per_s(self) -> float | None:
        """The measured model throughput in full batches (None before the first one)."""
        with self._condition:
            return self._throughput()

    def _throughput(self) -> float | None:
        return self._ewma_rows / self._ewma_s if self._ewma_s > 0 else None

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
            for request in abandoned:
                request.cancelled = True
            self._queue.clear()
            self._queued_rows = 0
            self._condition.notify_all()
        error = Unavailable(f"model {self.name} is shutting down; retry on another replica")
        for request in abandoned:
            self._finish(request, error)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    # ----------------------------------------------------------------- request side
    async def predict(
        self, rows: Sequence[Any], timeout_s: float | None = None, *, shadow: bool = False
    ) -> list[Any]:
        """Queue `rows`, wait for the batch(es) that carry them, return their results in order.

        Admission: the request gets in when the expected wait for the rows ahead of it (see
        `expected_wait_s`) is at most `max_queue_wait_ms`, or twice its own compute time when
        that is longer (a bulk request shares the model with other bulk requests), and when
        that wait plus its own compute time fits `timeout_s`. `max_queue_rows` bounds the
        memory queued rows take; a request larger than it still gets in on an empty queue, so
        any request the API accepts can be served. Rows of different requests are interleaved
        fairly, so a small request is never stuck behind a large one.

        `shadow`: the rows are a shadow copy of another version's request; the observer counts
        them apart (a version's statistics are its own requests').

        Raises Unavailable (overloaded: 503 with Retry-After from the expected wait; stopping),
        DeadlineExceeded (no result within `timeout_s`), ModelFailed, or the ServingError the
        batch function returned for one of its rows.
        """
        if not rows:
            return []
        if not self._accepting:
            raise Unavailable(f"model {self.name} is not accepting requests (shutting down)")
        self._admit(len(rows), timeout_s)
        loop = self._loop
        assert loop is not None, "start() first"
        now = time.perf_counter()
        request = _Request(rows, loop.create_future(), now)
        if shadow:
            request.shadow = True
        if timeout_s is not None:
            request.deadline = now + timeout_s
            self._waiting[request] = None
            if request.deadline < self._next_sweep:
                self._wake_sweeper.set()  # type: ignore[union-attr]
        self._arrivals.append(request)
        self._arrival_rows += len(rows)
        if not self._hand_over_scheduled:
            self._hand_over_scheduled = True
            loop.call_soon(self._hand_over)
        try:
            return await request.future
        except asyncio.CancelledError:
            self._cancel(request)  # client went away: do not compute its rows
            raise

    def expected_wait_s(self, size: int) -> float | None:
        """Seconds a request of `size` rows should expect to wait for other requests' rows
        (not its own) with fair interleaving: the batch in progress, plus from every queued
        request as many rows as this one has (a smaller one finishes first, a larger one
        shares equally), over the measured throughput. None before any full batch was measured."""
        ahead, rate, _ = self._ahead(size)
        return None if rate is None else ahead / rate

    def _ahead(self, size: int) -> tuple[int, float | None, int]:
        """(rows ahead of a request of `size` rows, throughput, rows queued), in one go."""
        if size == 1:  # the common case, without a walk over the queue
            ahead = len(self._arrivals)
        else:
            ahead = sum(min(len(r.rows), size) for r in self._arrivals)
        with self._condition:
            rate = self._throughput()
            queued = self._queued_rows + self._arrival_rows
            if rate is not None:
                ahead += self._running_rows
                if size == 1:
                    ahead += len(self._queue)
                else:
                    ahead += sum(min(r.untaken, size) for r in self._queue)
        return ahead, rate, queued

    def admit(self, size: int, timeout_s: float | None) -> None:
        """Raise Unavailable now if a request of `size` rows would not be admitted (see
        `predict`): lets a caller refuse a large request before paying for its parsing."""
        self._admit(size, timeout_s)

    def _admit(self, size: int, timeout_s: float | None) -> None:
        ahead, rate, queued = self._ahead(size)
        if rate is not None:
            wait_s, own_s = ahead / rate, size / rate
            fits_deadline = timeout_s is None or wait_s + own_s <= timeout_s
            if not fits_deadline or wait_s > max(self.max_queue_wait_s, BULK_SHARE * own_s):
                raise Unavailable(
                    f"model {self.name} is overloaded (a request of {size} rows would wait about "
                    f"{wait_s * 1000:.0f} ms for the rows ahead of it); retry after "
                    f"{math.ceil(wait_s)} s",
                    retry_after_s=max(1, math.ceil(wait_s)),
                )
        if queued and queued + size > self.max_queue_rows:
            raise Unavailable(
                f"model {self.name} is overloaded ({queued} rows queued, limit "
                f"{self.max_queue_rows}); retry after 1 s",
                retry_after_s=1,
            )

    def _cancel(self, request: _Request) -> None:
        """Take a request's rows that are not yet in a batch off the queue (event loop)."""
        self._waiting.pop(request, None)
        if request in self._arrivals:
            self._arrivals.remove(request)
            self._arrival_rows -= len(request.rows)
        with self._condition:
            if request.cancelled:
                return
            request.cancelled = True
            if request.untaken:
                with contextlib.suppress(ValueError):  # already taken whole
                    self._queue.remove(request)
                    self._queued_rows -= request.untaken
                request.taken = len(request.rows)

    def _finish(self, request: _Request, outcome: list[Any] | ServingError) -> None:
        """Complete a request's future (event loop) and let go of it."""
        self._waiting.pop(request, None)
        if request.future.done():
            return
        if isinstance(outcome, ServingError):
            request.future.set_exception(outcome)
            self._cancel(request)  # its other rows need not be computed
        else:
            request.future.set_result(outcome)

    async def _sweep_deadlines(self) -> None:
        """Fail requests whose deadline passed with 504; wake at the earliest deadline."""
        assert self._wake_sweeper is not None
        while True:
            self._wake_sweeper.clear()
            now = time.perf_counter()
            earliest = self._next_sweep = self._sweep(now)
            try:
                async with asyncio.timeout(None if earliest == math.inf else earliest - now):
                    await self._wake_sweeper.wait()
            except TimeoutError:
                pass

    def _sweep(self, now: float) -> float:
        """Fail the requests past their deadline; the earliest deadline still ahead. (A
        function of its own, so no request stays referenced while the sweeper sleeps.)"""
        earliest = math.inf
        for request in list(self._waiting):
            if request.future.done():
                self._waiting.pop(request, None)
            elif request.deadline <= now:
                self._finish(
                    request,
                    DeadlineExceeded(
                        f"no prediction from model {self.name} within the request deadline; "
                        "the server is overloaded, retry later"
                    ),
                )
            else:
                earliest = min(earliest, request.deadline)
        return earliest

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
            for request in arrivals:
                request.arrived_idle = idle
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
            if not self._queue[0].arrived_idle:
                # Rows piled up while we computed: top the batch up until it is full or the
                # oldest row has waited max_batch_wait_ms. (Whether the worker was idle is
                # recorded when a request arrives: checking the queue here would be a race.)
                deadline = self._queue[0].enqueued_at + self.max_batch_wait_s
                while self._queued_rows < self.max_batch_size and not self._stopping:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
            batch = self._fill()
            self._running_rows = sum(segment.size for segment in batch)
            self._busy = bool(batch)  # empty when every queued request was abandoned
            return batch

    def _fill(self) -> list[_Segment]:
        """One batch from the queue (under the lock): everything when it fits, else fair
        shares, with the requests that still have rows moved to the back (round robin)."""
        queue = self._queue
        if self._queued_rows <= self.max_batch_size:  # the common case: take all
            batch = [_Segment(r, r.taken, len(r.rows)) for r in queue]
            for request in queue:
                request.taken = len(request.rows)
            queue.clear()
            self._queued_rows = 0
            return batch
        candidates = [queue.popleft() for _ in range(min(len(queue), self.max_batch_size))]
        shares = fair_shares([r.untaken for r in candidates], self.max_batch_size)
        batch, unserved = [], []
        for request, share in zip(candidates, shares, strict=True):
            if not share:
                unserved.append(request)
                continue
            batch.append(_Segment(request, request.taken, request.taken + share))
            request.taken += share
            self._queued_rows -= share
            if request.untaken:
                queue.append(request)  # its turn again after everyone waiting
        queue.extendleft(reversed(unserved))  # still first in line
        return batch

    def _work(self) -> None:
        while (batch := self._take_batch()) is not None:
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Segment]) -> None:
        started = time.perf_counter()
        rows: list[Any] = []
        waits: list[float] = []
        shadow_waits: list[float] = []
        shadow_rows = 0
        for segment in batch:
            request = segment.request
            rows.extend(request.rows[segment.start : segment.stop])
            if request.shadow:
                shadow_waits.append(started - request.enqueued_at)
                shadow_rows += segment.size
            else:
                waits.append(started - request.enqueued_at)
        del request
        self._observer.rows_started(waits, shadow_waits, shadow_rows)
        self.own_rows = (
            [not s.request.shadow for s in batch for _ in range(s.size)] if shadow_rows else None
        )
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
        elapsed = time.perf_counter() - started
        self._observer.batch_done(len(rows), elapsed, isinstance(outcome, ServingError))
        # Idle again before the results go out: a caller that gets its answer and sends the
        # next request at once must find the worker idle, not wait for a batch window.
        with self._condition:
            self._running_rows = 0
            self._busy = False
            if len(rows) == self.max_batch_size and not isinstance(outcome, ServingError):
                self._ewma_rows += EWMA_WEIGHT * (len(rows) - self._ewma_rows)
                self._ewma_s += EWMA_WEIGHT * (elapsed - self._ewma_s)
        # One hop back to the event loop per batch, not one per request.
        placed, offset = [], 0
        for segment in batch:
            placed.append((segment, offset))
            offset += segment.size
        # From here on only the event loop holds the requests: each is freed once answered.
        batch.clear()
        del rows, segment
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(self._deliver, placed, outcome)
        del placed, outcome

    def _deliver(
        self, placed: list[tuple[_Segment, int]], outcome: Sequence[Any] | ServingError
    ) -> None:
        for segment, offset in placed:
            request = segment.request
            if isinstance(outcome, ServingError):
                self._finish(request, outcome)
                continue
            results = outcome[offset : offset + segment.size]
            for index, result in enumerate(results):
                if isinstance(result, ServingError):  # an error for that row alone
                    result.instance = segment.start + index
                    self._finish(request, result)
                    break
            else:
                request.results[segment.start : segment.stop] = results
                request.remaining -= segment.size
                if request.remaining == 0:
                    self._finish(request, request.results)

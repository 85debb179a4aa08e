"""The batcher loop: a bounded queue, one worker thread per model version, one model call per
batch, and each request's own results handed back in order on the event loop (see
`app.batching` for when a batch goes and how requests are admitted)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.batching.admission import Admission, fair_shares
from app.batching.requests import (
    BatchFunction,
    BatchObserver,
    BatchStart,
    _NullObserver,
    _Request,
    _Segment,
)
from app.errors import DeadlineExceeded, ModelFailed, ServingError, Unavailable

log = logging.getLogger(__name__)

EWMA_WEIGHT = 0.1


class Batcher(Admission):
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
        start: BatchStart | None = getattr(batch_function, "start", None)
        self._staged = start is not None
        self._start: BatchStart = start if start is not None else _eager(batch_function)
        self._last_done = 0.0  # perf_counter() when the worker last finished a batch
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
    def _take_batch(self, wait: bool = True) -> list[_Segment] | None:
        """The next batch (see module docstring); None when stopping with nothing queued.
        `wait=False`: a full batch if one is queued now, else [] at once (the worker has a
        batch in flight to finish first; a smaller batch is better made after it, topped up
        with what arrives meanwhile)."""
        with self._condition:
            if not wait and self._queued_rows < self.max_batch_size:
                return []
            while not self._queue:
                if self._stopping:
                    return None
                self._condition.wait()
            if wait and not self._queue[0].arrived_idle:
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
            self._running_rows += sum(segment.size for segment in batch)
            self._busy = self._running_rows > 0  # not when every request was abandoned
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
        # Two stages per batch: start it (the model begins computing, e.g. XLA on its own
        # threads), then finish it (wait for the outputs, then the batch's Python work). With
        # a staged batch function and a backlog (a full batch already queued), the next batch
        # is started before the one in flight is finished, so the model computes it while
        # this thread finishes the last: bulk requests no longer leave the model idle between
        # batches. Without a backlog, batches go one at a time, as the module describes.
        in_flight: _InFlight | None = None
        while True:
            if in_flight is None:
                batch = self._take_batch()
                if batch is None:
                    return
            else:
                batch = self._take_batch(wait=False) if self._staged else []
            started = self._begin(batch) if batch else None
            if in_flight is not None:
                self._complete(in_flight)
            in_flight = started

    def _begin(self, batch: list[_Segment]) -> _InFlight:
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
        # Read by the batch function's start, for this batch.
        self.own_rows = (
            [not s.request.shadow for s in batch for _ in range(s.size)] if shadow_rows else None
        )
        finish: Callable[[], Sequence[Any]] | ServingError
        try:
            finish = self._start(rows)
        except Exception:
            log.exception("model %s failed on a batch of %d rows", self.name, len(rows))
            finish = self._failed()
        return _InFlight(batch, len(rows), started, finish)

    def _failed(self) -> ModelFailed:
        # The exception's text stays in the log: it can hold paths and library internals.
        return ModelFailed(
            f"model {self.name} failed on this batch (the server logged the details); "
            "the server is fine, the request can be retried"
        )

    def _complete(self, in_flight: _InFlight) -> None:
        outcome: Sequence[Any] | ServingError
        finish = in_flight.finish
        assert finish is not None, "each batch is completed once"
        if isinstance(finish, ServingError):
            outcome = finish
        else:
            try:
                outcome = finish()
                if len(outcome) != in_flight.rows:
                    raise RuntimeError(f"returned {len(outcome)} results for {in_flight.rows} rows")
            except Exception:
                log.exception("model %s failed on a batch of %d rows", self.name, in_flight.rows)
                outcome = self._failed()
        done = time.perf_counter()
        # The model's time for this batch: from its start, or from when the batch before it
        # was done if the two overlapped (what a backlog sees of the throughput).
        elapsed = done - max(in_flight.started, self._last_done)
        self._last_done = done
        failed = isinstance(outcome, ServingError)
        self._observer.batch_done(in_flight.rows, elapsed, failed)
        batch = in_flight.batch
        # Idle again before the results go out: a caller that gets its answer and sends the
        # next request at once must find the worker idle, not wait for a batch window.
        with self._condition:
            self._running_rows -= in_flight.rows
            self._busy = self._running_rows > 0
            if in_flight.rows == self.max_batch_size and not failed:
                self._ewma_rows += EWMA_WEIGHT * (in_flight.rows - self._ewma_rows)
                self._ewma_s += EWMA_WEIGHT * (elapsed - self._ewma_s)
        # One hop back to the event loop per batch, not one per request.
        placed, offset = [], 0
        for segment in batch:
            placed.append((segment, offset))
            offset += segment.size
        # From here on only the event loop holds the requests: each is freed once answered.
        batch.clear()
        in_flight.finish = finish = None
        del segment
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


@dataclass(eq=False)
class _InFlight:
    """A batch the worker started and has not finished yet."""

    batch: list[_Segment]
    rows: int
    started: float  # perf_counter()
    # The batch function's second stage (or the error its first stage raised); None once
    # the outcome is handed to the event loop.
    finish: Callable[[], Sequence[Any]] | ServingError | None


def _eager(batch_function: BatchFunction) -> BatchStart:
    """The two stages of a batch function that has only one: all the work in the first."""

    def start(rows: list[Any]) -> Callable[[], Sequence[Any]]:
        results = batch_function(rows)
        return lambda: results

    return start

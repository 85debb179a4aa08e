"""What the batcher queues: a request's rows and its future, the segments batches are cut
into, the batch function's type and the observer that receives the measurements."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

BatchFunction = Callable[[list[Any]], Sequence[Any]]
# A batch function's first stage: start computing `rows` and return the second, which waits
# for and returns the results. A batch function with a `start` attribute of this type lets the
# worker start the next batch before it finishes the current one (see `Batcher`).
BatchStart = Callable[[list[Any]], Callable[[], Sequence[Any]]]


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


class _Request:
    """One caller's rows waiting for their batches (a plain class with slots: one is made per
    request on the event loop)."""

    __slots__ = (
        "arrived_idle",
        "cancelled",
        "deadline",
        "enqueued_at",
        "future",
        "remaining",
        "results",
        "rows",
        "shadow",
        "taken",
    )

    def __init__(
        self, rows: Sequence[Any], future: asyncio.Future[list[Any]], enqueued_at: float
    ) -> None:
        self.rows = rows
        self.future = future
        self.enqueued_at = enqueued_at
        self.deadline = math.inf
        self.arrived_idle = False  # the worker was not computing when this request came
        count = len(rows)
        self.results: list[Any] = [None] * count
        self.remaining = count  # rows whose results have not come back (event loop only)
        self.taken = 0  # rows handed to batches so far (under the lock)
        self.cancelled = False  # the caller gave up, or the request failed (under the lock)
        self.shadow = False  # a shadow copy: counted apart from the version's own requests

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

"""What the batcher queues: a request's rows and its future, the segments batches are cut
into, the batch function's type and the observer that receives the measurements."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

BatchFunction = Callable[[list[Any]], Sequence[Any]]


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

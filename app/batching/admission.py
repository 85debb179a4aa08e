"""Admission and the fair share: whether a request gets in, from the wait it would actually
see (the rows ahead of it, interleaved fairly, over the measured throughput), and how a batch's
room is split among the waiting requests."""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Sequence

from app.batching.requests import _Request
from app.errors import Unavailable

# A request may wait for others' rows up to this many times its own compute time (when that
# is longer than max_queue_wait_ms): two or three bulk clients share the model, a fourth waits.
BULK_SHARE = 2.0
# Weight of the newest batch in the throughput estimate: about the last 20 batches count.


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


class Admission:
    """The batcher's admission policy and throughput estimate (a base of `Batcher`: it reads
    the queue's state under the batcher's lock)."""

    name: str
    max_queue_rows: int
    max_queue_wait_s: float
    _queue: collections.deque[_Request]
    _queued_rows: int
    _arrivals: list[_Request]
    _arrival_rows: int
    _running_rows: int
    _ewma_rows: float
    _ewma_s: float
    _condition: threading.Condition

    @property
    def throughput_rows_per_s(self) -> float | None:
        """The measured model throughput in full batches (None before the first one)."""
        with self._condition:
            return self._throughput()

    def _throughput(self) -> float | None:
        return self._ewma_rows / self._ewma_s if self._ewma_s > 0 else None

    def expected_wait_s(self, size: int) -> float | None:
        """Seconds a request of `size` rows should expect to wait for other requests' rows
        (not its own) with fair interleaving: the batch in progress, plus from every queued
        request as many rows as this one has (a smaller one finishes first, a larger one
        shares equally), over the measured throughput. None before any full batch was measured."""
        ahead, rate, _ = self._ahead(size)
        return None if rate is None else ahead / rate

    def _ahead(self, size: int) -> tuple[int, float | None, int]:
        """(rows ahead of a request of `size` rows, throughput, rows queued), in one go.

        A single row (the common request) reads the counters without the batcher's lock:
        each read is atomic, and a snapshot that mixes the moments before and after a batch
        is taken is off by at most one batch, which an estimate can afford. Taking the lock
        on the event loop per request made it wait while the worker held it, and then for
        the GIL (py-spy, concurrency 64). A larger request takes the lock, to walk the
        queue."""
        if size == 1:
            ewma_s = self._ewma_s
            rate = self._ewma_rows / ewma_s if ewma_s > 0 else None
            ahead = len(self._arrivals)
            if rate is not None:
                ahead += self._running_rows + len(self._queue)
            return ahead, rate, self._queued_rows + self._arrival_rows
        ahead = sum(min(len(r.rows), size) for r in self._arrivals)
        with self._condition:
            rate = self._throughput()
            queued = self._queued_rows + self._arrival_rows
            if rate is not None:
                ahead += self._running_rows
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

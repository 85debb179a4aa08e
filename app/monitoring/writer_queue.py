"""What the monitoring writer queues: one `Record` per request, and each model version's
pending rows and probabilities in growable arrays (`_Pending`), handed to the writer process
as one `Group`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from app.monitoring.writer_process import Group

if TYPE_CHECKING:
    from app.repository import CardedVersion


class Record(NamedTuple):
    """One prediction request, as `Writer.submit(*record)` takes it."""

    request_id: str
    entry: CardedVersion  # name, version, card (labels, input kind) and folder of the version
    caller: str  # the API key's fingerprint ("" without keys)
    route: str
    created_at: float
    rows: Sequence[Any]  # as the version's adapter made them
    probabilities: np.ndarray  # (N, C), columns in the order of the card's labels


class _Pending:
    """One model version's queued rows, copied into arrays as they arrive.

    Copied rather than referenced: holding each request's own objects (its row arrays, the
    batch's output, the row list) until the next flush kept thousands of them alive, and
    the allocator then served every new request from cold memory: it cost the event loop
    more than the copies do (bench/RESULTS.md, issue 15)."""

    __slots__ = (
        "callers",
        "counts",
        "created_at",
        "entry",
        "objects",
        "probabilities",
        "request_ids",
        "routes",
        "rows",
        "size",
    )

    def __init__(self, entry: CardedVersion, capacity: int) -> None:
        self.entry = entry
        self.request_ids: list[str] = []
        self.callers: list[str] = []
        self.routes: list[str] = []
        self.created_at: list[float] = []
        self.counts: list[int] = []
        self.size = 0
        self.rows: np.ndarray | None = None  # (capacity, ...) when the rows are arrays
        self.objects: list[Any] | None = None  # otherwise: texts, or the rows themselves
        self.probabilities = np.empty((capacity, len(entry.card.labels) if entry.card else 0))

    def add(
        self,
        request_id: str,
        caller: str,
        route: str,
        created_at: float,
        rows: Sequence[Any],
        probabilities: np.ndarray,
    ) -> None:
        n, start = len(rows), self.size
        end = start + n
        if end > len(self.probabilities):
            self._grow(max(end, 2 * len(self.probabilities)))
        self.probabilities[start:end] = probabilities
        buffer = self.rows
        if (  # one array row like the others (the common request): copied in one step
            n == 1
            and buffer is not None
            and isinstance(row := rows[0], np.ndarray)
            and row.dtype == buffer.dtype
            and row.shape == buffer.shape[1:]
        ):
            buffer[start] = row
        elif self.objects is None and not self._copy(rows, start):
            # Texts (and rows unlike the others): kept as objects from now on.
            self.objects = [] if self.rows is None else list(self.rows[:start])
            self.rows = None
        if self.objects is not None:
            # Reviews (EncodedText) as their text: what monitoring measures.
            self.objects.extend(getattr(row, "text", row) for row in rows)
        self.request_ids.append(request_id)
        self.callers.append(caller)
        self.routes.append(route)
        self.created_at.append(created_at)
        self.counts.append(n)
        self.size = end

    def _copy(self, rows: Sequence[Any], start: int) -> bool:
        """Copy array rows into `self.rows` at `start`; False for rows that are not arrays
        of one shape (nothing copied that counts)."""
        if not rows:
            return True
        if not all(isinstance(row, np.ndarray) for row in rows):
            return False
        try:  # one copy of the request's rows, not one per row (a bulk request: 1,000)
            block = np.stack(rows)
        except ValueError:  # rows of different shapes
            return False
        buffer = self.rows
        if buffer is None or block.dtype != buffer.dtype:
            # The first rows, or a route that makes another dtype (float32 and float64
            # tabular rows): the wider dtype keeps every value exact.
            dtype = block.dtype if buffer is None else np.result_type(buffer, block)
            shape = block.shape[1:] if buffer is None else buffer.shape[1:]
            widened = np.empty((len(self.probabilities), *shape), dtype)
            if buffer is not None:
                widened[:start] = buffer[:start]
            buffer = self.rows = widened
        if block.shape[1:] != buffer.shape[1:]:
            return False
        buffer[start : start + len(block)] = block
        return True

    def _grow(self, capacity: int) -> None:
        probabilities = np.empty((capacity, self.probabilities.shape[1]))
        probabilities[: self.size] = self.probabilities[: self.size]
        self.probabilities = probabilities
        if self.rows is not None:
            rows = np.empty((capacity, *self.rows.shape[1:]), self.rows.dtype)
            rows[: self.size] = self.rows[: self.size]
            self.rows = rows

    def group(self) -> Group:
        entry = self.entry
        rows = self.rows[: self.size] if self.rows is not None else self.objects
        return Group(
            entry.name,
            entry.version,
            self.request_ids,
            self.callers,
            self.routes,
            self.created_at,
            self.counts,
            rows,
            self.probabilities[: self.size],
        )


def _rows_bytes(rows: Sequence[Any]) -> int:
    """Memory a request's rows take once queued: arrays of one shape as their bytes (the
    first row's times the count: the queue copies them into one array), texts as their
    characters."""
    first = rows[0] if rows else None
    if isinstance(first, np.ndarray):
        return int(first.nbytes) * len(rows)
    return sum(len(getattr(row, "text", "")) for row in rows) + 64 * len(rows)

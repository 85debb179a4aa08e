"""Payload logging: each sampled prediction as two CloudEvents 1.0 JSON events.

`SYNERGY_PAYLOAD_LOG`: `off`, `stdout`, a file path (appended, one event a line), or an
http(s) URL (events POSTed in batches as `application/cloudevents-batch+json`). The request
event (`type` `io.synergy.inference.request`) and the response event
(`io.synergy.inference.response`) each have an id of their own (CloudEvents: source + id
unique per event; a client's `X-Request-ID` may repeat), and carry the request's
`X-Request-ID` in the `requestid` extension attribute. The request data holds the decoded
instances as the model's input rows, as JSON: V2 binary tensors and base64 images are logged
readable (an image as its 28x28 grey levels), not as bytes.

Bounded in bytes and non-blocking like the store (docs/security.md): the queue holds at most
`max_bytes` of input rows (and `max_events` requests), one write at most `BATCH_BYTES`; an
event over `max_event_bytes` is written without its instances (or predictions); a file is
rotated at `max_file_bytes`. What is dropped is counted
(`synergy_monitoring_dropped_rows_total{sink="payload_log"}`) and logged (at most once a
minute). One thread serialises and writes.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from app.adapters.base import RowWarnings
from app.preprocessing.text import EncodedText
from app.protocols.v1 import with_warnings

log = logging.getLogger(__name__)

REQUEST_TYPE = "io.synergy.inference.request"
RESPONSE_TYPE = "io.synergy.inference.response"
HTTP_TIMEOUT_S = 5.0
# One write (a POST, or lines appended) holds at most about this many bytes of queued rows.
BATCH_BYTES = 1024 * 1024
DROP_LOG_INTERVAL_S = 60.0
# What a queued row is counted as beyond its own data (the tuple, the list, the labels).
ITEM_OVERHEAD_BYTES = 256


def _row_bytes(row: Any) -> int:
    """Memory one queued input row holds (what the queue's byte bound counts)."""
    if isinstance(row, np.ndarray):
        return int(row.nbytes)
    if isinstance(row, EncodedText):
        return len(row.text) + (int(row.ids.nbytes) if row.ids is not None else 0)
    if isinstance(row, str | bytes):
        return len(row)
    return 64


def _default(value: Any) -> Any:
    if isinstance(value, EncodedText):  # a review, logged as the text the client sent
        return value.text
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError


def cloud_events(
    request_id: str,
    model: str,
    version: int,
    rows: list[Any],
    predictions: list[dict[str, Any]],
    at: float,
    event_id: str | None = None,
) -> list[dict[str, Any]]:
    """The request and response events of one prediction; their ids are `event_id` + "-req"
    and + "-res" (`event_id` unique per prediction; by default a random one)."""
    time_text = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    event_id = event_id or secrets.token_hex(8)
    common = {
        "specversion": "1.0",
        "source": f"/synergy-serve/models/{model}/versions/{version}",
        "time": time_text,
        "datacontenttype": "application/json",
        "subject": model,
        "requestid": request_id,
    }
    return [
        {
            "id": f"{event_id}-req",
            **common,
            "type": REQUEST_TYPE,
            "data": {"model": model, "version": version, "instances": rows},
        },
        {
            "id": f"{event_id}-res",
            **common,
            "type": RESPONSE_TYPE,
            "data": {"model": model, "version": version, "predictions": predictions},
        },
    ]


class PayloadLogger:
    """The bounded event queue and its thread (see the module docstring)."""

    def __init__(
        self,
        target: str,
        *,
        max_events: int,
        on_drop: Callable[[int], None],
        max_bytes: int = 32 * 1024 * 1024,
        max_event_bytes: int = 64 * 1024,
        max_file_bytes: int = 100 * 1024 * 1024,
        backup_files: int = 3,
    ) -> None:
        self.target = target
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_event_bytes = max_event_bytes
        self.max_file_bytes = max_file_bytes
        self.backup_files = backup_files
        self.on_drop = on_drop
        self._queue: deque[
            tuple[
                str,
                str,
                int,
                Sequence[Any],
                Callable[[np.ndarray], list[dict[str, Any]]],
                np.ndarray,
                float,
                int,
                Sequence[RowWarnings],
            ]
        ] = deque()
        # Bytes of the rows queued or being written: what the bound counts.
        self.held_bytes = 0
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._file_bytes = 0
        self._path: Path | None = None
        # Event ids: this process's random prefix and a counter (unique per event).
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count()
        self._dropped_since_log = 0
        self._drop_logged_at = -DROP_LOG_INTERVAL_S

    def start(self) -> None:
        if self.target != "stdout" and not self.target.startswith(("http://", "https://")):
            path = self._path = Path(self.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")
            self._file_bytes = self._file.tell()
        self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._file is not None:
            self._file.close()

    def submit(
        self,
        request_id: str,
        model: str,
        version: int,
        rows: Sequence[Any],
        encode: Callable[[np.ndarray], list[dict[str, Any]]],
        probabilities: np.ndarray,
        warnings: Sequence[RowWarnings] = (),
    ) -> None:
        """Queue one prediction's events (dropped and counted when the queue is full, in
        events or in bytes): its rows as the adapter made them, its `(N, C)` model outputs,
        the task's encoder of those outputs into the response's prediction objects
        (`Task.encode_v1` of its card) and its rows' input warnings."""
        size = ITEM_OVERHEAD_BYTES + int(probabilities.nbytes) + sum(_row_bytes(r) for r in rows)
        with self._condition:
            full = (
                self._stopping
                or len(self._queue) >= self.max_events
                or self.held_bytes + size > self.max_bytes
            )
            if not full:
                self.held_bytes += size
                self._queue.append(
                    (
                        request_id,
                        model,
                        version,
                        rows,
                        encode,
                        probabilities,
                        time.time(),
                        size,
                        warnings,
                    )
                )
        if full:
            self._dropped(len(rows), "the queue is full (SYNERGY_PAYLOAD_LOG_QUEUE_BYTES)")

    def _dropped(self, rows: int, why: str) -> None:
        self.on_drop(rows)
        self._dropped_since_log += rows
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_INTERVAL_S:
            log.warning(
                "payload log: %d rows not logged since the last warning: %s",
                self._dropped_since_log,
                why,
            )
            self._dropped_since_log = 0
            self._drop_logged_at = now

    def _take(self) -> list[tuple[Any, ...]]:
        """Up to `BATCH_BYTES` of queued items (at least one)."""
        with self._condition:
            if not self._queue:
                if self._stopping:
                    raise StopIteration
                self._condition.wait(0.2)
            items: list[tuple[Any, ...]] = []
            taken = 0
            while self._queue and (not items or taken + self._queue[0][7] <= BATCH_BYTES):
                item = self._queue.popleft()
                taken += item[7]
                items.append(item)
            return items

    def _run(self) -> None:
        while True:
            try:
                items = self._take()
            except StopIteration:
                return
            if not items:
                continue
            try:
                # The response's predictions in the V1 shape, built here rather than on the
                # event loop.
                lines = [
                    self._encode(event)
                    for (
                        request_id,
                        model,
                        version,
                        rows,
                        encode,
                        probabilities,
                        at,
                        _,
                        warned,
                    ) in items
                    for event in cloud_events(
                        request_id,
                        model,
                        version,
                        list(rows),
                        with_warnings(encode(probabilities), warned),
                        at,
                        f"{self._prefix}-{next(self._counter)}",
                    )
                ]
                self._write(lines)
            except Exception as exc:  # noqa: BLE001 - a broken sink must not end the thread
                self._dropped(sum(len(item[3]) for item in items), f"writing failed: {exc}")
            finally:
                with self._condition:
                    self.held_bytes -= sum(item[7] for item in items)
                del items

    def _encode(self, event: dict[str, Any]) -> bytes:
        """One event's JSON; over `max_event_bytes`, without its instances or predictions
        (the rest of the event says which request it was)."""
        options = orjson.OPT_SERIALIZE_NUMPY
        data = orjson.dumps(event, default=_default, option=options)
        if len(data) <= self.max_event_bytes:
            return data
        body = dict(event["data"])
        field = "instances" if "instances" in body else "predictions"
        body[field] = None
        body[f"{field}_omitted"] = (
            f"{len(data)} bytes of JSON, over SYNERGY_PAYLOAD_LOG_MAX_EVENT_BYTES "
            f"({self.max_event_bytes})"
        )
        return orjson.dumps({**event, "data": body}, default=_default, option=options)

    def _write(self, lines: list[bytes]) -> None:
        if self.target.startswith(("http://", "https://")):
            request = urllib.request.Request(  # noqa: S310 - the operator's configured URL
                self.target,
                data=b"[" + b",".join(lines) + b"]",
                headers={"Content-Type": "application/cloudevents-batch+json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S):  # noqa: S310
                pass
            return
        if self._file is not None:
            chunk: list[bytes] = []
            for line in lines:
                size = len(line) + 1
                if self._file_bytes and self._file_bytes + size > self.max_file_bytes:
                    self._file.write(b"".join(chunk))
                    chunk = []
                    self._rotate()
                chunk.append(line + b"\n")
                self._file_bytes += size
            self._file.write(b"".join(chunk))
            self._file.flush()
        else:
            text = b"".join(line + b"\n" for line in lines)
            sys.stdout.buffer.write(text)
            sys.stdout.flush()

    def _rotate(self) -> None:
        """file -> file.1 -> ... -> file.N (the oldest dropped); a new file."""
        assert self._file is not None and self._path is not None
        self._file.close()
        path = self._path
        if self.backup_files:
            for index in range(self.backup_files - 1, 0, -1):
                older = path.with_name(f"{path.name}.{index}")
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
            os.replace(path, path.with_name(f"{path.name}.1"))
            self._file = path.open("ab")
        else:
            self._file = path.open("wb")
        self._file_bytes = 0

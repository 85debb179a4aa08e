"""Payload logging: each sampled prediction as two CloudEvents 1.0 JSON events.

`SYNERGY_PAYLOAD_LOG`: `off`, `stdout`, a file path (appended, one event a line), or an
http(s) URL (events POSTed in batches as `application/cloudevents-batch+json`). The request
event (`type` `io.synergy.inference.request`) and the response event
(`io.synergy.inference.response`) share the request's id (the `X-Request-ID`). The request
data holds the decoded instances as the model's input rows, as JSON: V2 binary tensors and
base64 images are logged readable (an image as its 28x28 grey levels), not as bytes.

Bounded and non-blocking like the store: a full queue drops events and counts them
(`synergy_monitoring_dropped_rows_total{sink="payload_log"}`); one thread serialises and
writes.
"""

from __future__ import annotations

import logging
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
from app.protocols.v1 import encode_predictions

log = logging.getLogger(__name__)

REQUEST_TYPE = "io.synergy.inference.request"
RESPONSE_TYPE = "io.synergy.inference.response"
HTTP_TIMEOUT_S = 5.0


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
) -> list[dict[str, Any]]:
    """The request and response events of one prediction."""
    time_text = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    common = {
        "specversion": "1.0",
        "id": request_id,
        "source": f"/synergy-serve/models/{model}/versions/{version}",
        "time": time_text,
        "datacontenttype": "application/json",
        "subject": model,
    }
    return [
        {
            **common,
            "type": REQUEST_TYPE,
            "data": {"model": model, "version": version, "instances": rows},
        },
        {
            **common,
            "type": RESPONSE_TYPE,
            "data": {"model": model, "version": version, "predictions": predictions},
        },
    ]


class PayloadLogger:
    """The bounded event queue and its thread (see the module docstring)."""

    def __init__(self, target: str, *, max_events: int, on_drop: Callable[[int], None]) -> None:
        self.target = target
        self.max_events = max_events
        self.on_drop = on_drop
        self._queue: deque[
            tuple[
                str,
                str,
                int,
                Sequence[Any],
                Sequence[str],
                np.ndarray,
                Sequence[RowWarnings],
                float,
            ]
        ] = deque()
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None

    def start(self) -> None:
        if self.target != "stdout" and not self.target.startswith(("http://", "https://")):
            path = Path(self.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")
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
        labels: Sequence[str],
        probabilities: np.ndarray,
        warnings: Sequence[RowWarnings] = (),
    ) -> None:
        """Queue one prediction's events (dropped and counted when the queue is full): its
        rows as the adapter made them, its `(N, C)` probabilities over `labels` and its
        rows' input warnings."""
        with self._condition:
            if len(self._queue) >= self.max_events or self._stopping:
                full = True
            else:
                full = False
                self._queue.append(
                    (request_id, model, version, rows, labels, probabilities, warnings, time.time())
                )
        if full:
            self.on_drop(len(rows))

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._queue:
                    if self._stopping:
                        return
                    self._condition.wait(0.2)
                items = list(self._queue)
                self._queue.clear()
            if not items:
                continue
            # The response's predictions in the V1 shape, built here rather than on the
            # event loop.
            events = [
                event
                for request_id, model, version, rows, labels, probabilities, warned, at in items
                for event in cloud_events(
                    request_id,
                    model,
                    version,
                    list(rows),
                    encode_predictions(labels, probabilities, warned),
                    at,
                )
            ]
            try:
                self._write(events)
            except Exception:  # a broken sink must not end the thread
                log.exception("payload log: writing %d events failed", len(events))
                self.on_drop(sum(len(item[3]) for item in items))

    def _write(self, events: list[dict[str, Any]]) -> None:
        options = orjson.OPT_SERIALIZE_NUMPY
        if self.target.startswith(("http://", "https://")):
            request = urllib.request.Request(  # noqa: S310 - the operator's configured URL
                self.target,
                data=orjson.dumps(events, default=_default, option=options),
                headers={"Content-Type": "application/cloudevents-batch+json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S):  # noqa: S310
                pass
            return
        lines = b"".join(
            orjson.dumps(event, default=_default, option=options) + b"\n" for event in events
        )
        if self._file is not None:
            self._file.write(lines)
            self._file.flush()
        else:
            sys.stdout.buffer.write(lines)
            sys.stdout.flush()

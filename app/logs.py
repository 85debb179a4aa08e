"""Logging on stdout: one JSON object per line for machines (containers, pipes, log
collectors), or readable text lines for people at a terminal (`SYNERGY_LOG_FORMAT`)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal, TextIO

import orjson

from app.log_writer import DEFAULT_MAX_QUEUED_BYTES, StreamWriter, WriterHandler, stdout_writer

LogFormat = Literal["json", "text"]
# Routes that load balancers and probes call every few seconds: counted in the metrics
# (`synergy_requests_total{endpoint="ready"}`...), not written to the access log by default.
HEALTH_PATHS = ("/health/", "/v2/health/")


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields}`; access logs carry their fields flat."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            payload.update(fields)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class TextFormatter(logging.Formatter):
    """`HH:MM:SS.mmm level  message  key=value ...`: one readable line per record."""

    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        line = f"{clock} {record.levelname.lower():<7} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if fields:
            message = record.getMessage()
            extra = [
                f"{k}={v}"
                for k, v in fields.items()
                if k != "event" and v is not None and str(v) not in message
            ]
            line += "  " + " ".join(extra) if extra else ""
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def resolve_format(setting: str, stream: TextIO | None = None) -> LogFormat:
    """`auto` is text when stdout is a terminal (a person runs it) and JSON otherwise (a
    container, a pipe, a log collector); `json` and `text` are as named."""
    if setting in ("json", "text"):
        return setting  # type: ignore[return-value]
    stream = stream or sys.stdout
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return "json"


def configure_logging(level: str, log_format: LogFormat = "json") -> None:
    """Our loggers and uvicorn's in one format on stdout, written by a thread of their own
    (`app.log_writer`: a stalled reader never blocks a log call); uvicorn's own access log is
    replaced by ours."""
    formatter = TextFormatter() if log_format == "text" else JsonFormatter()

    writer = stdout_writer()
    writer.notice = _dropped_notice(formatter, "synergy.logs")
    handler = WriterHandler(writer)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Libraries that are chatty at INFO. JAX logs "Unable to initialize backend 'tpu'" at INFO
    # on every start without a TPU: expected on CPU and GPU machines, but it reads like an error.
    # Alembic announces each of its plugins at INFO at every start (the migration itself is
    # logged by the store at INFO, and Alembic's warnings still pass).
    for name in (
        "tensorflow",
        "absl",
        "h5py",
        "PIL",
        "jax",
        "alembic.runtime.plugins",
        "alembic.runtime.migration",
    ):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class AccessLog:
    """One line per request, in the format of the other log lines, written in batches.

    Going through `logging` costs about 120 us of CPU per request (a LogRecord, handler
    locks and a flush syscall per line); on a GIL-bound server that is a third of the budget.
    Lines are serialised with orjson into a list and flushed by a background task every
    `flush_interval_s`, or at once when `max_buffer_bytes` have piled up.
    """

    def __init__(
        self,
        stream: BinaryIO | None = None,
        *,
        log_format: LogFormat = "json",
        health: bool = False,
        flush_interval_s: float = 0.1,
        max_buffer_bytes: int = 64 * 1024,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._text = log_format == "text"
        # The lines go out on a thread of their own (stdout's, shared with `logging`): a
        # stalled stdout reader must not stop the event loop that flushes them. Beyond
        # max_queued_bytes, lines are dropped and counted, and a line says so once the reader
        # is back.
        if stream is None:
            self._writer = stdout_writer()
        else:
            self._writer = StreamWriter(stream, max_queued_bytes=max_queued_bytes)
        if self._writer.notice is None:
            formatter = TextFormatter() if self._text else JsonFormatter()
            self._writer.notice = _dropped_notice(formatter, "synergy.access")
        self._on_drop = on_drop
        self._dropped_lines = 0
        # Paths not logged per request (probes); None: log every path.
        self.quiet_paths: tuple[str, ...] | None = None if health else HEALTH_PATHS
        self._flush_interval_s = flush_interval_s
        self._max_buffer_bytes = max_buffer_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._second = -1
        self._prefix = ""

    def logs(self, path: str) -> bool:
        """Whether a request to `path` gets a line (health probes do not, by default)."""
        return self.quiet_paths is None or not path.startswith(self.quiet_paths)

    def write(self, fields: dict[str, Any]) -> None:
        """Queue one access line (call on the event loop)."""
        line = (
            self._text_line(fields)
            if self._text
            else orjson.dumps(
                {
                    "ts": self._timestamp(),
                    "level": "info",
                    "logger": "synergy.access",
                    "msg": "request",
                    **fields,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self._max_buffer_bytes:
            self.flush()

    def _timestamp(self) -> str:
        """Now, as `JsonFormatter` writes it ("2026-12-06T20:27:26.123+00:00"): the date and
        time are formatted once per second, only the milliseconds per line."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._prefix}{int((now - second) * 1000):03d}+00:00"

    @staticmethod
    def _text_line(fields: dict[str, Any]) -> bytes:
        clock = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        model = fields.get("model")
        served = f"  {model} v{fields.get('version')}" if model else ""
        rows = f" rows={fields['rows']}" if fields.get("rows") else ""
        return (
            f"{clock} {'info':<7} {fields['method']} {fields['path']} {fields['status']} "
            f"{fields['latency_ms']:.1f} ms{served}{rows}  id={fields['request_id']}\n"
        ).encode()

    def flush(self) -> None:
        """Hand whatever is queued to the writer thread (never waits for the stream)."""
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        if not self._writer.write(data):
            lines = len(data.splitlines())
            self._dropped_lines += lines
            if self._on_drop is not None:
                self._on_drop(lines)

    def drain(self, timeout_s: float = 1.0) -> bool:
        """Flush, and wait up to `timeout_s` for the lines to reach the stream (blocks: tests,
        shutdown); whether they did."""
        self.flush()
        return self._writer.drain(timeout_s)

    @property
    def dropped_lines(self) -> int:
        """Lines dropped since start because the stream was not read fast enough."""
        return self._dropped_lines

    async def run(self) -> None:
        """Flush periodically until cancelled, then flush once more and give the writer up to
        a second (off the event loop) to write the last lines."""
        try:
            while True:
                await asyncio.sleep(self._flush_interval_s)
                self.flush()
        finally:
            self.flush()
            await asyncio.to_thread(self._writer.drain, 1.0)


def _dropped_notice(formatter: logging.Formatter, logger: str) -> Callable[[int], bytes]:
    """The line a `StreamWriter` writes where lines were dropped: a warning of `logger` in
    the log's format (formatted on the writer thread, from a record of its own)."""

    def notice(lines: int) -> bytes:
        message = (
            f"{lines} log line(s) dropped: stdout was not read fast enough (the server never "
            "waits for its log reader)"
        )
        record = logging.LogRecord(logger, logging.WARNING, __file__, 0, message, (), None)
        return (formatter.format(record) + "\n").encode()

    return notice

"""Writing log lines to stdout from a thread of their own, so that a stalled reader never
stalls the server.

A write to a pipe blocks once the pipe's buffer (64 KiB on Linux) is full and nobody reads
it: a log collector that hangs, `docker logs` piped into a slow consumer, a terminal paused
with Ctrl-S. Written on the event loop (the access log's flush, any `log.info` there), that
write would stop every request of the process. So every line goes through a `StreamWriter`:
the caller only queues bytes, a daemon thread writes them, and when the queue already holds
`max_queued_bytes` (the reader is that far behind) new lines are dropped and counted rather
than held without bound. `logging`'s own `QueueHandler` and `QueueListener` do the hand-over
but not the bound: a bounded queue there reports each drop by printing a traceback to stderr,
which can be the same stalled pipe.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

# About 30,000 access lines: a minute of heavy traffic with a reader that has stopped.
DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024


class StreamWriter:
    """Queue bytes for `stream` (binary, or text: decoded as UTF-8; None: whatever
    `sys.stdout` is when the lines are written), written in order by one daemon thread
    (started with the first write). `write` never blocks on the stream; `drain` and `close`
    wait at most their timeout for what is queued to be written.

    `notice(lines)`, when set, makes the line written ahead of the next lines that do go out
    after some were dropped, saying how many (so the log itself shows the gap)."""

    def __init__(
        self,
        stream: IO[Any] | None = None,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        name: str = "log-writer",
    ) -> None:
        self._stream = stream
        self._max_queued_bytes = max_queued_bytes
        self.notice: Callable[[int], bytes] | None = None
        self._unreported_lines = 0
        self._name = name
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._writing = False
        self._closed = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self.dropped_lines = 0

    def write(self, data: bytes) -> bool:
        """Queue `data` (whole lines); False (the lines dropped, and counted) when the queue
        already holds `max_queued_bytes` or the writer is closed."""
        if not data:
            return True
        with self._condition:
            if self._closed or self._queued_bytes + len(data) > self._max_queued_bytes:
                lines = data.count(b"\n") or 1
                self.dropped_lines += lines
                self._unreported_lines += lines
                return False
            self._chunks.append(data)
            self._queued_bytes += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._condition.notify()
        return True

    @property
    def queued_bytes(self) -> int:
        """Bytes queued and not yet handed to the stream."""
        with self._condition:
            return self._queued_bytes

    def drain(self, timeout_s: float = 1.0) -> bool:
        """Wait up to `timeout_s` for everything queued so far to be written; whether it was."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._chunks and not self._writing, timeout_s
            )

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop taking lines; wait up to `timeout_s` for the queued ones to be written. True
        when everything queued was written (False: the reader is stalled; the rest is lost)."""
        with self._condition:
            self._closed = True
            self._condition.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._condition:
            return not self._chunks and not self._writing

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._chunks and not self._closed:
                    self._condition.wait()
                if not self._chunks:
                    return  # closed, everything written
                data = b"".join(self._chunks)
                self._chunks.clear()
                self._writing = True
                unreported, self._unreported_lines = self._unreported_lines, 0
            notice = self.notice(unreported) if unreported and self.notice else b""
            # A closed stdout: nothing better to do with the lines.
            with contextlib.suppress(OSError, ValueError):
                _write(self._stream or sys.stdout, notice + data)
            with self._condition:
                self._queued_bytes -= len(data)
                self._writing = False
                self._condition.notify_all()


class WriterHandler(logging.Handler):
    """A `logging` handler that formats on the caller's thread and queues the line on a
    `StreamWriter` (used for every logger, so no log call blocks on stdout)."""

    def __init__(self, writer: StreamWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - a record that cannot be formatted: logging reports it
            self.handleError(record)
            return
        self.writer.write(line.encode("utf-8", "backslashreplace"))

    def close(self) -> None:
        # logging.shutdown() (at exit) closes handlers: the last lines get a second to go out.
        self.writer.drain()
        super().close()


def _write(stream: Any, data: bytes) -> None:
    if isinstance(stream, io.TextIOBase):
        binary = getattr(stream, "buffer", None)
        if binary is None:  # a text-only stream (a test's StringIO)
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
            return
        stream.flush()  # anything written to the text layer goes first
        stream = binary
    stream.write(data)
    stream.flush()


_stdout: StreamWriter | None = None
_stdout_lock = threading.Lock()


def stdout_writer() -> StreamWriter:
    """The process's one writer of stdout, shared by `logging` (`configure_logging`) and the
    access log: one thread writes every line, so lines never interleave mid-way (two writers
    of one pipe would: a write larger than the pipe's buffer is not atomic). Process-wide
    because stdout is."""
    global _stdout
    with _stdout_lock:
        if _stdout is None:
            _stdout = StreamWriter(name="stdout-writer")
        return _stdout

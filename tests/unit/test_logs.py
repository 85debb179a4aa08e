"""Log set-up: what reaches the operator's log stream."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.log_writer import StreamWriter, WriterHandler
from app.logs import AccessLog, configure_logging, resolve_format


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    library_levels = {n: logging.getLogger(n).level for n in ("jax", "tensorflow", "absl")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in library_levels.items():
        logging.getLogger(name).setLevel(saved)


def test_library_info_notices_do_not_reach_the_log_but_their_warnings_do(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    configure_logging("info")
    # What JAX logs on every start of a machine without a TPU.
    logging.getLogger("jax._src.xla_bridge").info("Unable to initialize backend 'tpu'")
    logging.getLogger("jax._src.xla_bridge").warning("a real warning")
    logging.getLogger("app.service").info("model ready")
    _drain_root()
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if "tpu" in line]
    assert any("a real warning" in line for line in lines)
    assert any("model ready" in line for line in lines)


def _drain_root() -> None:
    """Wait for the root handler's writer thread to write what was logged."""
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, WriterHandler) and handler.writer.drain(5.0)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_auto_is_text_at_a_terminal_and_json_elsewhere() -> None:
    assert resolve_format("auto", _Stream(tty=True)) == "text"
    assert resolve_format("auto", _Stream(tty=False)) == "json"
    assert resolve_format("json", _Stream(tty=True)) == "json"
    assert resolve_format("text", _Stream(tty=False)) == "text"


def test_text_lines_are_readable_and_json_lines_parse(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for log_format in ("text", "json"):
        stream = io.StringIO()
        monkeypatch.setattr("sys.stdout", stream)
        configure_logging("info", log_format)
        logging.getLogger("synergy.server").info(
            "ready: 1 model", extra={"fields": {"event": "ready", "docs_url": "http://h/docs"}}
        )
        _drain_root()
        [line] = stream.getvalue().splitlines()
        if log_format == "text":
            assert re.fullmatch(
                r"\d\d:\d\d:\d\d\.\d{3} info +ready: 1 model  docs_url=http://h/docs", line
            )
        else:
            record = json.loads(line)
            assert (record["msg"], record["event"], record["level"]) == (
                "ready: 1 model",
                "ready",
                "info",
            )


def _access(path: str) -> dict[str, Any]:
    return {
        "request_id": "r1",
        "method": "POST",
        "path": path,
        "model": "iris-knn",
        "version": 2,
        "status": 200,
        "rows": 3,
        "latency_ms": 1.234,
    }


def test_health_probes_are_not_access_logged_unless_asked() -> None:
    quiet = AccessLog(io.BytesIO())
    assert not quiet.logs("/health/ready") and not quiet.logs("/v2/health/live")
    assert quiet.logs("/v1/models/iris-knn:predict") and quiet.logs("/v2/models/x/ready")
    assert AccessLog(io.BytesIO(), health=True).logs("/health/live")


def test_access_lines_in_text_and_json() -> None:
    text_stream, json_stream = io.BytesIO(), io.BytesIO()
    text, as_json = AccessLog(text_stream, log_format="text"), AccessLog(json_stream)
    for log in (text, as_json):
        log.write(_access("/v1/models/iris-knn:predict"))
        assert log.drain()
    line = text_stream.getvalue().decode()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} info +POST /v1/models/iris-knn:predict 200 1\.2 ms  "
        r"iris-knn v2 rows=3  id=r1\n",
        line,
    )
    record = json.loads(json_stream.getvalue())
    assert record["path"] == "/v1/models/iris-knn:predict" and record["latency_ms"] == 1.234


class _StalledReader(io.BytesIO):
    """A stdout whose reader stopped: every write blocks until `resume` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.resume = threading.Event()
        self.writing = threading.Event()

    def write(self, data: Any) -> int:
        self.writing.set()
        assert self.resume.wait(10)
        return super().write(data)


def test_a_stalled_log_reader_never_blocks_the_caller_and_gaps_are_counted_and_marked() -> None:
    stream, dropped = _StalledReader(), list[int]()
    log = AccessLog(stream, max_queued_bytes=1000, on_drop=dropped.append)
    started = time.perf_counter()
    log.write(_access("/v1/models/a:predict"))
    log.flush()
    assert stream.writing.wait(5)  # the writer thread is now stuck in write()
    for index in range(40):  # ~170 bytes each: far more than max_queued_bytes
        log.write(_access(f"/v1/models/m{index}:predict"))
        log.flush()
    assert time.perf_counter() - started < 2  # no flush waited for the reader
    assert sum(dropped) == log.dropped_lines > 30 and not log.drain(0.1)
    stream.resume.set()
    assert log.drain(5)  # the reader is back: what was queued goes out, then new lines do
    log.write(_access("/v1/models/after:predict"))
    assert log.drain(5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["path"] == "/v1/models/a:predict"  # taken before the reader stalled
    notices = [line for line in lines if line["level"] == "warning"]
    assert len(notices) == 1 and notices[0]["msg"].startswith(f"{log.dropped_lines} log line")
    paths = [line["path"] for line in lines if "path" in line]
    kept = [p for p in paths if p.startswith("/v1/models/m")]
    assert paths[-1] == "/v1/models/after:predict" and len(kept) == 40 - log.dropped_lines


def test_log_calls_never_wait_for_stdout(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _StalledReader()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(stream))
    configure_logging("info", "json")
    started = time.perf_counter()
    logging.getLogger("app.service").info("first")
    assert stream.writing.wait(5)
    for index in range(100):
        logging.getLogger("app.service").warning("line %d", index)
    assert time.perf_counter() - started < 2
    stream.resume.set()
    _drain_root()


def test_a_closed_writer_takes_no_more_lines_and_a_text_stream_gets_text() -> None:
    text = io.StringIO()
    writer = StreamWriter(text)
    assert writer.write("é\n".encode())
    assert writer.close(5) and text.getvalue() == "é\n"
    assert not writer.write(b"late\n") and writer.dropped_lines == 1

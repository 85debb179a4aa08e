"""The console of `python -m app` (what `make run` shows): at a terminal, readable lines and one
line when ready naming the models and the addresses to open; no line per health probe."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import start_server, start_server_with_output


def _read_until(fd: int, pattern: str, timeout_s: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not re.search(pattern, seen.decode(errors="replace")):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the terminal closed: the process exited
                break
    return seen.decode(errors="replace")


def test_at_a_terminal_the_log_is_text_with_one_ready_line(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    controller, terminal = pty.openpty()
    server = start_server_with_output(terminal, tmp_path / "server.log", models, wait_path=None)
    process, url = server.process, server.url
    os.close(terminal)
    try:
        console = _read_until(controller, r"ready: .*\n", 120)
        assert re.search(
            rf"\d\d:\d\d:\d\d\.\d{{3}} info +ready: 1 model \(iris-knn v2\) in [\d.]+s; "
            rf"API docs {re.escape(url)}/docs; "
            rf"report pages {re.escape(url)}/v1/models/<name>/report",
            console,
        ), console
        assert "loading 1 model (iris-knn)" in console
        assert not [line for line in console.splitlines() if line.lstrip().startswith("{")]
        for _ in range(3):
            httpx.get(f"{url}/health/ready", headers={"X-Request-ID": "probe-1"})
        httpx.get(f"{url}/v1/models", headers={"X-Request-ID": "people-1"})
        console += _read_until(controller, r"id=people-1", 10)
        assert re.search(r"info +GET /v1/models 200 [\d.]+ ms  id=people-1", console), console
        assert "probe-1" not in console
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        os.close(controller)


def test_json_lines_when_not_a_terminal_or_probes_when_asked(tmp_path: Path) -> None:
    """The JSON default (no terminal) is covered by test_server; this checks the two settings
    that override the defaults."""
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    server = start_server(
        tmp_path / "server.log",
        models,
        SYNERGY_LOG_FORMAT="text",
        SYNERGY_LOG_HEALTH_REQUESTS="true",
    )
    try:
        httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "probe-2"})
        deadline = time.monotonic() + 5
        while "probe-2" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log.read_text()
        assert re.search(r"info +GET /health/live 200 [\d.]+ ms  id=probe-2", log), log
        assert "ready: 1 model (iris-knn v2)" in log
    finally:
        server.stop()

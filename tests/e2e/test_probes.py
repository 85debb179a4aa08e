"""Probes under a connection flood (docs/security.md), on a real server: silent connections
that fill SYNERGY_MAX_CONNECTIONS on the main port, and a flood of the probe port itself,
leave liveness and readiness answered on the probe listener."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import Server, free_port, start_server

MAX_CONNECTIONS = 8
PROBES = 100


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    models = tmp_path_factory.mktemp("iris-only")
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    log = tmp_path_factory.mktemp("probes") / "server.log"
    probe_port = free_port()
    server = start_server(
        log,
        models_dir=models,
        SYNERGY_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        SYNERGY_HEADER_TIMEOUT_S="60",  # the flood's sockets stay for the whole test
        SYNERGY_PROBE_PORT=str(probe_port),
    )
    yield server, probe_port
    server.stop()
    assert "Traceback" not in log.read_text()


def _probe(port: int, path: str) -> int:
    """The status of one probe (0: refused or closed without an answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return 0
                data += chunk
    except OSError:
        return 0
    return int(data.split(b" ", 2)[1])


def _silent(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return sockets


def test_probes_answer_while_silent_connections_fill_every_slot(
    flooded: tuple[Server, int],
) -> None:
    server, probe_port = flooded
    main_port = int(server.url.rsplit(":", 1)[1])
    flood = _silent(main_port, MAX_CONNECTIONS + 4)
    flood += _silent(probe_port, 200)  # the probe port flooded too
    try:
        # The main port is full: its own health path cannot answer (the failure this closes).
        assert _probe(main_port, "/health/live") == 0
        answered = [
            _probe(probe_port, path)
            for _ in range(PROBES // 2)
            for path in ("/health/live", "/health/ready")
        ]
        print(f"probe port: {answered.count(200)}/{len(answered)} answered 200 during the flood")
        assert answered == [200] * PROBES
        assert _probe(probe_port, "/v2/health/ready") == 200
        assert _probe(probe_port, "/v1/models") == 404  # probes only
    finally:
        for sock in flood:
            sock.close()

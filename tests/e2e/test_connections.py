"""Connection-level limits on a real server process, driven with raw sockets: what a client
controls before the app runs (header size, count and time, body time, open connections)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import Server, start_server

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0
MAX_CONNECTIONS = 8
# Generous: a busy machine may be slow to answer, never early.
PATIENCE_S = 30.0


@pytest.fixture(scope="module")
def iris_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the one model that loads in a second (no deep-learning runtime)."""
    models = tmp_path_factory.mktemp("iris-only")
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    return models


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, iris_only: Path) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("bounded") / "server.log"
    server = start_server(
        log,
        models_dir=iris_only,
        SYNERGY_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        SYNERGY_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        SYNERGY_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        SYNERGY_KEEP_ALIVE_TIMEOUT_S="120",
    )
    yield server
    server.stop()
    assert "Traceback" not in log.read_text()


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE_S)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one response; (0, {}, b"") when closed without one."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _send_in_background(sock: socket.socket, data: bytes, pause_s: float = 0.0) -> None:
    """Send `data` (byte by byte with `pause_s` between, if given) until the server closes."""

    def send() -> None:
        try:
            if pause_s:
                for index in range(len(data)):
                    sock.sendall(data[index : index + 1])
                    time.sleep(pause_s)
            else:
                sock.sendall(data)
        except OSError:  # the server refused and closed: what we expect
            pass

    threading.Thread(target=send, daemon=True).start()


def _assert_error(response: tuple[int, dict[str, str], bytes], status: int, text: str) -> None:
    code, headers, body = response
    assert code == status, (code, body)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    message = json.loads(body)
    assert set(message) == {"error"} and text in message["error"], message


def test_a_20_mb_header_is_refused_with_431(bounded: Server) -> None:
    with _connect(bounded) as sock:
        _send_in_background(
            sock, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000_000
        )
        _assert_error(_read_response(sock), 431, "over the limit of 16384 bytes")


def test_100000_headers_are_refused_with_431(bounded: Server) -> None:
    with _connect(bounded) as sock:
        _send_in_background(
            sock, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 100_000 + b"\r\n"
        )
        code, _, _ = _read_response(sock)
        assert code == 431


def test_more_headers_than_the_count_limit_are_refused_even_when_small(bounded: Server) -> None:
    with _connect(bounded) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n")
        _assert_error(_read_response(sock), 431, "more than 100 headers")


def test_headers_at_one_byte_a_second_are_cut_off_with_408(bounded: Server) -> None:
    with _connect(bounded) as sock:
        started = time.monotonic()
        _send_in_background(sock, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", pause_s=0.5)
        _assert_error(_read_response(sock), 408, "headers did not arrive")
        assert time.monotonic() - started < HEADER_TIMEOUT_S + PATIENCE_S


def test_a_connection_that_never_sends_a_byte_is_closed(bounded: Server) -> None:
    with _connect(bounded) as sock:
        started = time.monotonic()
        assert _read_response(sock) == (0, {}, b"")  # closed, nothing to answer
        assert time.monotonic() - started < HEADER_TIMEOUT_S + PATIENCE_S


def test_a_body_that_trickles_is_cut_off_with_408(bounded: Server) -> None:
    with _connect(bounded) as sock:
        sock.sendall(
            b"POST /v1/models/iris-knn:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        _send_in_background(sock, b" " * 999, pause_s=0.5)
        _assert_error(_read_response(sock), 408, "body did not arrive")


def test_open_connections_are_bounded_and_a_freed_slot_serves_again(bounded: Server) -> None:
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    try:
        # Kept-alive connections (120 s idle allowed) fill every slot.
        for _ in range(MAX_CONNECTIONS):
            sock = _connect(bounded)
            sock.sendall(request)
            assert _read_response(sock)[0] == 200
            held.append(sock)
        with _connect(bounded) as extra:
            with contextlib.suppress(OSError):
                extra.sendall(request)
            assert _read_response(extra) == (0, {}, b""), "a connection over the limit served"
        held.pop().close()
        # The server notices the close soon; retry until it has (bounded).
        deadline = time.monotonic() + PATIENCE_S
        while True:
            with _connect(bounded) as again:
                try:
                    again.sendall(request)
                    if _read_response(again)[0] == 200:
                        break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "a freed slot never served again"
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()

"""Issue 13's connection and shutdown figures, measured on a real server with raw sockets.

Starts `python -m app` on the committed models with the default settings (except where a row
says otherwise) and prints a markdown table: how long a connection that never sends a byte,
and one that sends its headers a byte a second, stay open; what a 20 MB header and 100,000
headers get (status, RSS growth); and how long the process takes to exit after SIGTERM while a
client is sending its body slowly (grace period 5 s), with what that client gets. Every wait
is bounded.

    python bench/connections.py
"""

from __future__ import annotations

import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import rss_mb, start_ours

GIVE_UP_S = 90.0


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)


def _first_line_or_close(sock: socket.socket) -> str:
    """The status line the server answers, "closed" if it closes without one, "open" if
    nothing happens within GIVE_UP_S."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed" if not data else data.decode("latin-1")
            data += chunk
    except TimeoutError:
        return f"still open after {GIVE_UP_S:g} s"
    except ConnectionResetError:
        return "reset"
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def _trickle(sock: socket.socket, data: bytes, pause_s: float, stop: threading.Event) -> None:
    def run() -> None:
        for index in range(len(data)):
            if stop.is_set():
                return
            try:
                sock.sendall(data[index : index + 1])
            except OSError:
                return
            time.sleep(pause_s)

    threading.Thread(target=run, daemon=True).start()


def _blast(sock: socket.socket, data: bytes) -> None:
    def run() -> None:
        with suppress(OSError):
            sock.sendall(data)

    threading.Thread(target=run, daemon=True).start()


def connection_rows(port: int, pid: int) -> list[tuple[str, str, str]]:
    rows = []
    with _connect(port) as sock:
        started = time.monotonic()
        outcome = _first_line_or_close(sock)
        rows.append(("never sends a byte", outcome, f"{time.monotonic() - started:.1f} s"))
    with _connect(port) as sock:
        stop = threading.Event()
        started = time.monotonic()
        _trickle(sock, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 50, 1.0, stop)
        outcome = _first_line_or_close(sock)
        stop.set()
        rows.append(("headers at 1 byte/s", outcome, f"{time.monotonic() - started:.1f} s"))
    for label, request in (
        ("20 MB header", b"GET /health/live HTTP/1.1\r\nX-Big: " + b"a" * 20_000_000 + b"\r\n\r\n"),
        (
            "100,000 headers",
            b"GET /health/live HTTP/1.1\r\n" + b"X-A: 1\r\n" * 100_000 + b"\r\n",
        ),
    ):
        before = rss_mb(pid)
        with _connect(port) as sock:
            started = time.monotonic()
            _blast(sock, request)
            outcome = _first_line_or_close(sock)
            took = time.monotonic() - started
        rows.append((label, outcome, f"{took:.2f} s, RSS {rss_mb(pid) - before:+.1f} MB"))
    return rows


def shutdown_row(scratch: Path) -> tuple[str, str, str]:
    grace_s = 5.0
    with ExitStack() as stack:
        process, port = start_ours(
            stack, scratch / "shutdown.log", SYNERGY_SHUTDOWN_GRACE_PERIOD_S=str(grace_s)
        )
        with _connect(port) as sock:
            sock.sendall(
                b"POST /v1/models/iris-knn:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            stop = threading.Event()
            _trickle(sock, b" " * 99_999, 0.2, stop)
            time.sleep(1.0)  # the upload is under way
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            outcome = _first_line_or_close(sock)
            process.wait(timeout=GIVE_UP_S)
            took = time.monotonic() - started
            stop.set()
        tracebacks = (scratch / "shutdown.log").read_text().count("Traceback")
    return (
        f"SIGTERM during a slow upload, grace {grace_s:g} s",
        f"{outcome}; exit {process.returncode}; {tracebacks} traceback(s) logged",
        f"exit after {took:.1f} s",
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        scratch = Path(folder)
        process, port = start_ours(stack, scratch / "server.log")
        rows = connection_rows(port, process.pid)
        stack.close()
        rows.append(shutdown_row(scratch))
    print("| case | what the client gets | figure |")
    print("|---|---|---|")
    for case, outcome, figure in rows:
        print(f"| {case} | {outcome} | {figure} |")


if __name__ == "__main__":
    main()

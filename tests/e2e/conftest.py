"""A real server process (`python -m app`, as the README runs it) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import COMMITTED_MODELS, ROOT


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    # host:port of its gRPC service ("" when SYNERGY_GRPC_PORT=0).
    grpc_address: str = ""

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    log: Path,
    models_dir: Path = COMMITTED_MODELS,
    *,
    wait_path: str | None = "/health/ready",
    **env: str,
) -> Server:
    """Start `python -m app` and wait until `wait_path` answers 200 (readiness by default;
    /health/live for a server whose models are meant to be still loading or failed; None to
    return at once, for tests of start-up itself)."""
    return start_server_with_output(None, log, models_dir, wait_path=wait_path, env=env)


def start_server_with_output(
    output: int | None,
    log: Path,
    models_dir: Path = COMMITTED_MODELS,
    *,
    wait_path: str | None = "/health/ready",
    env: dict[str, str] | None = None,
) -> Server:
    """`start_server`, with stdout and stderr to `output` when given (a terminal's
    descriptor, `subprocess.PIPE`; stdin closed) instead of `log`; `env`: settings."""
    env = env or {}
    port = free_port()
    grpc_port = env.get("SYNERGY_GRPC_PORT") or str(free_port())
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYNERGY_", "KERAS_BACKEND"))  # the server's own defaults
    }
    environment.update(
        {
            "SYNERGY_PORT": str(port),
            "SYNERGY_GRPC_PORT": grpc_port,
            "SYNERGY_MODELS_DIR": str(models_dir),
            "PYTHONPATH": str(ROOT),
            # The prediction store next to the log: fresh for every server of every run.
            "SYNERGY_STORE_DIR": str(log.parent / f"store-{port}"),
            **env,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=environment,
        stdout=log.open("wb") if output is None else output,
        stderr=subprocess.STDOUT if output in (None, subprocess.PIPE) else output,
        stdin=None if output is None else subprocess.DEVNULL,
    )
    grpc_address = f"127.0.0.1:{grpc_port}" if grpc_port != "0" else ""
    server = Server(process, f"http://127.0.0.1:{port}", log, grpc_address)
    if wait_path is None:
        return server
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_logged(log)}")
        try:
            if httpx.get(f"{server.url}{wait_path}", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise TimeoutError(f"not ready after 180 s:\n{_logged(log)[-3000:]}")


def _logged(log: Path) -> str:
    """A server's log (nothing when its output went elsewhere)."""
    return log.read_text() if log.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service on the committed models."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = start_server(log)
    yield running
    running.stop()

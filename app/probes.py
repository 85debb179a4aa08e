"""The probe listener: liveness and readiness on a port of their own (docs/security.md).

On the main port, `SYNERGY_MAX_CONNECTIONS` bounds open connections, and a flood of silent
ones (each held until `SYNERGY_HEADER_TIMEOUT_S`) fills every slot: new connections are
closed at once, the kubelet's probes with them, and Kubernetes restarts a healthy pod. This
listener answers only `GET`/`HEAD` of `/health/live`, `/health/ready`, `/v2/health/live` and
`/v2/health/ready`, each on its own short connection, and a flood cannot starve it: when its
few slots are full, a new connection takes the slot of the oldest one (a prober sends its
request at once and is answered within milliseconds; an idle socket is what gets closed).
Every connection is closed after its answer or after `TIMEOUT_S`.

Plain asyncio: no HTTP framework, no middleware, no key (like the main port's health paths),
nothing a request can make expensive (at most `MAX_REQUEST_BYTES` read).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson

log = logging.getLogger("synergy.probes")

MAX_CONNECTIONS = 64
MAX_REQUEST_BYTES = 4096
TIMEOUT_S = 2.0
EVICTION_WARNING_INTERVAL_S = 10.0

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


def _response(status: int, body: dict[str, Any], head_only: bool) -> bytes:
    data = orjson.dumps(body)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(data)}\r\n"
        "cache-control: no-store\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + data


class ProbeListener:
    """The listener (see the module docstring). `readiness()` is the main app's
    (`PredictionService.readiness`); `live()` is answered by the event loop running at all."""

    def __init__(self, readiness: Readiness, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.readiness = readiness
        self.max_connections = max_connections
        self._open: OrderedDict[_ProbeProtocol, None] = OrderedDict()
        self._server: asyncio.Server | None = None
        self.evicted = 0
        self._warned_at = -EVICTION_WARNING_INTERVAL_S
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ProbeProtocol(self), host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("probe listener on %s:%d (/health/live, /health/ready)", host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._open):
                connection.close()
            await self._server.wait_closed()

    def answer(self, method: str, path: str) -> bytes:
        """The whole response to one request line."""
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return _response(405, {"error": "the probe port answers GET only"}, head_only)
        path = path.split("?", 1)[0]
        if path == "/health/live":
            return _response(200, {"status": "alive"}, head_only)
        if path == "/v2/health/live":
            return _response(200, {"live": True}, head_only)
        if path in ("/health/ready", "/v2/health/ready"):
            ready, body = self.readiness()
            if path.startswith("/v2"):
                body = {"ready": ready}
            return _response(200 if ready else 503, body, head_only)
        return _response(
            404,
            {"error": "the probe port serves /health/live and /health/ready only"},
            head_only,
        )

    def opened(self, connection: _ProbeProtocol) -> None:
        if len(self._open) >= self.max_connections:
            oldest = next(iter(self._open))
            oldest.close()
            self.evicted += 1
            now = time.monotonic()
            if now - self._warned_at >= EVICTION_WARNING_INTERVAL_S:
                self._warned_at = now
                log.warning(
                    "probe listener: %d connection(s) closed so far to make room (over %d "
                    "open at once: a flood on the probe port?)",
                    self.evicted,
                    self.max_connections,
                )
        self._open[connection] = None

    def closed(self, connection: _ProbeProtocol) -> None:
        self._open.pop(connection, None)


class _ProbeProtocol(asyncio.Protocol):
    def __init__(self, listener: ProbeListener) -> None:
        self.listener = listener
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.listener.opened(self)
        self.timer = asyncio.get_running_loop().call_later(TIMEOUT_S, self.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_REQUEST_BYTES:
                self._send(_response(431, {"error": "request headers too large"}, False))
            return
        line = self.buffer.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(line) != 3 or not line[2].startswith("HTTP/1."):
            self._send(_response(400, {"error": "not an HTTP/1.1 request"}, False))
            return
        try:
            answer = self.listener.answer(line[0], line[1])
        except Exception:  # a probe must get an answer; the cause goes to the log
            log.exception("probe listener: readiness failed")
            answer = _response(503, {"error": "readiness could not be computed"}, False)
        self._send(answer)

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.close()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.listener.closed(self)

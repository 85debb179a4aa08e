"""Observability: the request id and context, the in-flight count and the shutdown cut-off,
and one record per request (Prometheus series and the access log; `RequestRecorder` is shared
with gRPC)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import (
    CLIENT_REQUEST_ID,
    ROUTING_HEADERS,
    SCOPE_KEY,
    RequestContext,
    new_request_id,
)
from app.errors import Unavailable
from app.http_errors import render_error
from app.logs import AccessLog
from app.metrics import Metrics
from app.middleware.state import SHUT_DOWN_MESSAGE, ServerState


class ObservabilityMiddleware:
    """Request id in and out, in-flight gauge, per-request metrics, one JSON log line."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, state: ServerState, access_log: AccessLog | None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.state = state
        self.recorder = RequestRecorder(metrics, access_log, "http")
        # The in-flight gauge reads the count at scrape time: no two locked updates per request.
        metrics.in_flight.set_function(lambda: state.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        routing: list[tuple[bytes, bytes]] | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if CLIENT_REQUEST_ID.match(candidate):
                    request_id = candidate
            elif key in ROUTING_HEADERS:
                routing = [*(routing or ()), (key, value)]
        request_id = request_id or new_request_id()
        # Arrival time: the deadline counts from it, and requests that arrived before a
        # SIGTERM still finish.
        context = scope[SCOPE_KEY] = RequestContext(request_id=request_id, arrived=started)
        if routing is not None:
            context.route_headers(routing)
        status = 500
        started_response = False
        encoded_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
            await send(message)

        task = asyncio.current_task()
        if task is not None:
            self.state.tasks.add(task)
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not self.state.cutting_off or task is None:
                raise
            task.uncancel()
            # Cut off at the end of the shutdown grace period: the documented JSON 503, not
            # the server's plain-text 500 and a traceback per request.
            if not started_response:
                # A second cancel (uvicorn's own deadline on a very slow machine) only closes
                # the connection; it must not turn into uvicorn's plain-text 500.
                with contextlib.suppress(asyncio.CancelledError):
                    await render_error(Unavailable(SHUT_DOWN_MESSAGE, close_connection=True))(
                        scope, receive, send_with_id
                    )
        finally:
            self.state.tasks.discard(task)
            self.state.in_flight -= 1
            context.status = status
            context.release()
            self._record(scope, context, time.perf_counter() - started)

    def _record(self, scope: Scope, context: RequestContext, latency_s: float) -> None:
        # The endpoint's name ("predict", "ready", ...): bounded, unlike raw paths. The
        # protocol names it, or the route's function does.
        endpoint = context.endpoint or (
            getattr(scope.get("endpoint"), "__name__", None) or "unmatched"
        )
        self.recorder.record(context, latency_s, endpoint, scope["method"], scope["path"])


class RequestRecorder:
    """What every finished request leaves behind, whatever its protocol: the request counter
    and latency histogram (labelled with the protocol), the serving version's live stats and
    one access log line. HTTP requests are recorded by `ObservabilityMiddleware`, gRPC calls
    by `app.rpc`."""

    def __init__(self, metrics: Metrics, access_log: AccessLog | None, protocol: str) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.protocol = protocol
        # Bound Prometheus children per label set: labels() costs a lock and validation.
        self._series: dict[tuple[str, str, str, str, int], tuple[Any, Any]] = {}

    def record(
        self,
        context: RequestContext,
        latency_s: float,
        endpoint: str,
        method: str,
        path: str,
        **log_fields: Any,
    ) -> None:
        """Count one request that ended with `context.status` (an HTTP status; gRPC calls
        record the HTTP status their code stands for, and their code in `log_fields`)."""
        model, status, label = context.model, context.status, context.label
        version = "" if context.version is None else str(context.version)
        key = (model, version, label, endpoint, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.requests.labels(
                    model, version, label, endpoint, self.protocol, str(status)
                ),
                self.metrics.request_latency.labels(model, version, label, endpoint, self.protocol),
            )
        series[0].inc()
        series[1].observe(latency_s)
        if context.stats is not None:  # the serving model version's
            context.stats.record_request(status, latency_s)
        if self.access_log is not None and self.access_log.logs(path):
            self.access_log.write(
                {
                    "request_id": context.request_id,
                    "method": method,
                    "path": path,
                    "model": model or None,
                    "version": context.version,
                    "status": status,
                    "rows": context.rows,
                    "latency_ms": round(latency_s * 1000.0, 3),
                    **log_fields,
                }
            )

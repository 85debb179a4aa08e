"""The standard gRPC health service (`grpc.health.v1.Health`), answered from the server's
own state at each call, never from a copy that could go stale.

Service names (the `service` field of a check):

- `""` (overall): SERVING while the process serves; NOT_SERVING once shutdown began (the
  drain turns it first, so balancers stop sending before the port closes). Liveness.
- `inference.GRPCInferenceService`: SERVING when the server is ready, exactly as
  `GET /health/ready` (every model has a serving version, not shutting down). Use it for a
  Kubernetes `grpc` readiness probe.
- `inference.GRPCInferenceService/<model>`: SERVING when that model has a version that can
  serve now (and not shutting down), as `GET /v2/models/<model>/ready`.

Any other name: Check answers NOT_FOUND and Watch SERVICE_UNKNOWN, as the protocol says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core import InferenceCore
from app.repository import ModelState

OVERALL = ""
SERVER = "inference.GRPCInferenceService"
MODEL_PREFIX = SERVER + "/"
# How often Watch looks for a change of status.
WATCH_INTERVAL_S = 1.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Check, Watch and List over the service's readiness."""

    def __init__(self, core: InferenceCore, server_ready: Callable[[], bool]) -> None:
        self.core = core
        self.server_ready = server_ready
        # Set at shutdown: watchers wake at once to send NOT_SERVING and end, instead of at
        # their next look (which could come after the server stopped and cut them off).
        self._stopping = asyncio.Event()
        self._watchers = 0
        self._no_watchers = asyncio.Event()
        self._no_watchers.set()

    async def wake_watchers(self, timeout_s: float) -> None:
        """Shutdown: every Watch sends its last status (NOT_SERVING) and ends; returns when
        they have, or after `timeout_s`."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_watchers.wait(), timeout_s)

    def status(self, name: str) -> Any:
        """The status of a service name (SERVICE_UNKNOWN for a name not served)."""
        draining = self.core.draining
        if name == OVERALL:
            return NOT_SERVING if draining else SERVING
        if name == SERVER:
            return SERVING if self.server_ready() else NOT_SERVING
        if name.startswith(MODEL_PREFIX):
            model = self.core.registry.models.get(name.removeprefix(MODEL_PREFIX))
            if model is None:
                return SERVICE_UNKNOWN
            ready = any(e.state is ModelState.READY for e in model.versions.values())
            return SERVING if ready and not draining else NOT_SERVING
        return SERVICE_UNKNOWN

    def names(self) -> list[str]:
        """Every service name with a status now."""
        return [OVERALL, SERVER, *(MODEL_PREFIX + name for name in self.core.registry.names)]

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status == SERVICE_UNKNOWN:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown health service {request.service!r}; use '' (the server), {SERVER!r} "
                f"(readiness) or '{MODEL_PREFIX}<model>'",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change; ends after NOT_SERVING at shutdown, so that a
        watcher does not hold the server's stop."""
        last = None
        self._watchers += 1
        self._no_watchers.clear()
        # Counted out when the call has ended at the transport (its last status and trailers
        # sent and the stream closed), not when this generator returns: the server stops
        # right after the last watcher is out, and NOT_SERVING must have reached the client.
        context.add_done_callback(self._watch_ended)
        while True:
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self.core.draining:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), WATCH_INTERVAL_S)

    def _watch_ended(self, _: object) -> None:
        self._watchers -= 1
        if not self._watchers:
            self._no_watchers.set()

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        response = health_pb2.HealthListResponse()
        for name in self.names():
            response.statuses[name].status = self.status(name)
        return response

"""The gRPC server (grpcio's asyncio API), in the HTTP service's process and event loop.

`GrpcServer` is made by `create_app` and started and stopped in the app's lifespan: it
serves `inference.GRPCInferenceService` (`app.rpc.service`), `grpc.health.v1.Health`
(`app.rpc.health`) and server reflection, on `SYNERGY_HOST:SYNERGY_GRPC_PORT`.

Channel options, each for a reason:

- max receive message = SYNERGY_MAX_BODY_BYTES, the REST body limit (larger messages get
  RESOURCE_EXHAUSTED from gRPC before they are decoded); max send = the same plus room for
  the answer's own framing.
- `grpc.http2.min_recv_ping_interval_without_data_ms` and `grpc.keepalive_permit_without_calls`:
  clients may ping every SYNERGY_GRPC_MIN_PING_INTERVAL_S (5 s), idle or not, without being
  sent GOAWAY `too_many_pings` (gRPC's default allows one ping every 5 minutes).
- `grpc.keepalive_time_ms`/`grpc.keepalive_timeout_ms`: the server's own pings find dead
  peers (a client gone without a FIN) and free their streams.
- `grpc.max_concurrent_streams`: calls one connection may have open at once.
- `grpc.so_reuseport` off: a second server on the same port fails to start instead of
  silently sharing it.
"""

from __future__ import annotations

import logging
import time

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app.middleware import RequestRecorder, ServerState
from app.repository.control import RepositoryControl
from app.rpc.accept import PrefetchingServer
from app.rpc.auth import HEALTH_SERVICE, ApiKeyInterceptor
from app.rpc.generated import grpc_service_pb2, grpc_service_pb2_grpc
from app.rpc.health import HealthServicer
from app.rpc.service import SERVICE_NAME, InferenceServicer
from app.service import PredictionService
from app.settings import GrpcSettings, LimitsSettings, ServingSettings

log = logging.getLogger("synergy.server")
# At shutdown, how long health watchers get to send NOT_SERVING before the server stops.
WATCHERS_WAIT_S = 1.0

# Room for a response's framing over the largest request (an answer is smaller than its
# request for every model here, but a 1000-row text request's labels could be close).
SEND_MARGIN_BYTES = 1024 * 1024


def server_options(grpc_settings: GrpcSettings, limits: LimitsSettings) -> list[tuple[str, int]]:
    """The channel arguments of the server (see the module docstring)."""
    min_ping_ms = round(grpc_settings.grpc_min_ping_interval_s * 1000)
    return [
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        ("grpc.max_send_message_length", limits.max_body_bytes + SEND_MARGIN_BYTES),
        ("grpc.max_concurrent_streams", grpc_settings.grpc_max_concurrent_streams),
        ("grpc.keepalive_time_ms", round(grpc_settings.grpc_keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", round(grpc_settings.grpc_keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.so_reuseport", 0),
    ]


class GrpcServer:
    """The gRPC side of one service: built at once, listening from `start()`."""

    def __init__(
        self,
        service: PredictionService,
        repository: RepositoryControl,
        state: ServerState,
        recorder: RequestRecorder,
        key_digests: list[bytes],
        admin_digests: list[bytes] | None = None,
        *,
        serving: ServingSettings,
        grpc_settings: GrpcSettings,
        limits: LimitsSettings,
    ) -> None:
        self._options = server_options(grpc_settings, limits)
        self._accept_ahead = grpc_settings.grpc_accept_ahead
        host = f"[{serving.host}]" if ":" in serving.host else serving.host  # IPv6
        self.address = f"{host}:{grpc_settings.grpc_port}"
        keyed = bool(key_digests or admin_digests)
        self._servicer = InferenceServicer(
            service.core,
            lambda: service.readiness()[0],
            repository,
            state,
            recorder,
            keyed=keyed,
        )
        self._health = HealthServicer(service.core, lambda: service.readiness()[0])
        self._key_digests = key_digests
        self._admin_digests = admin_digests or []
        self._recorder = recorder
        self._server: PrefetchingServer | None = None

    async def start(self) -> None:
        """Listen (on the running event loop). Raises RuntimeError when the port is taken."""
        interceptors = (
            [ApiKeyInterceptor(self._key_digests, self._recorder, self._admin_digests)]
            if self._key_digests or self._admin_digests
            else []
        )
        server = PrefetchingServer(
            self._options,
            interceptors,
            prefetched=(f"/{SERVICE_NAME}/ModelInfer",),
            depth=self._accept_ahead,
        )
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self._servicer, server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        assert SERVICE_NAME == "inference.GRPCInferenceService" and HEALTH_SERVICE
        try:
            server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot listen for gRPC on {self.address} (SYNERGY_GRPC_PORT): {exc}"
            ) from None
        await server.start()
        self._server = server
        log.info("gRPC (Open Inference Protocol) on %s", self.address)

    def calls_ahead(self) -> dict[str, int]:
        """Calls requested from gRPC's core ahead of the event loop, per method (app.rpc.accept);
        empty before the server starts."""
        return self._server.calls_ahead() if self._server is not None else {}

    async def stop(self, grace_s: float) -> None:
        """Stop listening; calls in flight get `grace_s` to finish, then are cancelled."""
        if self._server is not None:
            # Health watchers first: they send NOT_SERVING and end within the grace period.
            started = time.monotonic()
            await self._health.wake_watchers(min(grace_s, WATCHERS_WAIT_S))
            await self._server.stop(max(0.0, grace_s - (time.monotonic() - started)))
            self._server = None

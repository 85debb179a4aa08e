"""`create_app(settings)`: builds the FastAPI app; models load in its lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from app import __version__
from app.api import (
    explain,
    health,
    metrics,
    models,
    monitoring,
    predict,
    promotion,
    report,
    repository,
    v2,
)
from app.api.docs import ASSETS_URL, install_docs
from app.api.fastlane import ServingApp
from app.api.openapi import conform_error_responses, unknown_model_message
from app.console import announce_ready
from app.http_errors import install_error_handlers
from app.logs import AccessLog, resolve_format
from app.metrics import Metrics
from app.middleware import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    HeadMiddleware,
    ObservabilityMiddleware,
    RequestRecorder,
    ServerState,
    load_key_digests,
)
from app.monitoring import Monitor
from app.monitoring.promotion import Promoter
from app.probes import ProbeListener
from app.repository import ModelRegistry, VersionPolicy
from app.repository.control import RepositoryControl
from app.service import PredictionService
from app.settings import ConfigError, Settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Classic ML and deep learning models served side by side: scikit-learn and Keras 3.

* **Predict**: one operation per model, each with a real held-out example that works as is in
  *Try it out*. Concurrent requests are batched into one model call.
* **Explain**: why a model predicts what it does, in the terms of its input (feature
  attributions, a pixel map with an overlay, word attributions), checked for completeness.
* **Models**: the model cards (inputs, labels, training data, held-out metrics, hashes) and
  live serving stats.
* **Health** and **Prometheus metrics** for operators.
* **Open Inference Protocol (V2)** under `/v2`, for KServe/Triton tooling such as
  `tritonclient` (JSON or binary tensors), through the same batchers.

Errors are always `{"error": "..."}` with the status that fits (400/422 bad input, 404 unknown
model, 413 too large, 503 + `Retry-After` overloaded or not ready, 504 deadline).
"""

# Paths anyone may call when API keys are set (the rest need `Authorization: Bearer <key>`).
OPEN_PATHS = {
    "/",
    "/health/live",
    "/health/ready",
    "/v2/health/live",
    "/v2/health/ready",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/favicon.ico",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The whole service for these settings; models are discovered now, loaded at start-up."""
    settings = settings or Settings()
    # First: a keys setting that cannot work refuses the start before anything else happens.
    key_digests = load_key_digests(settings.security.api_keys, settings.security.api_keys_file)
    admin_digests = load_key_digests(
        settings.security.admin_api_keys,
        settings.security.admin_api_keys_file,
        "SYNERGY_ADMIN_API_KEYS_FILE",
    )
    control_on = settings.security.control_api_on()
    if control_on and key_digests and not admin_digests:
        raise ConfigError(
            "SYNERGY_CONTROL_API=true with API keys set needs an admin key "
            "(SYNERGY_ADMIN_API_KEYS or SYNERGY_ADMIN_API_KEYS_FILE): prediction keys cannot "
            "control models"
        )
    if control_on and not key_digests and not admin_digests:
        log.warning(
            "the model-control API is on and open to every caller (SYNERGY_CONTROL_API=true "
            "without keys): anyone who reaches this port can unload the models"
        )
    policy = VersionPolicy(num_versions=settings.repository.max_versions_per_model)
    registry = ModelRegistry.scan(settings.repository.models_dir, policy)
    metrics_ = Metrics()
    service = PredictionService(settings, registry, metrics_)
    monitor = Monitor(
        settings.store, settings.drift, settings.payload_logging, registry, metrics_.registry
    )
    service.attach_monitor(monitor)
    promoter = Promoter(settings.promotion, registry, monitor, metrics_.registry)
    service.core.subscribe_shadow(promoter.record_shadow)
    server_state = ServerState()
    log_format = resolve_format(settings.logging.log_format)
    access_log = (
        AccessLog(
            log_format=log_format,
            health=settings.logging.log_health_requests,
            on_drop=metrics_.log_lines_dropped.inc,
        )
        if settings.logging.log_requests
        else None
    )
    repository_control = RepositoryControl(
        registry, service.lifecycle, enabled=control_on, polled=settings.repository.model_poll_s > 0
    )
    grpc_server = None
    if settings.grpc.grpc_port:
        from app.rpc.server import GrpcServer  # grpcio only where gRPC is on

        grpc_server = GrpcServer(
            service,
            repository_control,
            server_state,
            RequestRecorder(metrics_, access_log, "grpc"),
            key_digests,
            admin_digests,
            serving=settings.serving,
            grpc_settings=settings.grpc,
            limits=settings.limits,
        )

    probes = ProbeListener(service.readiness) if settings.serving.probe_port is not None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if probes is not None:  # first: liveness answers while the rest starts
            await probes.start(settings.serving.host, settings.serving.probe_port or 0)
        flusher = asyncio.create_task(access_log.run()) if access_log else None
        await monitor.start()
        await promoter.start()  # the decisions in force route from the first request
        loading_started = time.monotonic()
        await service.start()
        if grpc_server is not None:
            await grpc_server.start()
        announcer = asyncio.create_task(announce_ready(service, settings.serving, loading_started))
        try:
            yield
        finally:
            announcer.cancel()
            if grpc_server is not None:
                # First, while the batchers still run: its calls in flight finish within
                # what is left of the one shutdown deadline (the drain already waited for
                # them when a signal stopped the server).
                service.begin_drain()
                await grpc_server.stop(
                    server_state.time_left_s(settings.serving.shutdown_grace_period_s)
                )
            await service.stop(server_state.time_left_s(settings.serving.shutdown_grace_period_s))
            await promoter.stop()
            await monitor.stop()  # after the batchers: the last predictions are written
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            if probes is not None:
                await probes.stop()

    app = ServingApp(
        title="Synergy Serve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # FastAPI's OpenTelemetry bridge checks the providers on every request; Prometheus is
        # our default export, so it is opt-in.
        telemetry={
            "tracing": settings.serving.opentelemetry,
            "metrics": settings.serving.opentelemetry,
            "logs": settings.serving.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics_
    app.state.server_state = server_state
    app.state.monitor = monitor
    app.state.probes = probes
    app.state.promoter = promoter
    app.state.v2 = service.v2
    app.state.repository = repository_control
    app.state.grpc_server = grpc_server
    install_error_handlers(app)

    predict_endpoint = predict.add_predict_routes(app, service)  # first: matched in order
    explain.add_explain_routes(app, service.v1)
    v2.add_v2_routes(app, service)
    infer_endpoint = v2.InferEndpoint(service.v2)
    repository.add_repository_routes(app)
    health.add_health_routes(app)
    models.add_model_routes(app)
    monitoring.add_monitoring_routes(app)
    promotion.add_promotion_routes(app)
    metrics.add_metrics_route(app)
    report.add_report_routes(app)
    install_docs(app)
    # The document lists the models and their examples: rebuilt after the repository changes.
    registry.listeners.append(lambda: setattr(app, "openapi_schema", None))
    open_paths = set(OPEN_PATHS) | (
        {"/metrics"} if not settings.security.protect_metrics else set()
    )
    keyed = bool(key_digests or admin_digests)
    _install_openapi(app, service, open_paths=open_paths if keyed else None)

    # Middleware: the last added is the outermost.
    app.add_middleware(predict.PredictFastPath, endpoint=predict_endpoint)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.limits.max_body_bytes)
    # One key policy for the full stack and the lane (roles and tenancy included).
    key_options: dict[str, Any] = {
        "key_digests": key_digests,
        "open_paths": open_paths,
        "open_prefixes": (ASSETS_URL + "/",),
        "browser_paths": report.REPORT_PATH,
        "admin_digests": admin_digests,
        "admin_paths": repository.ADMIN_PATHS,
    }
    if keyed:
        app.add_middleware(ApiKeyMiddleware, **key_options)
    if settings.security.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.security.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Content-Encoding",
                "X-Request-ID",
                "Inference-Header-Content-Length",
            ],
            expose_headers=["X-Request-ID", "Retry-After", "Inference-Header-Content-Length"],
        )
    app.add_middleware(HeadMiddleware)
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics_, state=server_state, access_log=access_log
    )

    if not settings.serving.opentelemetry:  # OpenTelemetry must see every request: no lane then

        def lane_middleware(endpoint: ASGIApp) -> ASGIApp:
            # The middleware above that acts on these routes, in the same order.
            inner: ASGIApp = BodyLimitMiddleware(
                endpoint, max_body_bytes=settings.limits.max_body_bytes
            )
            if keyed:
                inner = ApiKeyMiddleware(inner, **key_options)
            return ObservabilityMiddleware(
                inner, metrics=metrics_, state=server_state, access_log=access_log
            )

        app.install_lane(
            (predict.predict_lane_matcher(predict_endpoint), infer_endpoint.lane_matcher()),
            lane_middleware,
            skip_with_origin=bool(settings.security.cors_origins),
        )
    return app


def _install_openapi(
    app: FastAPI,
    service: PredictionService,
    *,
    open_paths: set[str] | None,
) -> None:
    """FastAPI's schema, plus: the per-model predict operations; path parameters pre-filled
    with models that exist (so "Try it out" works as is); with API keys, the bearer scheme on
    every operation except the open paths."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        registry = service.registry
        description = app.description.replace(
            report.REPORT_LINKS, report.report_links(registry.names)
        )
        schema = get_openapi(
            title=app.title, version=app.version, description=description, routes=app.routes
        )
        paths, components = predict.predict_openapi(service)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        schema["components"]["schemas"].update(v2.openapi_components())
        # Predict operations first, as in the routing.
        explain_paths, explain_components = explain.explain_openapi(service)
        schema["components"]["schemas"].update(explain_components)
        schema["paths"] = {**paths, **explain_paths, **schema.get("paths", {})}
        conform_error_responses(schema, unknown_model_message(registry))
        examples = {
            "name": {name: {"summary": name, "value": name} for name in registry.names},
            "version": {
                f"{name} v{max(registry.versions(name))}": {
                    "summary": f"{name}: version {max(registry.versions(name))}",
                    "value": max(registry.versions(name)),
                }
                for name in registry.names
            },
        }
        for operations in schema["paths"].values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path" and parameter["name"] in examples:
                        parameter.setdefault("examples", examples[parameter["name"]])
        if open_paths is not None:
            schema["components"]["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, sent as 'Authorization: Bearer <key>'.",
                }
            }
            schema["security"] = [{"bearer": []}]
            for path, operations in schema["paths"].items():
                if path in open_paths:
                    for operation in operations.values():
                        operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

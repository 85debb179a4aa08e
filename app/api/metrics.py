"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.api.deps import MetricsDep


def add_metrics_route(app: FastAPI) -> None:
    """GET /metrics."""
    app.add_api_route(
        "/metrics",
        prometheus_metrics,
        methods=["GET"],
        tags=["metrics"],
        summary="Prometheus metrics",
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST: {}},
                "description": "Prometheus text exposition format.",
            }
        },
    )


async def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Requests by model/version/endpoint/status, latency histograms, batch size, queue wait,
    inference time, queue depth, in-flight requests, model readiness, process metrics."""
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

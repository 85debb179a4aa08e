"""Liveness and readiness."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from app.jsonutil import json_response
from app.schemas.responses import ReadinessResponse


async def live() -> Response:
    """200 as long as the process answers; it does not look at the models."""
    return json_response({"status": "alive"})


async def ready(request: Request) -> Response:
    """200 when every model version is loaded and warmed up; else 503 with each one's state."""
    is_ready, body = request.app.state.service.readiness()
    return json_response(body, status_code=200 if is_ready else 503)


def add_health_routes(app: FastAPI) -> None:
    """GET /health/live and /health/ready."""
    app.add_api_route(
        "/health/live",
        live,
        methods=["GET"],
        tags=["health"],
        summary="The process is up",
        responses={200: {"content": {"application/json": {"example": {"status": "alive"}}}}},
    )
    app.add_api_route(
        "/health/ready",
        ready,
        methods=["GET"],
        tags=["health"],
        summary="Every model is loaded and warm",
        response_model=ReadinessResponse,
        responses={
            503: {
                "model": ReadinessResponse,
                "description": "Loading, a model failed, or shutting down.",
            }
        },
    )

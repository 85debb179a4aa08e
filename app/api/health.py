"""Liveness and readiness."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

from app.api.deps import Service
from app.jsonutil import json_response
from app.schemas.responses import ModelReadinessResponse, ReadinessResponse, error_responses


async def live() -> Response:
    """200 as long as the process answers; it does not look at the models."""
    return json_response({"status": "alive"})


async def ready(service: Service) -> Response:
    """200 when every model has a version loaded, warmed up and serving; else 503. The body
    lists every version's state and, under `failed`, the versions that failed with their
    reasons (also when 200: a failed new version does not take the replica out of service)."""
    is_ready, body = service.readiness()
    return json_response(body, status_code=200 if is_ready else 503)


async def model_ready(name: str, service: Service) -> Response:
    """200 when this model serves and none of its versions failed or is loading; else 503
    with the status (`loading`, `degraded`: serving but a version failed, `failed`) and each
    version's state and reason. 404 for an unknown model."""
    is_ready, body = service.model_readiness(name)
    return json_response(body, status_code=200 if is_ready else 503)


def add_health_routes(app: FastAPI) -> None:
    """GET /health/live, /health/ready and /health/ready/{name}."""
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
    app.add_api_route(
        "/health/ready/{name}",
        model_ready,
        methods=["GET"],
        tags=["health"],
        summary="One model serves and none of its versions failed",
        response_model=ModelReadinessResponse,
        responses={
            503: {
                "model": ModelReadinessResponse,
                "description": "Loading, a version failed (degraded), failed, or shutting down.",
            },
            **error_responses(404),
        },
    )

"""Feedback and monitoring routes: thin, over `app.monitoring.Monitor`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from starlette.responses import Response

from app.api.deps import ModelName, ModelVersion, MonitorDep
from app.context import request_context
from app.jsonutil import json_response
from app.schemas.monitoring import FeedbackRequest, FeedbackResponse, MonitoringResponse
from app.schemas.responses import error_responses


async def feedback(
    request: Request, name: ModelName, body: FeedbackRequest, monitor: MonitorDep
) -> Response:
    """The true labels of an earlier prediction, by its request id (the `X-Request-ID` header
    of its response). 200 once they are committed to the store; sending the same feedback
    again changes nothing; new labels for the same request replace the old ones.
    Only the API key that made the prediction (or an admin key) can label it: request ids
    are per key (docs/security.md)."""
    context = request_context(request.scope)
    return json_response(
        await monitor.feedback(
            name, body.request_id, body.labels, caller=context.caller, admin=context.admin
        )
    )


Rows = Annotated[
    Literal["all", "mine"],
    Query(description="all: every caller's rows; mine: those predicted with this API key."),
]


def _caller(request: Request, rows: str) -> str | None:
    return request_context(request.scope).caller if rows == "mine" else None


async def monitoring(
    request: Request, name: ModelName, monitor: MonitorDep, rows: Rows = "all"
) -> Response:
    """Per version: rows predicted and with feedback, live accuracy (all time and recent)
    against the card's held-out accuracy (Wilson 95% interval), confusion matrix from
    feedback, and drift of each input statistic against the training profile."""
    return json_response(await monitor.report(name, None, _caller(request, rows)))


async def monitoring_version(
    request: Request,
    name: ModelName,
    version: ModelVersion,
    monitor: MonitorDep,
    rows: Rows = "all",
) -> Response:
    """The monitoring report of one version."""
    return json_response(await monitor.report(name, version, _caller(request, rows)))


def add_monitoring_routes(app: FastAPI) -> None:
    """POST :feedback, GET .../monitoring."""
    app.add_api_route(
        "/v1/models/{name:model}:feedback",
        feedback,
        methods=["POST"],
        tags=["monitoring"],
        summary="Send the true labels of a prediction",
        response_model=FeedbackResponse,
        # 400: a body that is not JSON (FastAPI parses it); 413: over SYNERGY_MAX_BODY_BYTES.
        responses=error_responses(400, 401, 404, 413, 422, 503),
    )
    app.add_api_route(
        "/v1/models/{name:model}/monitoring",
        monitoring,
        methods=["GET"],
        tags=["monitoring"],
        summary="Live accuracy and drift",
        response_model=MonitoringResponse,
        responses=error_responses(401, 404, 503),
    )
    app.add_api_route(
        "/v1/models/{name:model}/versions/{version:version}/monitoring",
        monitoring_version,
        methods=["GET"],
        tags=["monitoring"],
        summary="Live accuracy and drift of one version",
        response_model=MonitoringResponse,
        responses=error_responses(400, 401, 404, 422, 503),
    )

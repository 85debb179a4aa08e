"""Model listing, model cards and evaluation metrics."""

from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from app.api.deps import V1, ModelName, ModelVersion
from app.api.report import report_path
from app.jsonutil import json_response
from app.schemas.responses import (
    ModelDetail,
    ModelList,
    ModelMetricsResponse,
    error_responses,
)


async def list_models(request: Request, v1: V1) -> Response:
    """Every model with its versions and their state (ready, loading, failed + reason), and
    the URL of its report page."""
    listing = v1.list_models()
    root = request.scope.get("root_path", "")
    for summary in listing["models"]:
        summary["report"] = report_path(root, summary["name"])
    return json_response(listing)


def _with_report(request: Request, detail: dict[str, Any]) -> dict[str, Any]:
    card = detail["card"]
    root = request.scope.get("root_path", "")
    return {**detail, "report": report_path(root, card["name"], card["version"])}


async def model_card(request: Request, name: ModelName, v1: V1) -> Response:
    """The model card: inputs, labels, training data, held-out metrics, hashes, versions;
    plus where and how it is served (device, batching) and the URL of its report page."""
    return json_response(_with_report(request, v1.model_detail(name, None)))


async def model_card_version(
    request: Request, name: ModelName, version: ModelVersion, v1: V1
) -> Response:
    """The card of one version."""
    detail = v1.model_detail(name, version)
    return json_response(_with_report(request, detail))


async def model_metrics(name: ModelName, v1: V1) -> Response:
    """Held-out metrics from training (accuracy, macro precision/recall/F1, ROC AUC for binary
    models, confusion matrix) and live stats since start (requests, errors, latency
    percentiles, predicted-label distribution)."""
    return json_response(v1.model_metrics(name, None))


async def model_metrics_version(name: ModelName, version: ModelVersion, v1: V1) -> Response:
    """Held-out and live metrics of one version."""
    return json_response(v1.model_metrics(name, version))


def add_model_routes(app: FastAPI) -> None:
    """GET endpoints describing the models (straight on the app: an included router costs
    every request extra matching)."""
    for path, endpoint, summary, model in (
        ("/v1/models", list_models, "List the models", ModelList),
        ("/v1/models/{name:model}", model_card, "Model card (latest version)", ModelDetail),
        (
            "/v1/models/{name:model}/versions/{version:version}",
            model_card_version,
            "Model card (one version)",
            ModelDetail,
        ),
        (
            "/v1/models/{name:model}/metrics",
            model_metrics,
            "Evaluation and live serving metrics",
            ModelMetricsResponse,
        ),
        (
            "/v1/models/{name:model}/versions/{version:version}/metrics",
            model_metrics_version,
            "Metrics of one version",
            ModelMetricsResponse,
        ),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            tags=["models"],
            summary=summary,
            response_model=model,
            responses=_documented_errors(path),
        )


def _documented_errors(path: str) -> dict[int | str, dict[str, Any]]:
    """The errors a model route can give: 400 only where a version must parse as a number."""
    if path == "/v1/models":
        return error_responses(401)
    if "{version" in path:
        return error_responses(400, 401, 404, 503)
    return error_responses(401, 404, 503)

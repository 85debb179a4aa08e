"""Comparison and promotion routes: thin, over `app.monitoring.promotion.Promoter`.

    GET  /v1/models/{name}/comparison?candidate=&baseline=   the evidence and the verdict
    GET  /v1/models/{name}/decisions                         decisions, newest first
    POST /v1/models/{name}/decisions                         a decision by hand

Protected by API keys like every route that is not a health check (see app.middleware).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.deps import PromoterDep, Repository, promoter_of
from app.errors import ServingError
from app.jsonutil import json_response
from app.report.comparison import section
from app.schemas.responses import error_responses

ModelName = Annotated[str, Path(description="Model name")]
VersionOrLabel = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="A version number or a label",
    ),
]


class DecisionRequest(BaseModel):
    """Body of `POST /v1/models/{name}/decisions`."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["promote", "rollback", "reset"] = Field(
        description="promote: the candidate takes the stable label (or all traffic); "
        "rollback: its traffic goes to 0 and its shadow stops; reset: undo the decision in "
        "force for the candidate (automatic decisions resume)."
    )
    candidate: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Version or label; default: the shadow or canary.",
    )
    baseline: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Version or label; default: the version unversioned traffic goes to.",
    )
    reason: str = Field(default="", max_length=500, description="Why, for the record.")


async def comparison(
    name: ModelName,
    promoter: PromoterDep,
    candidate: VersionOrLabel = None,
    baseline: VersionOrLabel = None,
) -> Response:
    """A candidate version against a baseline on live traffic and feedback. Shadow (the same
    requests): agreement, disagreement matrix, McNemar's test on the rows with feedback.
    Canary (its own requests): each version's live accuracy, a z-test, input drift. Both:
    latency and errors, the rows behind every figure, the verdict of the config's promotion
    rules (defaults when it has none) and the decision in force."""
    return json_response(await promoter.compare(name, candidate, baseline))


async def decisions(name: ModelName, promoter: PromoterDep) -> Response:
    """Every promotion decision about the model (newest first) and those in force."""
    return json_response(await promoter.decisions(name))


async def decide(
    name: ModelName, body: DecisionRequest, promoter: PromoterDep, control: Repository
) -> Response:
    """Promote, roll back or reset a candidate by hand; recorded with the comparison as its
    evidence, in force on every replica within SYNERGY_PROMOTION_POLL_S. Model control: off
    (403) unless the control API is on, and an admin key's when admin keys are set."""
    control.require_enabled()
    return json_response(
        await promoter.decide(name, body.action, body.candidate, body.baseline, body.reason)
    )


async def report_section(request: Request, name: str) -> str:
    """The report page's comparison section (HTML), or "" when the model has neither a
    candidate to compare nor a decision (or this server has no prediction store)."""
    promoter = promoter_of(request)
    if promoter is None or not promoter.has_comparison(name):
        return ""
    comparison, note = None, ""
    try:
        comparison = await promoter.compare(name, None, None)
    except ServingError as exc:  # no candidate any more: the decisions still show
        note = exc.message
    try:
        found = (await promoter.decisions(name))["decisions"]
    except ServingError:
        found = []
    return await run_in_threadpool(section, comparison, found, note)


def add_promotion_routes(app: FastAPI) -> None:
    """GET comparison, GET/POST decisions."""
    app.add_api_route(
        "/v1/models/{name:model}/comparison",
        comparison,
        methods=["GET"],
        tags=["monitoring"],
        summary="Compare a candidate version with the serving one",
        responses=error_responses(400, 401, 404, 422, 503),
    )
    app.add_api_route(
        "/v1/models/{name:model}/decisions",
        decisions,
        methods=["GET"],
        tags=["monitoring"],
        summary="Promotion decisions",
        responses=error_responses(401, 404, 503),
    )
    app.add_api_route(
        "/v1/models/{name:model}/decisions",
        decide,
        methods=["POST"],
        tags=["monitoring"],
        summary="Promote, roll back or reset a candidate by hand",
        # 403: model control is off, or a prediction key where admin keys are set.
        responses=error_responses(400, 401, 403, 404, 422, 503),
    )

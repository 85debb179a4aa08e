"""Model-control routes (Triton's model repository extension); the logic is in
`app.repository.control`. Load and unload need an admin key and the control API on
(docs/security.md); the index, read-only, any key."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.responses import Response

from app.api.deps import Repository
from app.errors import BadRequest
from app.jsonutil import json_response
from app.schemas import problems
from app.schemas.responses import error_responses

ERROR_SCHEMA = "#/components/schemas/ErrorResponse"
# The operations that change the models served for everyone: an admin key only (for methods
# other than GET and HEAD). Promotion decisions by hand are model control too.
ADMIN_PATHS = re.compile(
    r"^/v2/repository/models/[^/]+/(load|unload)$|^/v1/models/[^/]+/decisions$"
)

ModelName = Annotated[str, Path(description="Model name (its folder in the models dir)")]


class IndexRequest(BaseModel):
    """Body of `POST /v2/repository/index` (optional)."""

    model_config = ConfigDict(extra="allow")
    ready: bool = Field(
        default=False, strict=True, description="true: only the versions that are READY."
    )


class IndexEntry(BaseModel):
    """One model version in the index."""

    name: str
    version: str = Field(description='The version ("" for a model-level state).')
    state: str = Field(description="READY, LOADING, UNLOADING or UNAVAILABLE.")
    reason: str = Field(description="Why it is UNAVAILABLE (load failure, unloaded).")


class ControlRequest(BaseModel):
    """Body of `POST /v2/repository/models/{name}/load` and `.../unload` (optional)."""

    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Triton's parameters. load: none is supported (a `config` override or "
        "`file:` contents are refused with 400: write config.json or copy a version folder "
        "into the models dir). unload: `unload_dependents` (a boolean; no model here has "
        "dependents).",
    )


_INDEX_REQUEST = TypeAdapter(IndexRequest)
_CONTROL_REQUEST = TypeAdapter(ControlRequest)
# What each verb does with Triton's parameters, for the 400 that refuses the others.
_UNSUPPORTED_LOAD = {
    "config": "overriding the model's configuration in the load request is not supported; "
    "write models/{name}/config.json instead (it is read on this load)",
    "file:": "loading files sent in the request is not supported; copy the version folder "
    "into the models dir (as .<version>.tmp/, then rename it) and load again",
}


async def _control_parameters(request: Request, verb: str) -> dict[str, Any]:
    """The `parameters` of a load or unload body ({} without a body); BadRequest for a body
    that is not `{"parameters": {...}}`."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return _CONTROL_REQUEST.validate_json(body).parameters
    except ValidationError as exc:
        first = problems.describe(exc.errors()[:1], limit=1)
        raise BadRequest(f'{first}; send no body or {{"parameters": {{...}}}} ({verb})') from None


def _refuse_load_parameters(name: str, parameters: dict[str, Any]) -> None:
    """Triton's load accepts `config` and `file:<path>` overrides; this server does not:
    refused rather than answered 200 with nothing changed."""
    for key in parameters:
        if key == "config" or key.startswith("file:"):
            reason = _UNSUPPORTED_LOAD["config" if key == "config" else "file:"]
        else:
            reason = "the load request supports no parameters"
        raise BadRequest(f"parameters.{key}: {reason.format(name=name)}")


def _refuse_unload_parameters(parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if key != "unload_dependents":
            raise BadRequest(
                f"parameters.{key}: the unload request supports only unload_dependents"
            )
        if not isinstance(value, bool):
            raise BadRequest("parameters.unload_dependents: must be true or false")


async def repository_index(request: Request, control: Repository) -> Response:
    """Every model and version with its state and, when unavailable, the reason."""
    body = await request.body()
    try:
        query = _INDEX_REQUEST.validate_json(body) if body.strip() else None
    except ValidationError as exc:
        # V2 answers bad input with 400, like the rest of the protocol.
        first = problems.describe(exc.errors()[:1], limit=1)
        raise BadRequest(f'{first}; send {{"ready": true}} or no body') from None
    return json_response(control.index(ready_only=bool(query and query.ready)))


async def repository_load(request: Request, name: ModelName, control: Repository) -> Response:
    """Load or reload a model from the models dir now (its config.json and versions);
    returns when its versions are loaded. Also lifts an unload."""
    _refuse_load_parameters(name, await _control_parameters(request, "load"))
    await control.load(name)
    return json_response({})


async def repository_unload(request: Request, name: ModelName, control: Repository) -> Response:
    """Unload every version of a model (requests in flight finish first); polling leaves it
    unloaded until it is loaded again."""
    _refuse_unload_parameters(await _control_parameters(request, "unload"))
    await control.unload(name)
    return json_response({})


def add_repository_routes(app: FastAPI) -> None:
    """The three repository routes."""
    tags: list[str | Enum] = ["model repository"]
    routes: list[tuple[str, Any, Any, tuple[int, ...]]] = [
        ("/v2/repository/index", repository_index, list[IndexEntry], (400, 401)),
        (
            "/v2/repository/models/{name:model}/load",
            repository_load,
            dict[str, Any],
            (401, 403, 404),
        ),
        (
            "/v2/repository/models/{name:model}/unload",
            repository_unload,
            dict[str, Any],
            (401, 403, 404, 409),
        ),
    ]
    control_body = {
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": ControlRequest.model_json_schema(),
                    "example": {"parameters": {}},
                }
            },
        }
    }
    for path, endpoint, model, errors in routes:
        responses: dict[int | str, dict[str, Any]] = {**error_responses(*errors)}
        extra: dict[str, Any] | None = control_body
        if endpoint is repository_unload:
            responses[400] = {
                "description": "A parameter other than unload_dependents.",
                "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}},
            }
        if endpoint is repository_load:
            responses[409] = {
                "description": "An unload of the model that arrived later overtook this load "
                "(the later call wins: the model stays unloaded).",
                "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}},
            }
            responses[400] = {
                "description": "No version of the model could be loaded (the reasons), or "
                "the request carries a parameter (config, file:) this server does not support.",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                        "example": {
                            "error": "failed to load model iris-knn: version 3: artifact check "
                            "failed: model.joblib: sha256 differs from the card"
                        },
                    }
                },
            }
        if endpoint is repository_index:
            responses[400] = {
                "description": 'The body is not {} or {"ready": true|false}.',
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                        "example": {
                            "error": 'ready: Input should be a valid boolean; send {"ready": '
                            "true} or no body"
                        },
                    }
                },
            }
            extra = {
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": IndexRequest.model_json_schema(),
                            "example": {"ready": False},
                        }
                    },
                }
            }
        app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            tags=tags,
            summary=(endpoint.__doc__ or "").split("\n")[0].rstrip("."),
            response_model=model,
            responses=responses,
            openapi_extra=extra,
        )

"""Open Inference Protocol (V2) routes: a few lines each; the logic is in `app.protocols.v2`
(and the tensor codec in `app.codecs.v2`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.deps import V2, Service, service_of
from app.api.fastlane import Handler
from app.api.predict import read_body
from app.codecs.v2 import HEADER_LENGTH
from app.context import request_context
from app.errors import ServingError
from app.http_errors import render_error, unexpected_error_response
from app.jsonutil import json_response
from app.protocols import triton
from app.protocols.v2 import V2Protocol
from app.repository import CardedVersion
from app.schemas.responses import error_responses
from app.schemas.v2 import (
    InferenceRequest,
    InferenceResponse,
    ModelConfig,
    ModelMetadata,
    ModelReady,
    ModelStatistics,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from app.schemas.versions import not_a_version
from app.service import PredictionService

ModelName = Annotated[str, Path(description="Model name")]
Endpoint = Callable[..., Coroutine[Any, Any, Response]]
Version = Annotated[str, Path(description="Model version (an integer, as a string in V2)")]


async def server_metadata(v2: V2) -> Response:
    """Server name, version and the protocol extensions it supports."""
    return json_response(v2.server_metadata())


async def server_live() -> Response:
    """200 while the process answers."""
    return json_response({"live": True})


async def server_ready(v2: V2) -> Response:
    """200 when every model is loaded and warm; 503 otherwise (see /health/ready for why)."""
    ready = v2.server_ready()
    return json_response({"ready": ready}, status_code=200 if ready else 503)


async def model_metadata(name: ModelName, v2: V2) -> Response:
    """Inputs, outputs (name, datatype, shape; -1 = any size) and class labels."""
    return json_response(v2.model_metadata(name, None))


async def model_metadata_version(name: ModelName, version: Version, v2: V2) -> Response:
    """Metadata of one version."""
    return json_response(v2.model_metadata(name, version))


async def model_ready(name: ModelName, v2: V2) -> Response:
    """200 when the model can serve; 503 while loading, failed or shutting down."""
    ready, body = v2.model_ready(name, None)
    return json_response(body, status_code=200 if ready else 503)


async def model_ready_version(name: ModelName, version: Version, v2: V2) -> Response:
    """Readiness of one version."""
    ready, body = v2.model_ready(name, version)
    return json_response(body, status_code=200 if ready else 503)


async def model_config(name: ModelName, service: Service) -> Response:
    """Triton's model configuration: inputs and outputs (dims without the batch dimension),
    max_batch_size, dynamic batching, version policy."""
    return json_response(triton.model_config(service.core, name, None))


async def model_config_version(name: ModelName, version: Version, service: Service) -> Response:
    """Triton's model configuration of one version."""
    return json_response(triton.model_config(service.core, name, version))


async def all_statistics(service: Service) -> Response:
    """Triton's statistics of every served version of every model: requests (success, fail,
    queue and compute time, ns) and model calls by batch size, since the server started."""
    return json_response(triton.model_statistics(service.core, None, None))


async def model_statistics(name: ModelName, service: Service) -> Response:
    """Triton's statistics of every served version of one model."""
    return json_response(triton.model_statistics(service.core, name, None))


async def model_statistics_version(name: ModelName, version: Version, service: Service) -> Response:
    """Triton's statistics of one version."""
    return json_response(triton.model_statistics(service.core, name, version))


INFER_PREFIX = "/v2/models/"
INFER_SUFFIX = "/infer"
VERSIONS_SEGMENT = "/versions/"
_INFER_HEADERS = (b"content-encoding", HEADER_LENGTH.lower().encode("latin-1"))


async def infer_response(
    protocol: V2Protocol, scope: Scope, receive: Receive, name: str, version: str | None
) -> Response:
    """The one implementation of `infer` (the documented routes and the hot-path lane):
    raises ServingError for the error handlers to render."""
    headers: dict[str, str | None] = {
        "content-encoding": None,
        HEADER_LENGTH.lower(): None,
    }
    for key, value in scope["headers"]:
        if key in _INFER_HEADERS:
            text = key.decode("latin-1")
            if headers[text] is None:  # the first, as Starlette's headers.get gives
                headers[text] = value.decode("latin-1")
    context = request_context(scope)
    context.endpoint = "infer" if version is None else "infer_version"
    body, extra_headers, media_type = await protocol.infer(
        name, version, await read_body(receive), headers, context, receive
    )
    return Response(body, headers=extra_headers, media_type=media_type)


class InferEndpoint:
    """`POST /v2/models/{name}[/versions/{version}]/infer` for the hot-path lane (see
    `app.api.fastlane`): the routes' implementation, with their error rendering."""

    def __init__(self, protocol: V2Protocol) -> None:
        self.protocol = protocol

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        try:
            response = await infer_response(self.protocol, scope, receive, name, version)
        except ServingError as exc:
            response = render_error(exc)
        except Exception as exc:  # noqa: BLE001 - as the app's catch-all: logged, a 500 JSON
            response = unexpected_error_response(
                scope["method"], scope["path"], request_context(scope).request_id, exc
            )
        await response(scope, receive, send)

    def lane_matcher(self) -> Callable[[str], Handler | None]:
        """The hot-path lane's matcher for `infer`."""
        serve = self.serve

        def match(path: str) -> Handler | None:
            parameters = infer_path_parameters(path)
            return None if parameters is None else (serve, parameters)

        return match


def infer_path_parameters(path: str) -> tuple[str, str | None] | None:
    """(name, version) of an `infer` path, as its routes would match it; None otherwise."""
    if not (path.startswith(INFER_PREFIX) and path.endswith(INFER_SUFFIX)):
        return None
    name = path[len(INFER_PREFIX) : -len(INFER_SUFFIX)]
    version = None
    if VERSIONS_SEGMENT in name:
        name, _, version = name.partition(VERSIONS_SEGMENT)
    if _segment(name) and (version is None or _segment(version)):
        return name, version
    return None


def _segment(text: str) -> bool:
    # What the routes' `model` and `version` convertors match: no "/" and no ":".
    return bool(text) and "/" not in text and ":" not in text


async def _infer(request: Request, version: str | None) -> Response:
    return await infer_response(
        service_of(request).v2,
        request.scope,
        request.receive,
        request.path_params["name"],
        version,
    )


async def infer(request: Request, name: ModelName) -> Response:
    """Named typed tensors in, `label` and `probabilities` out (JSON, or Triton's binary
    tensor format with `Inference-Header-Content-Length`)."""
    return await _infer(request, None)


async def infer_version(request: Request, name: ModelName, version: Version) -> Response:
    """Inference with one version."""
    return await _infer(request, version)


def example_request(entry: CardedVersion) -> dict[str, Any]:
    """A V2 infer request for the version's first card example (a real held-out instance)."""
    return {"id": "example-1", "inputs": entry.kind.example_inputs(entry.card.examples[0].instance)}


def _infer_docs(service: PredictionService) -> dict[str, Any]:
    examples = {}
    for name in service.registry.names:  # sorted, like the name parameter's examples
        entry = service.registry.find(name).carded
        if entry is not None and entry.card.examples:
            examples[name] = {
                "summary": f"{name}: a real held-out example (true label: "
                f"{entry.card.examples[0].label})",
                "value": example_request(entry),
            }
    return {
        "requestBody": {
            "required": True,
            "description": "Pick the example of the model named in the path.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                    "examples": examples,
                },
                # A Media Type Object has no description (OpenAPI 3.1): the schema says it.
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "contentMediaType": "application/octet-stream",
                        "description": f"Binary tensor extension: a JSON header of "
                        f"{HEADER_LENGTH} bytes, then the raw tensors.",
                    },
                },
            },
        }
    }


def openapi_components() -> dict[str, Any]:
    """Schemas the infer request body refers to, for the OpenAPI document's components."""
    schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components["InferenceRequest"] = schema
    return components


def add_v2_routes(app: FastAPI, service: PredictionService) -> None:
    """The V2 endpoints; infer first among them (routes are matched in order)."""
    tags: list[str | Enum] = ["open inference protocol (v2)"]
    infer_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "model": InferenceResponse,
            "description": "The outputs asked for; binary outputs follow the JSON header.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 404, 413, 415, 500, 503, 504),
        400: {
            "description": "Wrong input name, datatype, shape or data; malformed request.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                    "example": {
                        "error": "input features of model iris-knn must have shape [N, 4] for "
                        "FP32, got [1, 3]"
                    },
                }
            },
        },
    }
    infer_docs = _infer_docs(service)
    for path, endpoint in (
        ("/v2/models/{name:model}/infer", infer),
        ("/v2/models/{name:model}/versions/{version:version}/infer", infer_version),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            tags=tags,
            summary="Infer" if endpoint is infer else "Infer with one version",
            responses=infer_responses,
            openapi_extra=infer_docs,
        )
    get_routes: list[tuple[str, Endpoint, Any, tuple[int, ...]]]
    get_routes = [
        ("/v2", server_metadata, ServerMetadata, (401,)),
        ("/v2/health/live", server_live, ServerLive, ()),
        ("/v2/health/ready", server_ready, ServerReady, ()),
        # Before the metadata route, which would take "stats" for a model name.
        ("/v2/models/stats", all_statistics, ModelStatistics, (401,)),
        ("/v2/models/{name:model}", model_metadata, ModelMetadata, (401, 404, 503)),
        (
            "/v2/models/{name:model}/versions/{version:version}",
            model_metadata_version,
            ModelMetadata,
            (401, 404, 503),
        ),
        ("/v2/models/{name:model}/ready", model_ready, ModelReady, (401, 404)),
        (
            "/v2/models/{name:model}/versions/{version:version}/ready",
            model_ready_version,
            ModelReady,
            (401, 404),
        ),
        ("/v2/models/{name:model}/config", model_config, ModelConfig, (401, 404, 503)),
        (
            "/v2/models/{name:model}/versions/{version:version}/config",
            model_config_version,
            ModelConfig,
            (401, 404, 503),
        ),
        ("/v2/models/{name:model}/stats", model_statistics, ModelStatistics, (401, 404)),
        (
            "/v2/models/{name:model}/versions/{version:version}/stats",
            model_statistics_version,
            ModelStatistics,
            (401, 404),
        ),
    ]
    for path, endpoint, model, errors in get_routes:
        responses: dict[int | str, dict[str, Any]] = {**error_responses(*errors)}
        if "{version" in path:
            # The one version parser: a malformed version is a 400 on every route.
            responses[400] = {
                "description": "Malformed version: not an integer from 1 to 2^63-1.",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                        "example": {"error": f"model 'iris-knn': {not_a_version('0')}"},
                    }
                },
            }
        if endpoint in (server_ready, model_ready, model_ready_version):
            responses[503] = {"model": model, "description": "Not ready."}
        app.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            tags=tags,
            summary=(endpoint.__doc__ or "").split("\n")[0].rstrip("."),
            response_model=model,
            responses=responses,
        )

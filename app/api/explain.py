"""`:explain` routes and their per-model documentation (the body is `:predict`'s)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, File, Query, Request, UploadFile
from starlette.responses import Response

from app.api.openapi import predict_request_body
from app.api.operations import (
    ImageOperation,
    ModelOperations,
    documented_errors,
    schema_components,
)
from app.api.predict import documented_versions, require_json
from app.attributions.image import captioned_png
from app.context import request_context
from app.errors import ServingError
from app.jsonutil import json_response
from app.protocols.v1 import V1Protocol, parse_instances
from app.repository import CardedVersion
from app.schemas.explain import ExplainResponse
from app.schemas.responses import ErrorResponse
from app.schemas.versions import requested_version
from app.service import PredictionService

ERROR_CODES = (400, 401, 404, 413, 415, 422, 500, 503, 504)
IMAGE_ERROR_CODES = (400, 401, 404, 413, 422, 500, 503, 504)
ERROR_EXAMPLES = {
    413: "too many instances to explain: at most 16 per request (explaining one costs "
    "hundreds of model calls); split them over several requests",
    503: "the explanation worker is busy (4 requests waiting); retry shortly, or send fewer "
    "instances per request",
    504: "the explanation took longer than its deadline (30000 ms); send fewer instances, or "
    "retry when the server is less busy",
}


def _context(request: Request) -> Any:
    """The request's context, with the client's address (the worker's fair share without
    API keys)."""
    context = request_context(request.scope)
    client = request.scope.get("client")
    context.client = f"address:{client[0]}" if client else ""
    return context


def add_explain_routes(app: FastAPI, v1: V1Protocol) -> None:
    """The generic `:explain` routes (documented per model by `explain_openapi`)."""

    async def explain(request: Request) -> Response:
        require_json(request)
        return json_response(
            await v1.explain(
                request.path_params["name"],
                None,
                await request.body(),
                _context(request),
                request.receive,
            )
        )

    async def explain_version(request: Request, version: str) -> Response:
        require_json(request)
        name = request.path_params["name"]
        number = requested_version(name, version)  # the one version parser, as on :predict
        return json_response(
            await v1.explain(
                name,
                number,
                await request.body(),
                _context(request),
                request.receive,
            )
        )

    async def explain_image(
        request: Request,
        file: Annotated[UploadFile, File(description="An image file.")],
        output: Annotated[Literal["json", "png"], Query(alias="format")] = "json",
    ) -> Response:
        result = await v1.explain_image(
            request.path_params["name"],
            None,
            await file.read(),
            _context(request),
            request.receive,
        )
        if output == "png":
            # The overlay alone, so Swagger UI's "Try it out" shows the picture itself; its
            # caption names the label and probability it explains (nothing else travels with
            # it), and so do two headers, for scripts.
            explanation = result["explanations"][0]
            label = explanation["explained_label"]
            probability = float(explanation["probabilities"][label])
            picture = captioned_png(explanation["overlay_png"], label, probability)
            headers = {
                "X-Explained-Label": quote(label, safe=""),
                "X-Explained-Probability": f"{probability:.6f}",
            }
            return Response(picture, media_type="image/png", headers=headers)
        return json_response(result)

    app.add_api_route(
        "/v1/models/{name:model}:explain", explain, methods=["POST"], include_in_schema=False
    )
    app.add_api_route(
        "/v1/models/{name:model}/versions/{version:version}:explain",
        explain_version,
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_api_route(
        "/v1/models/{name:model}:explain-image",
        explain_image,
        methods=["POST"],
        include_in_schema=False,
    )


def _responses(
    codes: tuple[int, ...], invalid_input: str | None = None, *, png: bool = False
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/ExplainResponse"}}
    }
    if png:
        content["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    ok = {
        "description": "One explanation per instance, in order"
        + (" (with format=png: the overlay image alone)." if png else "."),
        "content": content,
    }
    examples = dict(ERROR_EXAMPLES)
    if invalid_input is not None:
        examples[422] = invalid_input
    return {"200": ok, **documented_errors(codes, examples)}


def _invalid_input_message(entry: CardedVersion) -> str | None:
    """What this model's `:explain` really answers to an instance of the wrong kind."""
    try:
        parse_instances(entry.kind, b'{"instances": [null]}')
    except ServingError as exc:
        return exc.message
    return None


FORMAT_PARAMETER = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["json", "png"], "default": "json"},
    "description": "json: the explanation (as `:explain`); png: only the overlay image (red "
    "for the predicted digit, blue against), which Swagger UI displays.",
    "examples": {
        "png": {"summary": "the overlay image", "value": "png"},
        "json": {"summary": "the explanation", "value": "json"},
    },
}


def explain_openapi(service: PredictionService) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas): one documented `:explain` operation per model."""
    settings = service.core.explanations.settings
    components = schema_components(ExplainResponse, ErrorResponse)
    paths: dict[str, Any] = {}
    for name, entry in documented_versions(service):
        card, adapter = entry.card, entry.kind
        image = ImageOperation(
            summary=f"Explain {name}'s prediction for an uploaded image file",
            description="Upload one image file (PNG or JPEG) of a single digit, any size; it "
            "is converted as for `:predict-image`. " + adapter.explanation_method,
            responses=_responses(IMAGE_ERROR_CODES, png=True),
            parameters=[FORMAT_PARAMETER],
        )
        operations = ModelOperations(
            verb="explain",
            tag="explain",
            name=name,
            version=entry.version,
            summary=f"Explain {name}'s predictions",
            version_summary=f"Explain the predictions of one version of {name}",
            description=f"Why {name} predicts what it does. The body is the same as "
            f"`:predict`'s (each instance: {adapter.instance_help}), at most "
            f"{settings.explain_max_instances} instances. {adapter.explanation_method} Every "
            "attribution set adds up to f(x) - f(baseline) for the explained class (the "
            "`completeness` field reports the error). Explanations run on a worker of their "
            f"own, within {settings.explain_timeout_ms:g} ms.",
            body=predict_request_body(card, adapter.request_model, components),
            responses=_responses(ERROR_CODES, _invalid_input_message(entry)),
            image=image if adapter.takes_image_files else None,
        )
        paths.update(operations.paths())
    return paths, components

"""`:explain` routes and their per-model documentation (the body is `:predict`'s)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, File, Query, Request, UploadFile
from starlette.responses import Response

from app.api.openapi import predict_request_body
from app.api.predict import documented_versions, parse_version, require_json
from app.context import request_context
from app.errors import ServingError
from app.explain.image import captioned_png
from app.explain.service import ExplanationService
from app.jsonutil import json_response
from app.protocols.v1 import parse_instances
from app.repository import CardedVersion
from app.schemas.card import ImageInput
from app.schemas.explain import ExplainResponse
from app.schemas.responses import ErrorResponse, error_responses
from app.schemas.versions import MAX_VERSION

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


def add_explain_routes(app: FastAPI, explainer: ExplanationService) -> None:
    """The generic `:explain` routes (documented per model by `explain_openapi`)."""

    async def explain(request: Request) -> Response:
        require_json(request)
        return json_response(
            await explainer.explain_json(
                request.path_params["name"],
                None,
                await request.body(),
                _context(request),
                request.receive,
            )
        )

    async def explain_version(request: Request, version: str) -> Response:
        require_json(request)
        number = parse_version(version)  # the one version parser: 422 as on :predict
        return json_response(
            await explainer.explain_json(
                request.path_params["name"],
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
        result = await explainer.explain_image(
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
    responses: dict[str, Any] = {
        "200": {
            "description": "One explanation per instance, in order"
            + (" (with format=png: the overlay image alone)." if png else "."),
            "content": content,
        }
    }
    for code, doc in error_responses(*codes).items():
        example = doc["content"]["application/json"]["example"]
        if code in ERROR_EXAMPLES:
            example = {"error": ERROR_EXAMPLES[int(code)]}
        if code == 422 and invalid_input is not None:
            example = {"error": invalid_input}
        responses[str(code)] = {
            "description": doc["description"],
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                    "example": example,
                }
            },
        }
    return responses


METHODS = {
    "tabular": "Shapley values of the features for the predicted class's probability, against "
    "the training mean: exact (all coalitions) for few features, antithetic permutation "
    "sampling for more; a KNN also returns its k nearest training examples.",
    "image": "Integrated gradients of the predicted class's probability from a black image: "
    "a 28x28 attribution map and a PNG overlay (red for the class, blue against).",
    "text": "Shapley values (antithetic permutation sampling) of the words and word pairs the "
    "model looked up; unknown words share the [UNK] token.",
}


def _invalid_input_message(entry: CardedVersion) -> str | None:
    """What this model's `:explain` really answers to an instance of the wrong kind."""
    try:
        parse_instances(entry.kind, b'{"instances": [null]}')
    except ServingError as exc:
        return exc.message
    return None


def explain_openapi(explainer: ExplanationService) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas): one documented `:explain` operation per model."""
    service = explainer.service
    settings = explainer.settings
    components: dict[str, Any] = {}
    for model in (ExplainResponse, ErrorResponse):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    paths: dict[str, Any] = {}
    for name, entry in documented_versions(service):
        card, adapter = entry.card, entry.kind
        operation_name = name.replace("-", "_").replace(".", "_")
        request_model = adapter.request_model
        body = predict_request_body(card, request_model, components)
        description = (
            f"Why {name} predicts what it does. The body is the same as `:predict`'s (each "
            f"instance: {adapter.instance_help}), at most "
            f"{settings.explain_max_instances} instances. {METHODS[card.input.kind]} Every "
            "attribution set adds up to f(x) - f(baseline) for the explained class (the "
            "`completeness` field reports the error). Explanations run on a worker of their "
            f"own, within {settings.explain_timeout_ms:g} ms."
        )
        responses = _responses(ERROR_CODES, _invalid_input_message(entry))
        paths[f"/v1/models/{name}:explain"] = {
            "post": {
                "tags": ["explain"],
                "summary": f"Explain {name}'s predictions",
                "description": description,
                "operationId": f"explain_{operation_name}",
                "requestBody": body,
                "responses": responses,
            }
        }
        paths[f"/v1/models/{name}/versions/{{version}}:explain"] = {
            "post": {
                "tags": ["explain"],
                "summary": f"Explain the predictions of one version of {name}",
                "description": description,
                "operationId": f"explain_{operation_name}_version",
                "parameters": [
                    {
                        "name": "version",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                        "description": "Model version (an integer)",
                        "examples": {
                            f"v{entry.version}": {
                                "summary": f"version {entry.version}",
                                "value": entry.version,
                            }
                        },
                    }
                ],
                "requestBody": body,
                "responses": responses,
            }
        }
        if isinstance(card.input, ImageInput):
            paths[f"/v1/models/{name}:explain-image"] = {
                "post": {
                    "tags": ["explain"],
                    "summary": f"Explain {name}'s prediction for an uploaded image file",
                    "description": "Upload one image file (PNG or JPEG) of a single digit, any "
                    "size; it is converted as for `:predict-image`. " + METHODS["image"],
                    "operationId": f"explain_image_{operation_name}",
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "enum": ["json", "png"],
                                "default": "json",
                            },
                            "description": "json: the explanation (as `:explain`); png: only "
                            "the overlay image (red for the predicted digit, blue against), "
                            "which Swagger UI displays.",
                            "examples": {
                                "png": {"summary": "the overlay image", "value": "png"},
                                "json": {"summary": "the explanation", "value": "json"},
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {
                                            "type": "string",
                                            "format": "binary",
                                            "contentMediaType": "application/octet-stream",
                                            "description": "An image file with one digit.",
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": _responses(IMAGE_ERROR_CODES, png=True),
                }
            }
    return paths, components

"""`:predict` routes, and their per-model documentation.

Routing: `{name}:predict` and `{name}/versions/{version}:predict` are one ASGI endpoint
(`PredictEndpoint`, over `app.protocols.v1`), registered before every other route and also
called directly by `PredictFastPath` below FastAPI's routing (the hot path); `{name}:predict-
image` is a FastAPI route (multipart upload).

Documentation: Swagger UI users get one operation per model, each with that model's input
schema (its newest version's adapter's) and a real held-out example that works as is in "Try
it out". Those operations are written into the OpenAPI document here; they describe exactly
the paths the generic routes serve. Bodies are read raw and validated in one pass by pydantic
from the JSON bytes (3x faster than FastAPI's parse-then-validate), which is why the request
schemas are attached by hand too.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, File, Request, UploadFile
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.fastlane import Handler
from app.api.openapi import predict_request_body, predict_response_example
from app.api.operations import (
    ImageOperation,
    ModelOperations,
    documented_errors,
    schema_components,
)
from app.context import request_context
from app.errors import BadRequest, ServingError, UnsupportedMediaType
from app.http_errors import render_error, unexpected_error_response
from app.jsonutil import dumps, json_response, send_json_ok
from app.kinds import InputAdapter
from app.preprocessing.image import MNIST_SIDE, image_bytes_to_mnist
from app.preprocessing.image_decode import ImageInputError
from app.protocols.v1 import V1Protocol, parse_instances
from app.repository import CardedVersion
from app.schemas.predict import PredictResponse
from app.schemas.responses import ErrorResponse
from app.schemas.versions import requested_version
from app.service import PredictionService

PREDICT_ERRORS = (400, 401, 404, 413, 415, 422, 500, 503, 504)
IMAGE_ERRORS = (400, 401, 404, 413, 422, 500, 503, 504)


def require_json(request: Request) -> None:
    """JSON bodies only: refuse other declared content types with a clear 415."""
    check_json_content_type(request.headers.get("content-type"))


def check_json_content_type(content_type: str | None) -> None:
    """415 unless the declared content type is JSON (no declaration is accepted)."""
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be JSON, sent with Content-Type: application/json (got "
            f"{media_type or 'an empty content type'}); with curl add "
            "-H 'Content-Type: application/json'"
        )


PREDICT_PREFIX = "/v1/models/"
PREDICT_SUFFIX = ":predict"
VERSIONS_SEGMENT = "/versions/"
LABELS_SEGMENT = "/labels/"


class PredictEndpoint:
    """`POST /v1/models/{name}[/versions/{version}]:predict`: the one implementation.

    An ASGI app, not a FastAPI endpoint: the routes serve it (so the routing table lists the
    paths, and an app without the fast path still answers them), and `PredictFastPath` calls
    it before FastAPI's routing, which on the hot path costs more event-loop time than the
    prediction's own request handling (py-spy, concurrency 64).
    """

    def __init__(self, v1: V1Protocol) -> None:
        self.v1 = v1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As a route: the name and version come from the path parameters."""
        parameters = scope.get("path_params", {})
        await self.serve(
            scope,
            receive,
            send,
            parameters["name"],
            parameters.get("version"),
            parameters.get("label"),
        )

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        version: str | None,
        label: str | None = None,
    ) -> None:
        context = request_context(scope)
        context.endpoint = (
            ("predict" if version is None else "predict_version")
            if label is None
            else "predict_label"
        )
        try:
            number = None if version is None else requested_version(name, version)
            content_type = None
            for key, value in scope["headers"]:
                if key == b"content-type":
                    content_type = value.decode("latin-1")
                    break
            check_json_content_type(content_type)
            body = await read_body(receive)
            answer = dumps(await self.v1.predict(name, number, body, context, receive, label))
        except ServingError as exc:
            response = render_error(exc)
        except Exception as exc:  # noqa: BLE001 - as the app's catch-all: logged, a 500 JSON
            response = unexpected_error_response(
                scope["method"], scope["path"], context.request_id, exc
            )
        else:
            await send_json_ok(send, answer)
            return
        await response(scope, receive, send)


class PredictFastPath:
    """Sends `POST .../{name}[/versions/{v}]:predict` straight to `PredictEndpoint`, below
    FastAPI's routing: it skips the exception and exit-stack middleware, the router's matching
    and the request machinery. Installed as the innermost middleware, so API keys, CORS, the
    body limit and the observability middleware still wrap it."""

    def __init__(self, app: ASGIApp, *, endpoint: PredictEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            parameters = predict_path_parameters(scope["path"])
            if parameters is not None:
                await self.endpoint.serve(scope, receive, send, *parameters)
                return
        await self.app(scope, receive, send)


def predict_path_parameters(path: str) -> tuple[str, str | None, str | None] | None:
    """(name, version, label) of a `:predict` path, as its routes would match it; None for
    any other path."""
    if not (path.startswith(PREDICT_PREFIX) and path.endswith(PREDICT_SUFFIX)):
        return None
    name = path[len(PREDICT_PREFIX) : -len(PREDICT_SUFFIX)]
    version = label = None
    if VERSIONS_SEGMENT in name:
        name, _, version = name.partition(VERSIONS_SEGMENT)
    elif LABELS_SEGMENT in name:
        name, _, label = name.partition(LABELS_SEGMENT)
    if (
        _segment(name)
        and (version is None or _segment(version))
        and (label is None or _segment(label))
    ):
        return name, version, label
    return None


def predict_lane_matcher(endpoint: PredictEndpoint) -> Callable[[str], Handler | None]:
    """The hot-path lane's matcher for `:predict` (see `app.api.fastlane`)."""
    serve = endpoint.serve

    def match(path: str) -> Handler | None:
        parameters = predict_path_parameters(path)
        return None if parameters is None else (serve, parameters)

    return match


def _segment(text: str) -> bool:
    # What the routes' `model` and `version` convertors match: no "/" and no ":".
    return bool(text) and "/" not in text and ":" not in text


async def read_body(receive: Receive) -> bytes:
    """The whole request body (BadRequest when the client disconnects before its end)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected before sending the whole body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def add_predict_routes(app: FastAPI, service: PredictionService) -> PredictEndpoint:
    """The predict routes; call before adding any other route. Returns the `:predict`
    endpoint, for the fast path."""
    endpoint = PredictEndpoint(service.v1)

    async def predict_image(
        request: Request, file: Annotated[UploadFile, File(description="An image file.")]
    ) -> Response:
        context = request_context(request.scope)
        return json_response(
            await service.v1.predict_image(
                request.path_params["name"], None, await file.read(), context, request.receive
            )
        )

    for path in (
        "/v1/models/{name:model}:predict",
        "/v1/models/{name:model}/versions/{version:version}:predict",
        "/v1/models/{name:model}/labels/{label:version}:predict",
    ):
        app.router.routes.append(Route(path, endpoint, methods=["POST"], include_in_schema=False))
    app.add_api_route(
        "/v1/models/{name:model}:predict-image",
        predict_image,
        methods=["POST"],
        include_in_schema=False,
    )
    return endpoint


def _responses(
    codes: tuple[int, ...], example: dict[str, Any], invalid_input: str
) -> dict[str, Any]:
    """This model's responses: its own real 200 and 422 examples, the shared error ones."""
    ok = {
        "description": "One prediction per instance, in order.",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictResponse"},
                "example": example,
            }
        },
    }
    return {"200": ok, **documented_errors(codes, {422: invalid_input})}


def _undecodable_image_message() -> str:
    """What `:predict-image` really answers to bytes that are not an image."""
    try:
        image_bytes_to_mnist(b"not an image", max_pixels=MNIST_SIDE * MNIST_SIDE)
    except ImageInputError as exc:
        return str(exc)
    raise AssertionError("text bytes decoded as an image")


def _invalid_input_message(adapter: InputAdapter) -> str:
    """What this version's `:predict` really answers to an instance of the wrong kind."""
    try:
        parse_instances(adapter, b'{"instances": [null]}')
    except ServingError as exc:
        return exc.message
    raise AssertionError(f"{adapter.card.name} accepted a null instance")


def documented_versions(service: PredictionService) -> list[tuple[str, CardedVersion]]:
    """(name, version) per model for the docs: the newest version with a valid card."""
    documented = []
    for name in service.registry.names:
        versions = service.registry.versions(name)
        carded = [entry.carded for entry in versions.values() if entry.carded is not None]
        if carded:
            documented.append((name, max(carded, key=lambda c: c.version)))
    return documented


def predict_openapi(service: PredictionService) -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas): one documented operation per model and kind of call."""
    components = schema_components(PredictResponse, ErrorResponse)
    paths: dict[str, Any] = {}
    for name, entry in documented_versions(service):
        card, adapter = entry.card, entry.kind
        example = predict_response_example(card)
        image = ImageOperation(
            summary=f"Predict with {name} from an uploaded image file",
            description="Upload one image file (PNG or JPEG) of a single digit, any size; it "
            "is converted the MNIST way (grey, inverted if the background is light, cropped, "
            "scaled into 20x20, centred by mass in 28x28).",
            responses=_responses(IMAGE_ERRORS, example, _undecodable_image_message()),
        )
        operations = ModelOperations(
            verb="predict",
            tag="predict",
            name=name,
            version=entry.version,
            summary=f"Predict with {name}",
            version_summary=f"Predict with one version of {name}",
            description=f"{card.description}\n\nEach instance: {adapter.instance_help}. "
            "One prediction per instance comes back, in order: the label and the "
            f"probability of every class ({', '.join(card.labels)}).",
            body=predict_request_body(card, adapter.request_model, components),
            responses=_responses(PREDICT_ERRORS, example, _invalid_input_message(adapter)),
            image=image if adapter.takes_image_files else None,
        )
        paths.update(operations.paths())
    return paths, components

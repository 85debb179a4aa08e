"""Errors that carry their HTTP status, and the one handler that renders them.

Every error response of the service is `{"error": "<what is wrong and how to fix it>"}`, the
convention TF Serving, the Open Inference Protocol, KServe and MLServer share.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from app.context import request_context
from app.jsonutil import dumps

log = logging.getLogger(__name__)


class ServingError(Exception):
    """Base class: an error with an HTTP status and a message meant for the client."""

    status_code = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        # For an error about one row of a request: its index, for the protocol to name it.
        self.instance: int | None = None


class BadRequest(ServingError):
    """The request cannot be parsed (malformed JSON, wrong content type)."""

    status_code = 400


class Unauthorized(ServingError):
    """Missing or wrong API key."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServingError):
    """A valid key without the role the operation needs, or an operation turned off."""

    status_code = 403


class NotFound(ServingError):
    """Unknown model, version or path."""

    status_code = 404


class Conflict(ServingError):
    """The operation contradicts the server's configuration (an unload while polled), or lost
    a race with a later one that changed the same thing (a load overtaken by an unload)."""

    status_code = 409


class PayloadTooLarge(ServingError):
    """Body, image or instance count over a configured limit."""

    status_code = 413


class UnsupportedMediaType(ServingError):
    """The body is not JSON (or, for uploads, not multipart)."""

    status_code = 415


class InvalidInput(ServingError):
    """The request parses but its content is wrong (shape, type, range, NaN)."""

    status_code = 422


class ModelFailed(ServingError):
    """The model raised while predicting; only the requests of that batch fail."""

    status_code = 500


class Unavailable(ServingError):
    """Overloaded, not ready or shutting down: retry later, ideally elsewhere."""

    status_code = 503

    def __init__(
        self, message: str, *, retry_after_s: int = 1, close_connection: bool = False
    ) -> None:
        headers = {"Retry-After": str(retry_after_s)}
        if close_connection:
            # Shutting down: make keep-alive clients reconnect (to another replica).
            headers["Connection"] = "close"
        super().__init__(message, headers=headers)


class DeadlineExceeded(ServingError):
    """The request did not get its prediction within the configured deadline."""

    status_code = 504


def error_body(message: str) -> bytes:
    """The one shape of every error body: `{"error": message}` as JSON bytes."""
    return dumps({"error": message})


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error response: `error_body(message)` with its status and headers."""
    return Response(
        error_body(message), status_code, headers=headers, media_type="application/json"
    )


def render_error(exc: ServingError) -> Response:
    """The response for a ServingError (every route, middleware and the fast path)."""
    return error_response(exc.status_code, exc.message, exc.headers)


def unexpected_error_response(
    method: str, path: str, request_id: str, exc: BaseException
) -> Response:
    """A 500 for an exception nobody expected: logged with its traceback, the client gets the
    request id to quote."""
    log.error("unhandled error on %s %s (request %s)", method, path, request_id, exc_info=exc)
    return error_response(
        500, f"internal server error (request id {request_id}); the server logged the details"
    )


_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def _validation_message(error: Mapping[str, Any]) -> str:
    """One FastAPI/pydantic validation problem in the project's words: no class reprs."""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if "UploadFile" in message:
        return "must be a file upload (a multipart/form-data part with a filename)"
    return _CLASS_REPR.sub(r"\1", message)


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{location or 'body'}: {_validation_message(error)}")
    return "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Render ServingError, FastAPI validation errors and Starlette HTTP errors as `{"error"}`."""

    async def serving_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServingError)
        return render_error(exc)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _describe_validation(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
        headers = exc.headers
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}; see /docs"
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(exc.status_code, message, headers)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        context = request_context(request.scope)
        return unexpected_error_response(request.method, request.url.path, context.request_id, exc)

    async def client_disconnect(_: Request, exc: Exception) -> Response:
        # Nobody reads this answer: the client hung up (or was cut off) mid-body. Not an error
        # of the server, so no traceback in its log.
        return error_response(400, "the client disconnected before sending the whole body")

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(ClientDisconnect, client_disconnect)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette's 405 names only the first
    route's, and a path may have a route per method: GET and POST .../decisions)."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            allowed |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(allowed))
